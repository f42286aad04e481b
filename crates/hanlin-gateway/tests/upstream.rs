//! Upstream channels against stub OpenAI-compatible servers started in-process: failover from a
//! failing channel, model mapping, key handling, byte-exact stream pass-through, metering.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use common::{env, Db};
use hanlin_gateway::ops::NewKey;
use serde_json::{json, Value};

const SSE: &str = "data: {\"id\":\"u1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n\
data: {\"id\":\"u1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n\
data: {\"id\":\"u1\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n\
data: [DONE]\n\n";

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, String)>>>);

async fn stub_chat(State(seen): State<Seen>, headers: HeaderMap, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap();
    let auth = headers["authorization"].to_str().unwrap().to_string();
    seen.0
        .lock()
        .unwrap()
        .push((v["model"].as_str().unwrap().to_string(), auth));
    if v["stream"] == true {
        ([("content-type", "text/event-stream")], SSE).into_response()
    } else {
        axum::Json(json!({"id": "u2", "object": "chat.completion", "model": v["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}))
        .into_response()
    }
}

async fn start(app: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}/v1")
}

async fn story(db: Db) {
    let Some(e) = env(db, "upstream").await else {
        return;
    };
    let seen = Seen::default();
    let good = start(
        Router::new()
            .route("/v1/chat/completions", post(stub_chat))
            .route("/v1/models", get(|| async { "{}" }))
            .with_state(seen.clone()),
    )
    .await;
    let bad_hits = Arc::new(Mutex::new(0));
    let hits = bad_hits.clone();
    let bad = start(Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let hits = hits.clone();
            async move {
                *hits.lock().unwrap() += 1;
                (StatusCode::SERVICE_UNAVAILABLE, "overloaded")
            }
        }),
    ))
    .await;
    for (name, url, prio, key) in [
        ("bad", &bad, 10, "sk-bad"),
        ("good", &good, 0, "sk-upstream-secret"),
    ] {
        let r = e
            .admin(
                Method::POST,
                "/admin/v1/channels",
                json!({"name": name, "base_url": url, "key": key, "models": ["up=real-model"], "priority": prio}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert!(!r.body.contains(key), "channel key echoed: {}", r.body);
    }
    let list = e
        .admin(Method::GET, "/admin/v1/channels", Value::Null)
        .await;
    assert!(!list.body.contains("sk-upstream-secret"));

    e.price("up", "1", "2").await;
    let (tid, key) = e
        .tenant("proxied", "prepaid", "10", NewKey::default())
        .await;
    let r = e.chat(&key, "up", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Hi");
    assert_eq!(
        *bad_hits.lock().unwrap(),
        1,
        "the higher-priority channel was tried first"
    );
    {
        let s = seen.0.lock().unwrap();
        assert_eq!(
            s[0],
            (
                "real-model".to_string(),
                "Bearer sk-upstream-secret".to_string()
            )
        );
    }
    let row =
        e.gw.store()
            .ledger_row(&r.request_id())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        (
            row.channel.as_str(),
            row.prompt_tokens,
            row.completion_tokens
        ),
        ("good", 7, 3)
    );
    assert_eq!(row.cost, 7 * 1000 + 3 * 2000);

    // The failed channel is now skipped (unhealthy) and recorded as such.
    let r = e.chat(&key, "up", json!({"stream": true})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(*bad_hits.lock().unwrap(), 1, "unhealthy channel skipped");
    // Streams pass through byte for byte.
    assert_eq!(r.body, SSE);
    let row =
        e.gw.store()
            .ledger_row(&r.request_id())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        (row.prompt_tokens, row.completion_tokens, row.status),
        (7, 2, 200)
    );
    let chans = e.gw.store().channels().await.unwrap();
    let bad_rec = chans.iter().find(|c| c.name == "bad").unwrap();
    assert!(
        bad_rec.failures >= 1 && bad_rec.unhealthy_until_ms > 0,
        "{bad_rec:?}"
    );
    let t = e.gw.store().tenant(&tid).await.unwrap();
    assert_eq!(t.balance, 10_000_000 - 13_000 - (7 * 1000 + 2 * 2000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_sqlite() {
    story(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_postgres() {
    story(Db::Postgres).await;
}
