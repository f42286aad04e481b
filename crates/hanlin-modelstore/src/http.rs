//! Resumable HTTP downloads (Hugging Face `resolve` URLs and their CDN redirects).
//!
//! Redirects are followed by hand: Hugging Face publishes the LFS sha256 in the
//! `X-Linked-Etag` header of the first (redirect) response, which an automatic redirect
//! would hide, and the token must not be forwarded to the CDN host.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::blob::hash_prefix;
use crate::error::{IoContext, Result, StoreError};
use crate::progress::{NoProgress, Progress};

const MAX_REDIRECTS: usize = 10;
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// How to talk to the server.
#[derive(Clone, Debug)]
pub(crate) struct HttpOptions {
    /// Bearer token, sent only to the host of the original URL.
    pub token: Option<String>,
    /// Attempts without progress before giving up.
    pub attempts: u32,
    /// Delay before the first retry; doubled each time.
    pub retry_delay: Duration,
}

/// A finished download.
#[derive(Debug)]
pub(crate) struct Downloaded {
    /// Bytes on disk.
    pub size: u64,
    /// sha256 of those bytes.
    pub sha256: String,
    /// sha256 the server published (`X-Linked-Etag` or a sha256-shaped `ETag`).
    pub published_sha256: Option<String>,
}

/// Why one attempt ended.
enum Failure {
    /// Worth another try (connection dropped, 5xx, 429).
    Retry(String),
    /// Pointless to retry.
    Fatal(StoreError),
}

struct Opened {
    status: u16,
    body: ureq::Body,
    content_length: Option<u64>,
    content_range: Option<String>,
    published_sha256: Option<String>,
}

/// The partial file plus the hash of exactly the bytes it holds.
struct Sink<'a> {
    file: File,
    path: &'a Path,
    hasher: Sha256,
    len: u64,
}

impl<'a> Sink<'a> {
    /// Opens (or creates) `path` for appending, hashing what an earlier run left there.
    fn open(path: &'a Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ctx("open", path)?;
        let len = file.metadata().ctx("stat", path)?.len();
        let mut hasher = Sha256::new();
        if len > 0 {
            hash_prefix(path, len, &mut hasher, &NoProgress)?;
        }
        Ok(Sink {
            file,
            path,
            hasher,
            len,
        })
    }

    /// Drops everything downloaded so far.
    fn reset(&mut self) -> Result<()> {
        self.file.set_len(0).ctx("truncate", self.path)?;
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }

    fn append(&mut self, buf: &[u8]) -> Result<()> {
        self.file.write_all(buf).ctx("write", self.path)?;
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(())
    }
}

