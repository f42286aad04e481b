//! The gateway in front of the real router (fake backend): auth, allow-lists, metering,
//! balances, limits, admin input checks. Each story runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use axum::http::{Method, StatusCode};
use common::{env, env_with, Db, Env};
use hanlin_gateway::ops::NewKey;
use hanlin_test_support::fake_backend::FakeConfig;
use serde_json::{json, Value};

macro_rules! both {
    ($name:ident, $sqlite:ident, $pg:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            if let Some(e) = env(Db::Sqlite, stringify!($name)).await {
                $name(e).await;
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $pg() {
            if let Some(e) = env(Db::Postgres, stringify!($name)).await {
                $name(e).await;
            }
        }
    };
}

fn err_code(r: &common::Resp) -> String {
    r.json()["error"]["code"].as_str().unwrap_or("").to_string()
}

async fn auth_refusals(e: Env) {
    let (_, good) = e.tenant("acme", "prepaid", "10", NewKey::default()).await;
    // No key, garbage, SQL-ish, right shape but wrong secret: all the same 401.
    let r = e.chat("", "fake", json!({})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let none = e
        .call(
            Method::POST,
            "/v1/chat/completions",
            None,
            Some("{}".into()),
        )
        .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(err_code(&none), "invalid_api_key");
    for bad in [
        "sk-nope".to_string(),
        "' OR '1'='1".to_string(),
        // Right shape, one character of the secret changed (never to itself: 1 in 16 keys end
        // in '0').
        format!(
            "{}{}",
            &good[..good.len() - 1],
            if good.ends_with('0') { '1' } else { '0' }
        ),
        "x".repeat(10_000),
    ] {
        let r = e.chat(&bad, "fake", json!({})).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad:.40}: {}", r.body);
        assert_eq!(err_code(&r), "invalid_api_key");
        assert!(!r.body.contains(&good[..15]), "error leaks key material");
    }
    // The good key works, also on non-metered routes.
    assert_eq!(
        e.chat(&good, "fake", json!({})).await.status,
        StatusCode::OK
    );
    assert_eq!(
        e.call(Method::GET, "/v1/models", Some(&good), None)
            .await
            .status,
        StatusCode::OK
    );

    // Revocation is immediate.
    let id = good[3..15].to_string();
    let r = e
        .admin(Method::DELETE, &format!("/admin/v1/keys/{id}"), Value::Null)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = e.chat(&good, "fake", json!({})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Expired key.
    let (_, old) = e.tenant("old", "prepaid", "10", NewKey::default()).await;
    let mut rec = e.gw.store().key(&old[3..15]).await.unwrap();
    assert_eq!(rec.expires_ms, 0);
    rec.id = "hl0000000001".into();
    rec.expires_ms = 1;
    e.gw.store().create_key(&rec).await.unwrap();
    let expired = format!("sk-hl0000000001-{}", &old[16..]);
    assert_eq!(e.chat(&old, "fake", json!({})).await.status, StatusCode::OK);
    assert_eq!(
        e.chat(&expired, "fake", json!({})).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Model outside the allow-list.
    let (_, narrow) = e
        .tenant(
            "narrow",
            "prepaid",
            "10",
            NewKey {
                models: Some(vec!["other-model".into()]),
                ..NewKey::default()
            },
        )
        .await;
    let r = e.chat(&narrow, "fake", json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(err_code(&r), "model_not_allowed");

    // A tenant's key cannot reach the admin API (so no other tenant's data either).
    let (victim, _) = e.tenant("victim", "prepaid", "10", NewKey::default()).await;
    let r = e
        .call(
            Method::GET,
            &format!("/admin/v1/statements/{victim}"),
            Some(&narrow),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(err_code(&r), "admin_required");
    let r = e.call(Method::GET, "/admin/v1/tenants", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Ollama routes are behind the gateway too, in Ollama's error shape.
    let r = e
        .call(
            Method::POST,
            "/api/chat",
            None,
            Some(r#"{"model":"fake"}"#.into()),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.json()["error"].is_string());
}
both!(auth_refusals, auth_refusals_sqlite, auth_refusals_postgres);

async fn metering_and_quota(e: Env) {
    // 1.00 per 1K prompt, 2.00 per 1K completion (micro-units: 1000 and 2000 per token).
    e.price("fake", "1", "2").await;
    let (tid, key) = e.tenant("payer", "prepaid", "1", NewKey::default()).await;
    let r = e.chat(&key, "fake", json!({"max_tokens": 8})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let usage = &r.json()["usage"];
    let (p, c) = (
        usage["prompt_tokens"].as_i64().unwrap(),
        usage["completion_tokens"].as_i64().unwrap(),
    );
    let row =
        e.gw.store()
            .ledger_row(&r.request_id())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        (row.prompt_tokens, row.completion_tokens, row.status),
        (p, c, 200)
    );
    let cached = row.cached_tokens;
    let expected = (p - cached) * 1000 + cached * 1000 + c * 2000;
    assert_eq!(row.cost, expected);
    let t = e.gw.store().tenant(&tid).await.unwrap();
    assert_eq!((t.balance, t.reserved), (1_000_000 - expected, 0));

    // Streaming: the row exists by the time the stream has ended.
    let r = e
        .chat(&key, "fake", json!({"stream": true, "max_tokens": 8}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("[DONE]"));
    let row =
        e.gw.store()
            .ledger_row(&r.request_id())
            .await
            .unwrap()
            .unwrap();
    assert!(row.completion_tokens > 0 && row.cost > 0, "{row:?}");

    // A request the handler refuses (unknown model) is recorded at zero cost.
    e.price("ghost", "1", "2").await;
    let r = e.chat(&key, "ghost", json!({"max_tokens": 8})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let row =
        e.gw.store()
            .ledger_row(&r.request_id())
            .await
            .unwrap()
            .unwrap();
    assert_eq!((row.cost, row.status), (0, 404));

    // An empty balance is refused up front with OpenAI's insufficient_quota.
    let (_, broke) = e.tenant("broke", "prepaid", "0", NewKey::default()).await;
    let r = e.chat(&broke, "fake", json!({})).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(err_code(&r), "insufficient_quota");
    assert_eq!(r.json()["error"]["type"], "insufficient_quota");
    // A key's own spend cap.
    let (_, capped) = e
        .tenant(
            "capped",
            "prepaid",
            "100",
            NewKey {
                spend_cap: Some("0.01".into()),
                ..NewKey::default()
            },
        )
        .await;
    let r = e.chat(&capped, "fake", json!({"max_tokens": 100})).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);

    // Balance identity over everything above.
    let credits: i64 =
        e.gw.store()
            .credits(&tid)
            .await
            .unwrap()
            .iter()
            .map(|c| c.amount)
            .sum();
    let spent: i64 =
        e.gw.store()
            .ledger(Some(&tid), 0, i64::MAX)
            .await
            .unwrap()
            .iter()
            .map(|u| u.cost)
            .sum();
    assert_eq!(
        e.gw.store().tenant(&tid).await.unwrap().balance,
        credits - spent
    );

    // Statement JSON and CSV via the admin API.
    let r = e
        .admin(
            Method::GET,
            &format!("/admin/v1/statements/{tid}"),
            Value::Null,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["usage"].as_array().unwrap().len(), 3);
    let r = e
        .admin(
            Method::GET,
            "/admin/v1/statements/payer?format=csv",
            Value::Null,
        )
        .await;
    assert_eq!(r.body.lines().count(), 1 + 1 + 3, "{}", r.body);
    let r = e
        .admin(Method::GET, "/admin/v1/usage?tenant=payer", Value::Null)
        .await;
    let lines = r.json()["data"].as_array().unwrap().clone();
    let reqs: i64 = lines.iter().map(|l| l["requests"].as_i64().unwrap()).sum();
    assert_eq!(reqs, 3);
}
both!(
    metering_and_quota,
    metering_and_quota_sqlite,
    metering_and_quota_postgres
);

async fn rate_limits(e: Env) {
    let (_, key) = e
        .tenant(
            "limited",
            "prepaid",
            "0",
            NewKey {
                rpm: Some(2),
                ..NewKey::default()
            },
        )
        .await;
    let r1 = e.chat(&key, "fake", json!({})).await;
    assert_eq!(r1.status, StatusCode::OK, "{}", r1.body);
    assert_eq!(r1.headers["x-ratelimit-limit-requests"], "2");
    assert_eq!(r1.headers["x-ratelimit-remaining-requests"], "1");
    assert!(r1.headers.contains_key("x-ratelimit-reset-requests"));
    let r2 = e.chat(&key, "fake", json!({})).await;
    assert_eq!(r2.headers["x-ratelimit-remaining-requests"], "0");
    let r3 = e.chat(&key, "fake", json!({})).await;
    assert_eq!(r3.status, StatusCode::TOO_MANY_REQUESTS, "{}", r3.body);
    assert_eq!(err_code(&r3), "rate_limit_exceeded");
    let retry: u64 = r3.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    // Tokens per minute on the tenant.
    let (tid, key2) = e.tenant("tpm", "prepaid", "0", NewKey::default()).await;
    let r = e
        .admin(
            Method::PATCH,
            &format!("/admin/v1/tenants/{tid}"),
            json!({"tpm": 100}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = e.chat(&key2, "fake", json!({"max_tokens": 500})).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.json()["error"]["type"], "tokens");
    let r = e.chat(&key2, "fake", json!({"max_tokens": 10})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers["x-ratelimit-limit-tokens"], "100");
}
both!(rate_limits, rate_limits_sqlite, rate_limits_postgres);

async fn admin_inputs(e: Env) {
    let ok = e
        .admin(
            Method::POST,
            "/admin/v1/tenants",
            json!({"name": "北京 Acme Ltd.", "kind": "business"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    let dup = e
        .admin(
            Method::POST,
            "/admin/v1/tenants",
            json!({"name": "北京 Acme Ltd."}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let evil = "x'); DROP TABLE tenants; --";
    let huge = "a".repeat(100_000);
    let cases: Vec<(Method, &str, Value, StatusCode, &str)> = vec![
        (
            Method::POST,
            "/admin/v1/tenants",
            json!({"name": evil}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            Method::POST,
            "/admin/v1/tenants",
            json!({"name": "a".repeat(65)}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            Method::POST,
            "/admin/v1/tenants",
            json!({"name": "ok", "kind": evil}),
            StatusCode::BAD_REQUEST,
            "kind",
        ),
        (
            Method::POST,
            "/admin/v1/tenants",
            json!({"name": "ok", "currency": "BTC"}),
            StatusCode::BAD_REQUEST,
            "currency",
        ),
        (
            Method::POST,
            "/admin/v1/tenants",
            json!({"name": "ok", "rpm": -5}),
            StatusCode::BAD_REQUEST,
            "rpm",
        ),
        (
            Method::POST,
            "/admin/v1/tenants",
            json!({"name": "ok", "credit_limit": "1e9"}),
            StatusCode::BAD_REQUEST,
            "credit_limit",
        ),
        (
            Method::POST,
            "/admin/v1/tenants",
            json!({"name": "ok", "sneaky": 1}),
            StatusCode::BAD_REQUEST,
            "body",
        ),
        (
            Method::POST,
            "/admin/v1/tenants",
            json!({"name": huge}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        ),
        (
            Method::POST,
            "/admin/v1/keys",
            json!({"tenant": evil}),
            StatusCode::BAD_REQUEST,
            "tenant",
        ),
        (
            Method::POST,
            "/admin/v1/keys",
            json!({"tenant": "nobody"}),
            StatusCode::NOT_FOUND,
            "",
        ),
        (
            Method::POST,
            "/admin/v1/keys",
            json!({"tenant": "北京 Acme Ltd.", "models": [evil]}),
            StatusCode::BAD_REQUEST,
            "models",
        ),
        (
            Method::POST,
            "/admin/v1/keys",
            json!({"tenant": "北京 Acme Ltd.", "spend_cap": "-1"}),
            StatusCode::BAD_REQUEST,
            "spend_cap",
        ),
        (
            Method::DELETE,
            "/admin/v1/keys/x%27%20OR%201=1",
            Value::Null,
            StatusCode::BAD_REQUEST,
            "id",
        ),
        (
            Method::PUT,
            "/admin/v1/prices",
            json!({"model": evil, "prompt": "1"}),
            StatusCode::BAD_REQUEST,
            "model",
        ),
        (
            Method::PUT,
            "/admin/v1/prices",
            json!({"model": "m", "prompt": "0.1234567"}),
            StatusCode::BAD_REQUEST,
            "prompt",
        ),
        (
            Method::PUT,
            "/admin/v1/prices",
            json!({"model": "m", "prompt": 1.5}),
            StatusCode::BAD_REQUEST,
            "body",
        ),
        (
            Method::POST,
            "/admin/v1/topups",
            json!({"tenant": "北京 Acme Ltd.", "amount": "99999999999999"}),
            StatusCode::BAD_REQUEST,
            "amount",
        ),
        (
            Method::POST,
            "/admin/v1/topups",
            json!({"tenant": "北京 Acme Ltd.", "amount": "1", "note": "a".repeat(300)}),
            StatusCode::BAD_REQUEST,
            "note",
        ),
        (
            Method::POST,
            "/admin/v1/codes",
            json!({"amount": "5", "count": 100_000}),
            StatusCode::BAD_REQUEST,
            "count",
        ),
        (
            Method::POST,
            "/admin/v1/codes/redeem",
            json!({"tenant": "北京 Acme Ltd.", "code": evil}),
            StatusCode::BAD_REQUEST,
            "code",
        ),
        (
            Method::GET,
            "/admin/v1/usage?from=2024-13-01",
            Value::Null,
            StatusCode::BAD_REQUEST,
            "from",
        ),
        (
            Method::GET,
            "/admin/v1/statements/x?period=%27%20OR%201=1",
            Value::Null,
            StatusCode::BAD_REQUEST,
            "period",
        ),
        (
            Method::POST,
            "/admin/v1/channels",
            json!({"name": "c", "base_url": "file:///etc/passwd", "models": ["m"]}),
            StatusCode::BAD_REQUEST,
            "base_url",
        ),
    ];
    for (m, path, body, want, param) in cases {
        let r = e.admin(m.clone(), path, body).await;
        assert_eq!(r.status, want, "{m} {path}: {}", r.body);
        if !param.is_empty() {
            assert_eq!(r.json()["error"]["param"], param, "{path}: {}", r.body);
        }
        assert!(
            !r.body.to_lowercase().contains("sql"),
            "leaks storage details: {}",
            r.body
        );
    }
    // Malformed JSON.
    let r = e
        .call(
            Method::POST,
            "/admin/v1/tenants",
            Some(&e.admin_key),
            Some("{\"name\":".into()),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Everything is still there and sane afterwards.
    let r = e.admin(Method::GET, "/admin/v1/tenants", Value::Null).await;
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 2);

    // Codes: single use, via the admin API.
    let r = e
        .admin(
            Method::POST,
            "/admin/v1/codes",
            json!({"amount": "5", "count": 2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let code = r.json()["codes"][0].as_str().unwrap().to_string();
    let redeem = json!({"tenant": "北京 Acme Ltd.", "code": code});
    let r = e
        .admin(Method::POST, "/admin/v1/codes/redeem", redeem.clone())
        .await;
    assert_eq!(r.json()["credited"], "5.00", "{}", r.body);
    let r = e
        .admin(Method::POST, "/admin/v1/codes/redeem", redeem)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = e
        .admin(
            Method::GET,
            "/admin/v1/tenants/%E5%8C%97%E4%BA%AC%20Acme%20Ltd.",
            Value::Null,
        )
        .await;
    assert_eq!(r.json()["balance"], "5.00", "{}", r.body);
    // Created keys are shown once; listings never carry secrets or hashes.
    let r = e
        .admin(
            Method::POST,
            "/admin/v1/keys",
            json!({"tenant": "北京 Acme Ltd."}),
        )
        .await;
    let secret = r.json()["key"].as_str().unwrap().to_string();
    let list = e.admin(Method::GET, "/admin/v1/keys", Value::Null).await;
    assert!(!list.body.contains(&secret[16..]));
    assert!(!list.body.contains("hash"));
}
both!(admin_inputs, admin_inputs_sqlite, admin_inputs_postgres);

/// A stream the client abandons is billed for what was generated, in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_short_stream_is_billed_for_what_was_generated() {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let fake = FakeConfig {
        script: Some((0..200).map(|i| format!("w{i} ")).collect()),
        token_delay: std::time::Duration::from_millis(5),
        ..FakeConfig::default()
    };
    let e = env_with(Db::Sqlite, "cut", fake).await.unwrap();
    e.price("fake", "1", "2").await;
    let (tid, key) = e
        .tenant("streamer", "prepaid", "100", NewKey::default())
        .await;
    let body = json!({"model": "fake", "stream": true, "max_tokens": 200,
        "messages": [{"role": "user", "content": "hi"}]});
    let req = axum::http::Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = e.app.clone().oneshot(req).await.unwrap();
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let mut body = resp.into_body();
    for _ in 0..5 {
        body.frame().await.unwrap().unwrap();
    }
    drop(body);
    let row = e.wait_row(&rid).await;
    assert_eq!(row.status, 499);
    assert!(
        row.completion_tokens >= 3 && row.completion_tokens < 200,
        "{row:?}"
    );
    assert_eq!(
        row.cost,
        row.prompt_tokens * 1000 + row.completion_tokens * 2000
    );
    let t = e.gw.store().tenant(&tid).await.unwrap();
    assert_eq!((t.balance, t.reserved), (100_000_000 - row.cost, 0));
}
