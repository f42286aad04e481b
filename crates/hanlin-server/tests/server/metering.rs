//! Metering of `n > 1` through the real gateway (SQLite in a temp dir): one ledger row per HTTP
//! request, the prompt counted once and completion tokens summed over the choices, also when
//! the client cuts the stream short.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use futures_util::StreamExt;
use hanlin_gateway::ops::{self, NewKey, NewTenant, PriceReq};
use hanlin_gateway::{Cipher, Gateway, GatewayConfig};
use hanlin_server::{router, AppState, ServerConfig};
use hanlin_test_support::fake_backend::{FakeBackend, FakeConfig};
use serde_json::{json, Value};
use tower::ServiceExt;

struct Env {
    app: Router,
    gw: Gateway,
    fake: FakeBackend,
    key: String,
    tenant: String,
    _dir: tempfile::TempDir,
}

/// Balance of the test tenant, in micro-units.
const BALANCE: i64 = 100_000_000;

async fn env(cfg: FakeConfig) -> Env {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = hanlin_store::testing::sqlite(dir.path()).await;
    let cipher = Cipher::from_hex(&Cipher::generate_hex()).expect("cipher");
    let gw = Gateway::new(Arc::new(store), cipher, GatewayConfig::default());
    gw.start_housekeeping(false).await.expect("housekeeping");
    let fake = FakeBackend::new(cfg);
    let state =
        AppState::new(Arc::new(fake.clone()), ServerConfig::default()).with_gateway(gw.clone());
    // 1.00 per 1K prompt tokens, 2.00 per 1K completion tokens: 1000 and 2000 micro-units each.
    ops::set_price(
        &gw,
        PriceReq {
            model: "fake".into(),
            prompt: Some("1".into()),
            completion: Some("2".into()),
            ..PriceReq::default()
        },
    )
    .await
    .expect("price");
    let t = ops::create_tenant(
        &gw,
        NewTenant {
            name: "choices".into(),
            kind: Some("business".into()),
            billing: Some("prepaid".into()),
            currency: None,
            group: None,
            credit_limit: None,
            included_tokens: None,
            rpm: None,
            tpm: None,
        },
    )
    .await
    .expect("tenant");
    ops::topup(&gw, &t.id, "100", "test").await.expect("topup");
    let (_, secret) = ops::create_key(
        &gw,
        NewKey {
            tenant: t.id.clone(),
            ..NewKey::default()
        },
    )
    .await
    .expect("key");
    Env {
        app: router(state),
        gw,
        fake,
        key: secret.expose().to_string(),
        tenant: t.id,
        _dir: dir,
    }
}

impl Env {
    fn request(&self, body: &Value) -> Request<Body> {
        Request::post("/v1/chat/completions")
            .header("authorization", format!("Bearer {}", self.key))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request")
    }

    /// Sends `body`; returns the response and its ledger request id.
    async fn send(&self, body: &Value) -> (axum::response::Response, String) {
        let resp = self
            .app
            .clone()
            .oneshot(self.request(body))
            .await
            .expect("response");
        let rid = resp.headers()["x-request-id"]
            .to_str()
            .expect("id")
            .to_string();
        (resp, rid)
    }

    async fn row(&self, request_id: &str) -> hanlin_store::UsageRecord {
        for _ in 0..200 {
            if let Some(r) = self
                .gw
                .store()
                .ledger_row(request_id)
                .await
                .expect("ledger")
            {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no ledger row for {request_id}");
    }

    /// The tenant's balance and held amount.
    async fn balance(&self) -> (i64, i64) {
        let t = self.gw.store().tenant(&self.tenant).await.expect("tenant");
        (t.balance, t.reserved)
    }
}

#[tokio::test]
async fn n_choices_settle_once_with_summed_completion_tokens() {
    let e = env(FakeConfig::default()).await;
    let body = json!({"model": "fake", "n": 3, "seed": 1,
        "messages": [{"role": "user", "content": "one two three four"}]});
    let (resp, rid) = e.send(&body).await;
    assert_eq!(resp.status(), 200);
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let v: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(v["choices"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["usage"]["prompt_tokens"], 26);
    assert_eq!(v["usage"]["completion_tokens"], 12);
    let row = e.row(&rid).await;
    assert_eq!(
        (row.prompt_tokens, row.completion_tokens, row.status),
        (26, 12, 200),
        "{row:?}"
    );
    // One settlement: the balance went down by exactly this row's cost, nothing is held.
    let cost = (row.prompt_tokens - row.cached_tokens) * 1000
        + row.cached_tokens * 1000
        + row.completion_tokens * 2000;
    assert_eq!(row.cost, cost);
    assert_eq!(e.balance().await, (BALANCE - cost, 0));

    // Streamed, with usage: the row is there when the stream has ended, with the same sums.
    let mut body = body;
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (resp, rid) = e.send(&body).await;
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    assert!(String::from_utf8_lossy(&bytes).contains("[DONE]"));
    let row2 =
        e.gw.store()
            .ledger_row(&rid)
            .await
            .expect("ledger")
            .expect("row written before the stream ended");
    assert_eq!(
        (row2.prompt_tokens, row2.completion_tokens, row2.status),
        (26, 12, 200)
    );
    assert_eq!(e.balance().await, (BALANCE - cost - row2.cost, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_short_n_stream_is_billed_once_for_all_choices_and_cancels_them() {
    let e = env(FakeConfig {
        script: Some((0..200).map(|i| format!("w{i} ")).collect()),
        token_delay: Duration::from_millis(5),
        ..FakeConfig::default()
    })
    .await;
    let body = json!({"model": "fake", "n": 3, "stream": true, "max_tokens": 200,
        "messages": [{"role": "user", "content": "hi"}]});
    let (resp, rid) = e.send(&body).await;
    let mut frames = resp.into_body().into_data_stream();
    for _ in 0..12 {
        frames.next().await.expect("a frame").expect("data");
    }
    drop(frames);
    let row = e.row(&rid).await;
    assert_eq!(row.status, 499, "{row:?}");
    // "user: hi\n" + BOS, counted once; tokens of all three choices, fewer than they would
    // have made.
    assert_eq!(row.prompt_tokens, 10);
    assert!(
        row.completion_tokens >= 9 && row.completion_tokens < 600,
        "{row:?}"
    );
    for _ in 0..200 {
        if e.fake.active() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!((e.fake.active(), e.fake.cancelled()), (0, 3));
    assert_eq!(e.balance().await, (BALANCE - row.cost, 0));
}
