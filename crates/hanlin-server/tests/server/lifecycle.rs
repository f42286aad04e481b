//! Over a real socket: client disconnects cancel generation, shutdown drains in-flight streams;
//! plus `/health` and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use hanlin_server::{serve, AppState, ServerConfig};
use hanlin_test_support::fake_backend::{FakeBackend, FakeConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{app, chat_body, get, post};

struct Running {
    addr: std::net::SocketAddr,
    fake: FakeBackend,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(cfg: FakeConfig) -> Running {
    let fake = FakeBackend::new(cfg);
    let state = AppState::new(Arc::new(fake.clone()), ServerConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state, async {
        let _ = rx.await;
    }));
    Running {
        addr,
        fake,
        stop,
        task,
    }
}

async fn open(addr: std::net::SocketAddr, path: &str, body: &serde_json::Value) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let body = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    s
}

/// Reads until `needle` shows up (or EOF), returning everything read.
async fn read_until(s: &mut TcpStream, needle: &str) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).await.expect("read");
        out.extend_from_slice(&buf[..n]);
        if n == 0 || String::from_utf8_lossy(&out).contains(needle) {
            return String::from_utf8_lossy(&out).into_owned();
        }
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..400 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn slow() -> FakeConfig {
    FakeConfig {
        token_delay: Duration::from_millis(20),
        n_ctx: 8192,
        ..FakeConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_mid_stream_cancels_generation() {
    let srv = start(slow()).await;
    let mut body = chat_body(&"word ".repeat(300));
    body["stream"] = json!(true);
    let mut s = open(srv.addr, "/v1/chat/completions", &body).await;
    let seen = read_until(&mut s, "\"content\":\"word\"").await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert_eq!(srv.fake.active(), 1);
    drop(s);
    let fake = srv.fake.clone();
    wait_for("cancellation", || fake.active() == 0).await;
    assert_eq!(srv.fake.cancelled(), 1);

    // The same for an Ollama NDJSON stream.
    let body =
        json!({"model": "fake", "messages": [{"role": "user", "content": "w ".repeat(300)}]});
    let mut s = open(srv.addr, "/api/chat", &body).await;
    read_until(&mut s, "\"done\":false").await;
    drop(s);
    wait_for("cancellation", || fake.active() == 0).await;
    assert_eq!(srv.fake.cancelled(), 2);
    let _ = srv.stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_while_waiting_for_a_whole_response_cancels() {
    let srv = start(slow()).await;
    let s = open(
        srv.addr,
        "/v1/chat/completions",
        &chat_body(&"word ".repeat(300)),
    )
    .await;
    let fake = srv.fake.clone();
    wait_for("the generation to start", || fake.active() == 1).await;
    drop(s);
    wait_for("cancellation", || fake.active() == 0).await;
    assert_eq!(srv.fake.cancelled(), 1);
    let _ = srv.stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_streams() {
    let srv = start(slow()).await;
    let mut body = chat_body(&"w ".repeat(15));
    body["stream"] = json!(true);
    let mut s = open(srv.addr, "/v1/chat/completions", &body).await;
    let head = read_until(&mut s, "\"content\":\"w\"").await;
    let _ = srv.stop.send(());
    let rest = read_until(&mut s, "[DONE]").await;
    assert!(
        rest.contains("data: [DONE]"),
        "stream finished after shutdown began: {head}{rest}"
    );
    let done = tokio::time::timeout(Duration::from_secs(5), srv.task).await;
    assert!(
        matches!(done, Ok(Ok(Ok(())))),
        "serve returned after draining: {done:?}"
    );
    assert_eq!(srv.fake.cancelled(), 0);
    assert!(
        TcpStream::connect(srv.addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn health_and_metrics() {
    let (app, _) = app();
    let v = get(&app, "/health").await.json();
    assert_eq!(v, json!({"status": "ok", "models": ["fake"]}));
    post(&app, "/v1/chat/completions", chat_body("one two")).await;
    let mut b = chat_body("x");
    b["stream"] = json!(true);
    post(&app, "/v1/chat/completions", b).await;
    post(&app, "/v1/chat/completions", json!({})).await;
    let r = get(&app, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.headers[axum::http::header::CONTENT_TYPE]
        .to_str()
        .is_ok_and(|c| c.starts_with("text/plain")));
    let m = r.body;
    assert!(
        m.contains("hanlin_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 2\n"),
        "{m}"
    );
    assert!(
        m.contains("hanlin_requests_total{route=\"/v1/chat/completions\",status=\"400\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("hanlin_requests_total{route=\"/health\",status=\"200\"} 1\n"),
        "{m}"
    );
    assert!(m.contains("hanlin_generated_tokens_total 3\n"), "{m}");
    assert!(
        m.contains("hanlin_time_to_first_token_seconds_count 2\n"),
        "{m}"
    );
    assert!(m.contains("hanlin_requests_in_flight 0\n"), "{m}");
    assert!(
        m.contains("# TYPE hanlin_time_to_first_token_seconds histogram"),
        "{m}"
    );
}
