//! Hugging Face downloads against a local HTTP server: redirects, sha checks, resume, errors.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns panic on setup failure by design

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{files_in, sha256, tiny_gguf};
use hanlin_modelstore::{NoProgress, Settings, Store, StoreError};

/// What the server does for one path.
#[derive(Clone, Default)]
struct Route {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
    /// For the first N requests: send the full Content-Length but only this many bytes, then hang up.
    drop_after: Option<usize>,
    drops_left: usize,
}

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    range: Option<String>,
    auth: Option<String>,
}

#[derive(Clone, Default)]
struct Server {
    routes: Arc<Mutex<HashMap<String, Route>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    base: String,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = Server {
            base: format!("http://{}", listener.local_addr().unwrap()),
            ..Server::default()
        };
        let s = server.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || s.handle(stream));
            }
        });
        server
    }

    fn route(&self, path: &str, route: Route) {
        self.routes.lock().unwrap().insert(path.to_string(), route);
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn handle(&self, mut stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.trim_end().split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let range = headers.get("range").cloned();
        self.seen.lock().unwrap().push(Seen {
            path: path.clone(),
            range: range.clone(),
            auth: headers.get("authorization").cloned(),
        });

        let route = {
            let mut routes = self.routes.lock().unwrap();
            match routes.get_mut(&path) {
                Some(r) => {
                    let snapshot = r.clone();
                    if r.drops_left > 0 {
                        r.drops_left -= 1;
                    }
                    Some(snapshot)
                }
                None => None,
            }
        };
        let Some(route) = route else {
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found");
            return;
        };
        let mut status = route.status;
        let mut body: &[u8] = &route.body;
        let mut extra = route.headers.clone();
        if status == 200 {
            if let Some(start) = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
            {
                let start: usize = start.parse().unwrap();
                let total = route.body.len();
                if start >= total {
                    status = 416;
                    extra.push(("Content-Range".into(), format!("bytes */{total}")));
                    body = b"";
                } else {
                    status = 206;
                    extra.push((
                        "Content-Range".into(),
                        format!("bytes {start}-{}/{total}", total - 1),
                    ));
                    body = &route.body[start..];
                }
            }
        }
        let mut head = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in &extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let _ = stream.write_all(head.as_bytes());
        match route.drop_after.filter(|_| route.drops_left > 0) {
            Some(n) => {
                let _ = stream.write_all(&body[..n.min(body.len())]);
                let _ = stream.flush();
                let _ = stream.shutdown(Shutdown::Both);
            }
            None => {
                let _ = stream.write_all(body);
            }
        }
    }
}

fn ok(body: Vec<u8>) -> Route {
    Route {
        status: 200,
        body,
        ..Route::default()
    }
}

fn redirect(to: String, linked_sha: Option<&str>) -> Route {
    let mut headers = vec![("Location".to_string(), to)];
    if let Some(sha) = linked_sha {
        headers.push(("X-Linked-Etag".into(), format!("\"{sha}\"")));
    }
    Route {
        status: 302,
        headers,
        ..Route::default()
    }
}

fn store_for(hub: &Server, token: Option<&str>, attempts: u32) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        hf_endpoint: hub.base.clone(),
        hf_token: token.map(str::to_string),
        download_attempts: attempts,
        retry_delay: Duration::from_millis(10),
        ..Settings::default()
    };
    let store = Store::open_with(dir.path().join("home"), settings).unwrap();
    (dir, store)
}