/// Downloads `url` into `dest`, resuming from whatever `dest` already holds.
pub(crate) fn download(
    url: &str,
    dest: &Path,
    opts: &HttpOptions,
    progress: &dyn Progress,
) -> Result<Downloaded> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(120)))
        .timeout_per_read(Some(Duration::from_secs(120)))
        .user_agent(format!("hanlin/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut sink = Sink::open(dest)?;
    if sink.len > 0 {
        progress.note(&format!(
            "resuming an earlier download at {} bytes",
            sink.len
        ));
    }
    let mut published = None;
    let mut failures = 0u32;
    let mut started = false;
    let result = loop {
        let before = sink.len;
        let why = match attempt(&agent, url, opts, &mut sink, progress, &mut started) {
            Ok(Round {
                published_sha256,
                done,
            }) => {
                published = published_sha256.or(published);
                if done {
                    break Ok(());
                }
                "the server's copy changed; starting over".to_string()
            }
            Err(Failure::Fatal(e)) => break Err(e),
            Err(Failure::Retry(why)) => why,
        };
        if sink.len > before {
            failures = 0;
        }
        failures += 1;
        if failures >= opts.attempts {
            break Err(StoreError::Download {
                url: url.to_string(),
                message: why,
            });
        }
        let delay = opts
            .retry_delay
            .saturating_mul(1 << (failures - 1).min(6))
            .min(MAX_RETRY_DELAY);
        tracing::warn!(url, bytes = sink.len, %why, "download interrupted; resuming");
        progress.note(&format!(
            "download interrupted at {} bytes ({why}); resuming",
            sink.len
        ));
        std::thread::sleep(delay);
    };
    progress.finish();
    result?;
    sink.file.sync_all().ctx("sync", dest)?;
    Ok(Downloaded {
        size: sink.len,
        sha256: hex::encode(sink.hasher.finalize()),
        published_sha256: published,
    })
}

/// The outcome of one request that did not fail.
struct Round {
    published_sha256: Option<String>,
    /// The file is complete; otherwise it was reset and must be fetched again.
    done: bool,
}

/// One request/response round, appending the body to `sink`.
fn attempt(
    agent: &ureq::Agent,
    url: &str,
    opts: &HttpOptions,
    sink: &mut Sink<'_>,
    progress: &dyn Progress,
    started: &mut bool,
) -> std::result::Result<Round, Failure> {
    let have = sink.len;
    let opened = open(agent, url, have, opts)?;
    let published_sha256 = opened.published_sha256.clone();
    let restart = |sink: &mut Sink<'_>| {
        sink.reset().map_err(Failure::Fatal)?;
        Ok(Round {
            published_sha256: published_sha256.clone(),
            done: false,
        })
    };
    let total = match opened.status {
        200 => {
            if have > 0 {
                tracing::info!(url, "server ignored the Range request; starting over");
                sink.reset().map_err(Failure::Fatal)?;
            }
            opened.content_length
        }
        206 => match parse_content_range(opened.content_range.as_deref()) {
            Some((Some(start), total)) if start == have => total,
            _ => return restart(sink),
        },
        // Asked for bytes past the end: either the file is complete, or it changed.
        416 if have > 0 => {
            let total = parse_content_range(opened.content_range.as_deref()).and_then(|(_, t)| t);
            if total == Some(have) {
                return Ok(Round {
                    published_sha256,
                    done: true,
                });
            }
            return restart(sink);
        }
        s => return Err(status_failure(url, s, opts.token.is_some())),
    };
    if !*started {
        progress.start("downloading", total);
        *started = true;
    }
    progress.set(sink.len);
    let mut reader = opened.body.into_reader();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Retry(e.to_string())),
        };
        // Local write errors (disk full …) are final; network errors above are resumable.
        sink.append(&buf[..n]).map_err(Failure::Fatal)?;
        progress.set(sink.len);
    }
    match total {
        Some(t) if sink.len != t => Err(Failure::Retry(format!(
            "connection closed at {} of {t} bytes",
            sink.len
        ))),
        _ => Ok(Round {
            published_sha256,
            done: true,
        }),
    }
}

/// Sends the GET (with Range from `have`), following redirects.
fn open(
    agent: &ureq::Agent,
    url: &str,
    have: u64,
    opts: &HttpOptions,
) -> std::result::Result<Opened, Failure> {
    let auth_origin = origin(url);
    let mut current = url.to_string();
    let mut published = None;
    for _ in 0..=MAX_REDIRECTS {
        let mut req = agent.get(&current);
        if have > 0 {
            req = req.header("Range", format!("bytes={have}-"));
        }
        if let Some(token) = opts
            .token
            .as_deref()
            .filter(|_| origin(&current) == auth_origin)
        {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        let resp = req.call().map_err(|e| {
            // Without any bytes yet, an unreachable server is a setup problem (wrong
            // HF_ENDPOINT, offline): fail fast. Mid-download, the same error is a hiccup.
            let unreachable = matches!(
                &e,
                ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::Tls(_) | ureq::Error::Rustls(_)
            ) || matches!(&e, ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused);
            let fatal = matches!(e, ureq::Error::BadUri(_) | ureq::Error::Http(_)) || (unreachable && have == 0);
            let message = format!("{e}");
            if fatal {
                Failure::Fatal(StoreError::Download { url: current.clone(), message })
            } else {
                Failure::Retry(message)
            }
        })?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if published.is_none() {
            published = header("x-linked-etag").and_then(|e| sha_from_etag(&e));
        }
        let status = resp.status().as_u16();
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            let loc = header("location")
                .ok_or_else(|| Failure::Retry(format!("{status} redirect without Location")))?;
            current = join_location(&current, &loc);
            tracing::debug!(to = %current, "following redirect");
            continue;
        }
        if published.is_none() {
            published = header("etag").and_then(|e| sha_from_etag(&e));
        }
        return Ok(Opened {
            status,
            content_length: header("content-length").and_then(|v| v.trim().parse().ok()),
            content_range: header("content-range"),
            published_sha256: published,
            body: resp.into_body(),
        });
    }
    Err(Failure::Fatal(StoreError::Download {
        url: url.to_string(),
        message: format!("more than {MAX_REDIRECTS} redirects"),
    }))
}

