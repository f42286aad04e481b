//! A gateway server over the fake backend (no model needed), for the crash-safety, replica and
//! overhead scripts in `bench/gateway/`. Modes:
//!
//! - `fake_serve init --db URL` — create an internal tenant with an admin key; print the key.
//! - `fake_serve serve --db URL --port N [--token-delay-ms D]` — serve with the gateway.
//! - `fake_serve plain --port N` — the same server without a gateway (overhead baseline).
//! - `fake_serve stub --port N` — a minimal OpenAI-compatible upstream (fixed reply + usage).
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use hanlin_gateway::ops;
use hanlin_gateway::{Cipher, Gateway, GatewayConfig};
use hanlin_server::{AppState, ServerConfig};
use hanlin_store::SqlStore;
use hanlin_test_support::fake_backend::{FakeBackend, FakeConfig};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn cipher() -> Cipher {
    // Replicas and restarts must share the master key; the scripts pass it in the environment.
    let hex = std::env::var("HANLIN_SECRET_KEY").unwrap_or_else(|_| {
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff".into()
    });
    Cipher::from_hex(&hex).expect("HANLIN_SECRET_KEY: 64 hex characters")
}

async fn gateway(db: &str) -> Gateway {
    let store = SqlStore::open(db).await.expect("opening the database");
    Gateway::new(Arc::new(store), cipher(), GatewayConfig::default())
}

fn fake(args: &[String]) -> FakeBackend {
    let delay = arg(args, "--token-delay-ms")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    FakeBackend::new(FakeConfig {
        models: vec!["fake".into()],
        n_ctx: 4096,
        token_delay: Duration::from_millis(delay),
        ..FakeConfig::default()
    })
}

async fn listen(args: &[String]) -> tokio::net::TcpListener {
    let port: u16 = arg(args, "--port")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    println!("listening on {}", l.local_addr().unwrap());
    l
}

async fn stub() -> axum::Router {
    use axum::routing::{get, post};
    let body = serde_json::json!({"id": "stub", "object": "chat.completion", "created": 0, "model": "stub",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}})
    .to_string();
    axum::Router::new()
        .route(
            "/v1/chat/completions",
            post(move || {
                let b = body.clone();
                async move { ([("content-type", "application/json")], b) }
            }),
        )
        .route("/v1/models", get(|| async { "{\"data\":[]}" }))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).cloned().unwrap_or_default();
    let db = arg(&args, "--db").unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            arg(&args, "--threads")
                .and_then(|s| s.parse().ok())
                .unwrap_or(2),
        )
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        match mode.as_str() {
            "init" => {
                let gw = gateway(&db).await;
                let (_, key) = ops::create_admin(&gw, "ops").await.unwrap();
                println!("{}", key.expose());
            }
            "serve" => {
                let gw = gateway(&db).await;
                // One process per SQLite file; `--sweep-all` says the same of a PostgreSQL run.
                let sweep_all = gw.store().backend_name() == "sqlite"
                    || args.iter().any(|a| a == "--sweep-all");
                gw.start_housekeeping(sweep_all).await.unwrap();
                let state =
                    AppState::new(Arc::new(fake(&args)), ServerConfig::default()).with_gateway(gw);
                let l = listen(&args).await;
                hanlin_server::serve(l, state, std::future::pending())
                    .await
                    .unwrap();
            }
            "plain" => {
                let state = AppState::new(Arc::new(fake(&args)), ServerConfig::default());
                let l = listen(&args).await;
                hanlin_server::serve(l, state, std::future::pending())
                    .await
                    .unwrap();
            }
            "stub" => {
                let l = listen(&args).await;
                axum::serve(l, stub().await).await.unwrap();
            }
            _ => eprintln!("usage: fake_serve init|serve|plain|stub [--db URL] [--port N]"),
        }
    });
}