#[test]
fn download_via_redirect_with_linked_etag_sha() {
    let hub = Server::start();
    let cdn = Server::start();
    let bytes = tiny_gguf("llama", 1, 50_000);
    let sha = sha256(&bytes);
    hub.route(
        "/acme/tiny-GGUF/resolve/main/Tiny-Q8_0.gguf",
        redirect(format!("{}/blob/1", cdn.base), Some(&sha)),
    );
    cdn.route("/blob/1", ok(bytes.clone()));
    let (_d, store) = store_for(&hub, Some("secret"), 3);

    let m = store
        .pull("hf:acme/tiny-GGUF/Tiny-Q8_0.gguf", None, &NoProgress)
        .unwrap();
    assert_eq!(m.name, "tiny-q8_0:latest");
    assert_eq!(m.sha256, sha);
    assert_eq!(m.source, "hf:acme/tiny-GGUF/Tiny-Q8_0.gguf@main");
    assert_eq!(
        std::fs::read(store.resolve("tiny-q8_0").unwrap()).unwrap(),
        bytes
    );
    assert_eq!(
        files_in(&store.home().join("models/blobs")),
        vec![format!("sha256-{sha}")]
    );

    // The token goes to the hub only, never to the CDN host it redirects to.
    assert_eq!(hub.seen()[0].auth.as_deref(), Some("Bearer secret"));
    assert_eq!(cdn.seen()[0].auth, None);

    // Pulling again is answered from the store without touching the network.
    let before = hub.seen().len();
    assert_eq!(
        store
            .pull("hf:acme/tiny-GGUF/Tiny-Q8_0.gguf", None, &NoProgress)
            .unwrap()
            .sha256,
        sha
    );
    assert_eq!(hub.seen().len(), before);
}

#[test]
fn published_sha_mismatch_is_rejected_and_deleted() {
    let hub = Server::start();
    let bytes = tiny_gguf("llama", 2, 1000);
    let wrong = sha256(b"something else");
    hub.route(
        "/o/r/resolve/v1/m.gguf",
        redirect(format!("{}/cdn/m", hub.base), Some(&wrong)),
    );
    hub.route("/cdn/m", ok(bytes.clone()));
    let (_d, store) = store_for(&hub, None, 3);

    let err = store
        .pull("hf:o/r/m.gguf@v1", None, &NoProgress)
        .unwrap_err();
    match &err {
        StoreError::ShaMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &sha256(&bytes));
        }
        e => panic!("expected ShaMismatch, got {e:?}"),
    }
    assert!(err.to_string().contains("deleted"), "{err}");
    assert!(
        files_in(&store.home().join("models/blobs")).is_empty(),
        "bad download removed"
    );
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn explicit_sha_suffix_is_checked_and_etag_fallback_used() {
    let hub = Server::start();
    let bytes = tiny_gguf("llama", 3, 1000);
    let sha = sha256(&bytes);
    // No redirect here: the sha256-shaped ETag of the response itself is the published hash.
    let mut route = ok(bytes.clone());
    route.headers.push(("ETag".into(), format!("\"{sha}\"")));
    hub.route("/o/r/resolve/main/m.gguf", route);
    let (_d, store) = store_for(&hub, None, 3);

    let wrong = sha256(b"nope");
    let err = store
        .pull(&format!("hf:o/r/m.gguf#sha256={wrong}"), None, &NoProgress)
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ShaMismatch { ref expected, .. } if *expected == wrong),
        "{err:?}"
    );
    assert!(files_in(&store.home().join("models/blobs")).is_empty());

    let m = store
        .pull(
            &format!("hf:o/r/m.gguf#sha256={sha}"),
            Some("pinned"),
            &NoProgress,
        )
        .unwrap();
    assert_eq!(m.sha256, sha);
    let m = store
        .pull("hf:o/r/m.gguf", Some("by-etag"), &NoProgress)
        .unwrap();
    assert_eq!(m.sha256, sha);
}

#[test]
fn interrupted_download_resumes_with_a_range_request() {
    let hub = Server::start();
    let bytes = tiny_gguf("llama", 4, 100_000);
    let sha = sha256(&bytes);
    let half = bytes.len() / 2;
    hub.route(
        "/o/r/resolve/main/big.gguf",
        redirect(format!("{}/cdn/big", hub.base), Some(&sha)),
    );
    hub.route(
        "/cdn/big",
        Route {
            drop_after: Some(half),
            drops_left: 1,
            ..ok(bytes.clone())
        },
    );
    let (_d, store) = store_for(&hub, None, 3);

    let m = store.pull("hf:o/r/big.gguf", None, &NoProgress).unwrap();
    assert_eq!(m.sha256, sha);
    assert_eq!(std::fs::read(store.resolve("big").unwrap()).unwrap(), bytes);

    let cdn: Vec<Seen> = hub
        .seen()
        .into_iter()
        .filter(|s| s.path == "/cdn/big")
        .collect();
    assert_eq!(cdn.len(), 2, "{cdn:?}");
    assert_eq!(cdn[0].range, None);
    assert_eq!(
        cdn[1].range.as_deref(),
        Some(format!("bytes={half}-").as_str())
    );
}