fn status_failure(url: &str, status: u16, has_token: bool) -> Failure {
    let hint = match status {
        404 => "not found; check the owner, repository, file name and revision".to_string(),
        401 | 403 if has_token => {
            "access denied; does HF_TOKEN have access to this repository?".to_string()
        }
        401 | 403 => "access denied; gated or private repositories need HF_TOKEN".to_string(),
        429 | 500..=599 => return Failure::Retry(format!("HTTP {status}")),
        _ => "unexpected response".to_string(),
    };
    Failure::Fatal(StoreError::HttpStatus {
        url: url.to_string(),
        status,
        hint,
    })
}

/// `bytes S-E/T` → (Some(S), Some(T)); `bytes */T` → (None, Some(T)).
fn parse_content_range(v: Option<&str>) -> Option<(Option<u64>, Option<u64>)> {
    let rest = v?.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = total.trim().parse().ok();
    let start = match range.trim() {
        "*" => None,
        r => Some(r.split_once('-')?.0.trim().parse().ok()?),
    };
    Some((start, total))
}

/// The sha256 inside an ETag, if it is one (LFS etags are; git blob etags are sha1).
fn sha_from_etag(etag: &str) -> Option<String> {
    let e = etag.trim();
    let e = e.strip_prefix("W/").unwrap_or(e).trim_matches('"');
    crate::source::parse_sha(e).ok()
}

/// `scheme://authority` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// Resolves a `Location` header against the URL that returned it.
fn join_location(base: &str, loc: &str) -> String {
    if loc.contains("://") {
        loc.to_string()
    } else if let Some(rest) = loc.strip_prefix("//") {
        let scheme = base.split("://").next().unwrap_or("https");
        format!("{scheme}://{rest}")
    } else if loc.starts_with('/') {
        format!("{}{loc}", origin(base))
    } else {
        let path_end = base.find(['?', '#']).unwrap_or(base.len());
        let dir_end = base[..path_end].rfind('/').map_or(path_end, |i| i + 1);
        format!("{}{loc}", &base[..dir_end.max(origin(base).len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        assert_eq!(
            parse_content_range(Some("bytes 100-199/200")),
            Some((Some(100), Some(200)))
        );
        assert_eq!(
            parse_content_range(Some("bytes */200")),
            Some((None, Some(200)))
        );
        assert_eq!(
            parse_content_range(Some("bytes 5-9/*")),
            Some((Some(5), None))
        );
        assert_eq!(parse_content_range(Some("items 1-2/3")), None);
        assert_eq!(parse_content_range(None), None);
    }

    #[test]
    fn etags() {
        let sha = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
        assert_eq!(sha_from_etag(&format!("\"{sha}\"")).as_deref(), Some(sha));
        assert_eq!(
            sha_from_etag(&format!("W/\"{}\"", sha.to_uppercase())).as_deref(),
            Some(sha)
        );
        assert_eq!(
            sha_from_etag("\"5d41402abc4b2a76b9719d911017c592aaaaaaaa\""),
            None
        );
    }

    #[test]
    fn locations() {
        let base = "https://hf.co/a/b/resolve/main/x.gguf?q=1";
        assert_eq!(origin(base), "https://hf.co");
        assert_eq!(origin("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(join_location(base, "https://cdn.x/y"), "https://cdn.x/y");
        assert_eq!(join_location(base, "//cdn.x/y"), "https://cdn.x/y");
        assert_eq!(join_location(base, "/api/z"), "https://hf.co/api/z");
        assert_eq!(
            join_location(base, "y.gguf"),
            "https://hf.co/a/b/resolve/main/y.gguf"
        );
    }
}
