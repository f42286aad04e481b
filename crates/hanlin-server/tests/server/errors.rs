//! Every error path: bad bodies, validation, backend refusals, auth, unknown routes.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request};
use hanlin_api::BackendError;
use hanlin_server::{Limits, ServerConfig};
use hanlin_test_support::fake_backend::FakeConfig;
use serde_json::{json, Value};

use super::{app, app_with, assert_openai_error, chat_body, get, post, send};

fn raw(path: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::post(path);
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    b.body(body.into()).expect("request")
}

#[tokio::test]
async fn malformed_bodies_are_400_json() {
    let (app, fake) = app();
    let cases: Vec<(Option<&str>, Vec<u8>)> = vec![
        (Some("application/json"), b"{\"model\": ".to_vec()),
        (Some("application/json"), b"not json".to_vec()),
        (Some("application/json"), vec![b'"', 0xff, 0xfe, b'"']),
        (Some("application/json"), Vec::new()),
        (Some("application/json"), b"[1,2]".to_vec()),
        (Some("text/plain"), chat_body("x").to_string().into_bytes()),
    ];
    for (ct, body) in cases {
        let r = send(&app, raw("/v1/chat/completions", ct, body.clone())).await;
        assert_openai_error(&r, 400, None, None);
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
        let r = send(&app, raw("/v1/completions", ct, body)).await;
        assert_eq!(r.status, 400, "{}", r.body);
    }
    assert_eq!(fake.started(), 0);
    // No Content-Type at all is accepted (curl -d sends a form type; that one is refused above).
    let r = send(
        &app,
        raw("/v1/chat/completions", None, chat_body("x").to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(
        &app,
        raw(
            "/v1/chat/completions",
            Some("application/json; charset=utf-8"),
            chat_body("x").to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let server = ServerConfig {
        limits: Limits {
            max_body_bytes: 1024,
        },
        ..ServerConfig::default()
    };
    let fake = FakeConfig {
        n_ctx: 4096,
        ..FakeConfig::default()
    };
    let (app, _) = app_with(fake, server);
    let big = chat_body(&"x".repeat(2000)).to_string();
    let r = send(
        &app,
        raw(
            "/v1/chat/completions",
            Some("application/json"),
            big.clone(),
        ),
    )
    .await;
    assert_openai_error(&r, 413, None, Some("request_too_large"));
    assert!(r.json()["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("1024")));
    // Without Content-Length (streamed body) the limit still holds.
    let chunks = futures_util::stream::iter(
        big.into_bytes()
            .chunks(100)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let r = send(
        &app,
        raw(
            "/v1/chat/completions",
            Some("application/json"),
            Body::from_stream(chunks),
        ),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.body);
    let r = send(
        &app,
        raw("/api/chat", None, chat_body(&"y".repeat(2000)).to_string()),
    )
    .await;
    assert_eq!(r.status, 413);
    assert!(r.json()["error"].is_string(), "Ollama shape: {}", r.body);
    // Just under the limit is fine.
    let r = post(&app, "/v1/chat/completions", chat_body(&"x".repeat(900))).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let (app, _) = app();
    let mut b = chat_body("x");
    b["n"] = json!(17);
    assert_openai_error(
        &post(&app, "/v1/chat/completions", b).await,
        400,
        Some("n"),
        None,
    );
    let mut b = chat_body("x");
    b["temperature"] = json!("warm");
    let r = post(&app, "/v1/chat/completions", b).await;
    assert_openai_error(&r, 400, Some("temperature"), None);
    assert!(
        r.body.contains("expected a number, but got a string"),
        "{}",
        r.body
    );
    let b = json!({"model": "fake", "messages": []});
    assert_openai_error(
        &post(&app, "/v1/chat/completions", b).await,
        400,
        Some("messages"),
        None,
    );
    let b = json!({"model": "fake", "prompt": "x", "n": 0});
    assert_openai_error(
        &post(&app, "/v1/completions", b).await,
        400,
        Some("n"),
        None,
    );
    let b = json!({"model": "fake"});
    assert_openai_error(
        &post(&app, "/v1/embeddings", b).await,
        400,
        Some("input"),
        None,
    );
    let b = json!({"model": "fake", "prompt": 3});
    assert_openai_error(
        &post(&app, "/v1/tokenize", b).await,
        400,
        Some("prompt"),
        None,
    );
}

#[tokio::test]
async fn backend_refusals_map_to_statuses() {
    let (app, _) = app();
    let mut b = chat_body("x");
    b["model"] = json!("missing");
    assert_openai_error(
        &post(&app, "/v1/chat/completions", b).await,
        404,
        Some("model"),
        Some("model_not_found"),
    );
    let mut b = chat_body("x");
    b["max_tokens"] = json!(10_000);
    let r = post(&app, "/v1/chat/completions", b).await;
    assert_openai_error(&r, 400, Some("messages"), Some("context_length_exceeded"));
    assert!(r.body.contains("512 tokens"), "{}", r.body);

    let (app, _) = app_with(
        FakeConfig {
            fail: Some(BackendError::Overloaded { retry_after_s: 7 }),
            ..FakeConfig::default()
        },
        ServerConfig::default(),
    );
    let mut b = chat_body("x");
    b["stream"] = json!(true);
    let r = post(&app, "/v1/chat/completions", b).await;
    assert_openai_error(&r, 429, None, Some("rate_limit_exceeded"));
    assert_eq!(
        r.headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );

    let (app, _) = app_with(
        FakeConfig {
            fail: Some(BackendError::Internal("disk /secret/path exploded".into())),
            ..FakeConfig::default()
        },
        ServerConfig::default(),
    );
    let r = post(&app, "/v1/chat/completions", chat_body("x")).await;
    assert_openai_error(&r, 500, None, None);
    assert!(
        !r.body.contains("secret"),
        "details stay in logs: {}",
        r.body
    );
    let r = post(&app, "/api/chat", chat_body("x")).await;
    assert_eq!(r.status, 500);
    assert!(!r.body.contains("secret"));
}

#[tokio::test]
async fn overload_from_queue_limit() {
    let (app, _) = app_with(
        FakeConfig {
            max_active: Some(1),
            token_delay: Duration::from_millis(50),
            ..FakeConfig::default()
        },
        ServerConfig::default(),
    );
    let slow = {
        let app = app.clone();
        tokio::spawn(async move { post(&app, "/v1/chat/completions", chat_body("a b c d")).await })
    };
    tokio::time::sleep(Duration::from_millis(40)).await;
    let r = post(&app, "/v1/chat/completions", chat_body("x")).await;
    assert_openai_error(&r, 429, None, Some("rate_limit_exceeded"));
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(slow.await.expect("join").status, 200);
}

#[tokio::test]
async fn mid_stream_failure_sends_error_event_without_done() {
    let (app, _) = app_with(
        FakeConfig {
            fail_after: Some((1, BackendError::Internal("gpu on fire".into()))),
            ..FakeConfig::default()
        },
        ServerConfig::default(),
    );
    let mut b = chat_body("a b c");
    b["stream"] = json!(true);
    let r = post(&app, "/v1/chat/completions", b).await;
    assert_eq!(r.status, 200);
    let data = r.sse_data();
    let last: Value = serde_json::from_str(data.last().expect("events")).expect("json");
    assert_eq!(last["error"]["type"], "server_error", "{last}");
    assert!(
        !r.body.contains("[DONE]") && !r.body.contains("fire"),
        "{}",
        r.body
    );
    // Non-streamed, the same failure is a 500.
    let r = post(&app, "/v1/chat/completions", chat_body("a b c")).await;
    assert_openai_error(&r, 500, None, None);
}

#[tokio::test]
async fn api_key_is_required_when_configured() {
    let server = ServerConfig {
        api_key: Some("sekrit".into()),
        ..ServerConfig::default()
    };
    let (app, _) = app_with(FakeConfig::default(), server);
    let with_auth = |path: &str, auth: Option<&str>| {
        let mut b = Request::get(path);
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(Body::empty()).expect("request")
    };
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("sekrit"),
        Some("Basic c2Vrcml0"),
    ] {
        let r = send(&app, with_auth("/v1/models", auth)).await;
        assert_openai_error(&r, 401, None, Some("invalid_api_key"));
        let r = send(&app, with_auth("/api/tags", auth)).await;
        assert_eq!(r.status, 401);
        assert!(r.json()["error"].is_string(), "{}", r.body);
    }
    assert_eq!(
        send(&app, with_auth("/v1/models", Some("Bearer sekrit")))
            .await
            .status,
        200
    );
    assert_eq!(
        send(&app, with_auth("/api/tags", Some("Bearer sekrit")))
            .await
            .status,
        200
    );
    // POST without a key is refused before the body is even validated.
    let r = post(&app, "/v1/chat/completions", json!({"bad": true})).await;
    assert_eq!(r.status, 401);
    assert_eq!(get(&app, "/health").await.status, 200, "health stays open");
    assert_eq!(get(&app, "/metrics").await.status, 200, "metrics stay open");
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let (app, _) = app();
    let r = get(&app, "/v1/nope").await;
    assert_openai_error(&r, 404, None, Some("unknown_url"));
    let r = get(&app, "/v1/chat/completions").await;
    assert_openai_error(&r, 405, None, None);
    let r = get(&app, "/api/chat").await;
    assert_eq!(r.status, 405);
    assert!(r.json()["error"].is_string());
    let r = get(&app, "/api/nope").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());
}