#[test]
fn a_later_pull_resumes_what_an_earlier_one_left() {
    let hub = Server::start();
    let bytes = tiny_gguf("llama", 5, 100_000);
    let sha = sha256(&bytes);
    let cut = bytes.len() / 3;
    hub.route(
        "/o/r/resolve/main/big.gguf",
        redirect(format!("{}/cdn/big", hub.base), Some(&sha)),
    );
    hub.route(
        "/cdn/big",
        Route {
            drop_after: Some(cut),
            drops_left: 1,
            ..ok(bytes.clone())
        },
    );
    // One attempt only: the first pull gives up, keeping its partial file.
    let (_d, store) = store_for(&hub, None, 1);
    let err = store
        .pull("hf:o/r/big.gguf", None, &NoProgress)
        .unwrap_err();
    assert!(matches!(err, StoreError::Download { .. }), "{err:?}");
    let blobs = files_in(&store.home().join("models/blobs"));
    assert!(
        blobs.len() == 1 && blobs[0].starts_with("partial-"),
        "{blobs:?}"
    );

    let m = store.pull("hf:o/r/big.gguf", None, &NoProgress).unwrap();
    assert_eq!(m.sha256, sha);
    let last = hub
        .seen()
        .into_iter()
        .rfind(|s| s.path == "/cdn/big")
        .unwrap();
    assert_eq!(
        last.range.as_deref(),
        Some(format!("bytes={cut}-").as_str())
    );
    assert_eq!(
        files_in(&store.home().join("models/blobs")),
        vec![format!("sha256-{sha}")]
    );
}

#[test]
fn not_found_is_a_clear_error() {
    let hub = Server::start();
    let (_d, store) = store_for(&hub, None, 3);
    let err = store
        .pull("hf:nobody/nothing/x.gguf", None, &NoProgress)
        .unwrap_err();
    match &err {
        StoreError::HttpStatus { status, url, .. } => {
            assert_eq!(*status, 404);
            assert!(
                url.ends_with("/nobody/nothing/resolve/main/x.gguf"),
                "{url}"
            );
        }
        e => panic!("expected HttpStatus, got {e:?}"),
    }
    assert!(err.to_string().contains("not found"), "{err}");
    assert_eq!(hub.seen().len(), 1, "a 404 is not retried");
    assert!(files_in(&store.home().join("models/blobs")).is_empty());
}

#[test]
fn a_downloaded_file_that_is_not_gguf_is_rejected() {
    let hub = Server::start();
    hub.route(
        "/o/r/resolve/main/fake.gguf",
        ok(b"<html>login page</html>".to_vec()),
    );
    let (_d, store) = store_for(&hub, None, 3);
    let err = store
        .pull("hf:o/r/fake.gguf", None, &NoProgress)
        .unwrap_err();
    assert!(matches!(err, StoreError::NotGguf { .. }), "{err:?}");
    assert!(files_in(&store.home().join("models/blobs")).is_empty());
}

#[test]
fn an_unreachable_endpoint_fails_fast() {
    // A port that was just free: connecting is refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        hf_endpoint: format!("http://127.0.0.1:{port}"),
        retry_delay: Duration::from_secs(5),
        ..Settings::default()
    };
    let store = Store::open_with(dir.path().to_path_buf(), settings).unwrap();
    let t = std::time::Instant::now();
    let err = store.pull("hf:o/r/m.gguf", None, &NoProgress).unwrap_err();
    assert!(matches!(err, StoreError::Download { .. }), "{err:?}");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "no retries when nothing was reached: {:?}",
        t.elapsed()
    );
}
