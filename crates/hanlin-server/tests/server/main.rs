//! The server against the fake backend: every route, streaming shapes, every error path.
//! One test binary (modules below) to keep link time down.

mod choices;
mod errors;
mod lifecycle;
mod metering;
mod ollama;
mod openai;
mod tools;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use hanlin_server::{router, AppState, ServerConfig};
use hanlin_test_support::fake_backend::{FakeBackend, FakeConfig};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

/// A router over a fake backend configured by `cfg`.
pub fn app_with(cfg: FakeConfig, server: ServerConfig) -> (Router, FakeBackend) {
    let fake = FakeBackend::new(cfg);
    let state = AppState::new(Arc::new(fake.clone()), server);
    (router(state), fake)
}

/// A router over a default fake backend.
pub fn app() -> (Router, FakeBackend) {
    app_with(FakeConfig::default(), ServerConfig::default())
}

/// A raw response.
pub struct Resp {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body text.
    pub body: String,
}

impl Resp {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// `data:` payloads of an SSE body, in order.
    pub fn sse_data(&self) -> Vec<String> {
        assert_eq!(
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream"),
            "{}",
            self.body
        );
        self.body
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .map(|e| {
                e.strip_prefix("data: ")
                    .unwrap_or_else(|| panic!("not a data event: {e:?}"))
                    .to_string()
            })
            .collect()
    }

    /// NDJSON lines parsed.
    pub fn ndjson(&self) -> Vec<Value> {
        self.body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
            .collect()
    }
}

/// Sends one request through the router.
pub async fn send(app: &Router, req: Request<Body>) -> Resp {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    Resp {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).expect("utf-8 body"),
    }
}

/// POST a JSON body.
pub async fn post(app: &Router, path: &str, body: Value) -> Resp {
    let req = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    send(app, req).await
}

/// GET.
pub async fn get(app: &Router, path: &str) -> Resp {
    send(
        app,
        Request::get(path).body(Body::empty()).expect("request"),
    )
    .await
}

/// Asserts an OpenAI error envelope with this status, param and code.
pub fn assert_openai_error(r: &Resp, status: u16, param: Option<&str>, code: Option<&str>) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    let v = r.json();
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["type"].is_string(), "{v}");
    assert_eq!(e["param"].as_str(), param, "{v}");
    assert_eq!(e["code"].as_str(), code, "{v}");
    let keys: Vec<&String> = e.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["message", "type", "param", "code"], "{v}");
}

/// A one-message chat body.
pub fn chat_body(content: &str) -> Value {
    serde_json::json!({"model": "fake", "messages": [{"role": "user", "content": content}]})
}
