//! Upstream channels: OpenAI-compatible providers a model name can be routed to, tried in
//! priority order (weighted within a priority) with failover on 429, 5xx and timeouts;
//! failed channels are skipped for a while and probed back. Streams pass through byte for
//! byte and are metered from the upstream's `usage` chunk, or by counting content chunks.

use std::pin::Pin;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use hanlin_store::ChannelRecord;
use rand::Rng;
use serde_json::Value;

use crate::gateway::{now_ms, Admission, Gateway};
use crate::money::Tokens;
use crate::secret::Secret;
use crate::GatewayError;

/// A channel as held in memory, its key decrypted (and redacted in `Debug`).
#[derive(Clone, Debug)]
pub struct Channel {
    /// Id.
    pub id: String,
    /// Name (recorded in the ledger).
    pub name: String,
    /// Base URL up to `/v1`.
    pub base_url: String,
    key: Secret,
    /// `(public, upstream)` model names.
    pub models: Vec<(String, String)>,
    /// Weight within its priority.
    pub weight: i64,
    /// Higher first.
    pub priority: i64,
    /// Skipped until (0: healthy).
    pub unhealthy_until_ms: i64,
    /// Consecutive failures.
    pub failures: i64,
}

/// Parses `public=upstream` (or `name`) mappings.
pub fn parse_mappings(models: &[String]) -> Vec<(String, String)> {
    models
        .iter()
        .map(|m| match m.split_once('=') {
            Some((p, u)) => (p.to_string(), u.to_string()),
            None => (m.clone(), m.clone()),
        })
        .collect()
}

/// Channels that can serve one model, in the order to try them.
#[derive(Debug)]
pub struct Route(Vec<(Channel, String)>);

impl Gateway {
    /// Reloads channels from the store (keys that do not decrypt are skipped, loudly).
    pub async fn reload_channels(&self) -> Result<(), GatewayError> {
        let records: Vec<ChannelRecord> = self.store().channels().await?;
        let mut out = Vec::with_capacity(records.len());
        for r in records.into_iter().filter(|r| r.enabled) {
            let Some(key) = self.cipher().decrypt(&r.key_enc) else {
                tracing::error!(channel = %r.name, "channel key does not decrypt with this master key; channel skipped");
                continue;
            };
            out.push(Channel {
                models: parse_mappings(&r.models),
                id: r.id,
                name: r.name,
                base_url: r.base_url,
                key,
                weight: r.weight.max(1),
                priority: r.priority,
                unhealthy_until_ms: r.unhealthy_until_ms,
                failures: r.failures,
            });
        }
        match self.0.channels.write() {
            Ok(mut g) => *g = out,
            Err(p) => *p.into_inner() = out,
        }
        Ok(())
    }

    fn channels_snapshot(&self) -> Vec<Channel> {
        match self.0.channels.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The channels serving `model`, healthy ones first by priority (weighted shuffle within a
    /// priority), unhealthy ones last as a final resort; `None` when no channel serves it.
    pub fn route(&self, model: &str) -> Option<Route> {
        let now = now_ms();
        let mut healthy: Vec<(Channel, String)> = Vec::new();
        let mut sick: Vec<(Channel, String)> = Vec::new();
        for c in self.channels_snapshot() {
            if let Some((_, up)) = c.models.iter().find(|(p, _)| p == model) {
                let up = up.clone();
                if c.unhealthy_until_ms > now {
                    sick.push((c, up));
                } else {
                    healthy.push((c, up));
                }
            }
        }
        if healthy.is_empty() && sick.is_empty() {
            return None;
        }
        let mut ordered = weighted_order(healthy);
        sick.sort_by_key(|(c, _)| c.unhealthy_until_ms);
        ordered.extend(sick);
        Some(Route(ordered))
    }

    fn mark(&self, id: &str, ok: bool) {
        let now = now_ms();
        let mut update = None;
        if let Ok(mut g) = self.0.channels.write() {
            if let Some(c) = g.iter_mut().find(|c| c.id == id) {
                if ok {
                    if c.failures == 0 && c.unhealthy_until_ms == 0 {
                        return;
                    }
                    c.failures = 0;
                    c.unhealthy_until_ms = 0;
                } else {
                    c.failures += 1;
                    let backoff = self.config().unhealthy_for.as_millis() as i64;
                    c.unhealthy_until_ms = now + backoff * c.failures.min(10);
                }
                update = Some((c.unhealthy_until_ms, c.failures));
            }
        }
        if let Some((until, failures)) = update {
            if !ok {
                tracing::warn!(channel = %id, failures, "upstream channel marked unhealthy");
            }
            let gw = self.clone();
            let id = id.to_string();
            tokio::spawn(async move {
                if let Err(e) = gw.store().set_channel_health(&id, until, failures).await {
                    tracing::warn!(error = %e, "recording channel health failed");
                }
            });
        }
    }

    /// Probes channels whose quarantine is over with `GET /models`; healthy again on success.
    pub async fn probe_unhealthy(&self) {
        let now = now_ms();
        for c in self.channels_snapshot() {
            if c.unhealthy_until_ms == 0 || c.unhealthy_until_ms > now {
                continue;
            }
            let url = format!("{}/models", c.base_url.trim_end_matches('/'));
            let ok = matches!(
                tokio::time::timeout(
                    Duration::from_secs(5),
                    self.0.http.get(url).bearer_auth(c.key.expose()).send(),
                )
                .await,
                Ok(Ok(r)) if r.status().is_success()
            );
            self.mark(&c.id, ok);
        }
    }
}

fn weighted_order(mut v: Vec<(Channel, String)>) -> Vec<(Channel, String)> {
    v.sort_by_key(|(c, _)| std::cmp::Reverse(c.priority));
    let mut out = Vec::with_capacity(v.len());
    let mut rng = rand::thread_rng();
    while !v.is_empty() {
        let prio = v[0].0.priority;
        let same = v.iter().take_while(|(c, _)| c.priority == prio).count();
        let total: i64 = v[..same].iter().map(|(c, _)| c.weight).sum();
        let mut pick = rng.gen_range(0..total.max(1));
        let mut idx = 0;
        for (i, (c, _)) in v[..same].iter().enumerate() {
            if pick < c.weight {
                idx = i;
                break;
            }
            pick -= c.weight;
        }
        out.push(v.remove(idx));
    }
    out
}

/// Counts what an SSE stream delivered: the upstream's `usage`, else content chunks.
#[derive(Default)]
struct SseMeter {
    line: Vec<u8>,
    usage: Option<Tokens>,
    chunks: i64,
}

impl SseMeter {
    fn feed(&mut self, data: &[u8]) {
        for &b in data {
            if b == b'\n' {
                let line = std::mem::take(&mut self.line);
                self.line_done(&line);
            } else if self.line.len() < 1 << 20 {
                self.line.push(b);
            }
        }
    }

    fn line_done(&mut self, line: &[u8]) {
        let Some(payload) = line.strip_prefix(b"data:") else {
            return;
        };
        let v: Value = match serde_json::from_slice(payload.trim_ascii()) {
            Ok(v) => v,
            Err(_) => return,
        };
        if let Some(t) = tokens_of(&v) {
            self.usage = Some(t);
        }
        let has_text = v["choices"].as_array().is_some_and(|cs| {
            cs.iter().any(|c| {
                c["delta"]["content"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty())
                    || c["text"].as_str().is_some_and(|s| !s.is_empty())
            })
        });
        self.chunks += i64::from(has_text);
    }

    fn tokens(&self, prompt_est: i64) -> Tokens {
        self.usage.unwrap_or(Tokens {
            prompt: prompt_est,
            cached: 0,
            completion: self.chunks,
        })
    }
}

fn tokens_of(v: &Value) -> Option<Tokens> {
    let u = v.get("usage")?;
    let prompt = u.get("prompt_tokens")?.as_i64()?;
    Some(Tokens {
        prompt,
        cached: u["prompt_tokens_details"]["cached_tokens"]
            .as_i64()
            .unwrap_or(0),
        completion: u["completion_tokens"].as_i64().unwrap_or(0),
    })
}

/// Settles a stream once: at its end, or (client gone) when dropped.
struct Pending {
    gw: Gateway,
    adm: Option<Admission>,
    meter: SseMeter,
    prompt_est: i64,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(adm) = self.adm.take() {
            let gw = self.gw.clone();
            let t = self.meter.tokens(self.prompt_est);
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                h.spawn(async move { gw.settle(adm, t, 499).await });
            }
        }
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

fn metered_stream(inner: ByteStream, pending: Pending) -> Body {
    let s = futures_util::stream::unfold((inner, pending), |(mut inner, mut pending)| async move {
        match inner.next().await {
            Some(Ok(b)) => {
                pending.meter.feed(&b);
                Some((Ok::<Bytes, std::io::Error>(b), (inner, pending)))
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "upstream stream broke");
                if let Some(adm) = pending.adm.take() {
                    let t = pending.meter.tokens(pending.prompt_est);
                    pending.gw.settle(adm, t, 502).await;
                }
                None
            }
            None => {
                if let Some(adm) = pending.adm.take() {
                    let t = pending.meter.tokens(pending.prompt_est);
                    pending.gw.settle(adm, t, 200).await;
                }
                None
            }
        }
    });
    Body::from_stream(s)
}

/// Sends the request to the route's channels in order until one answers; settles the ledger.
pub async fn proxy(
    gw: &Gateway,
    mut adm: Admission,
    route: Route,
    path: &str,
    json: Value,
    _headers: &HeaderMap,
) -> Response {
    let sub = path.strip_prefix("/v1").unwrap_or(path);
    let stream = json.get("stream").and_then(Value::as_bool) == Some(true);
    let prompt_est = serde_json::to_vec(&json).map(|v| v.len() / 4).unwrap_or(0) as i64;
    for (ch, upstream_model) in route.0 {
        let mut body = json.clone();
        body["model"] = Value::String(upstream_model);
        let url = format!("{}{}", ch.base_url.trim_end_matches('/'), sub);
        let send =
            gw.0.http
                .post(&url)
                .bearer_auth(ch.key.expose())
                .header(header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&body).unwrap_or_default())
                .send();
        let resp = match tokio::time::timeout(gw.config().upstream_timeout, send).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!(channel = %ch.name, error = %e.without_url(), "upstream request failed");
                gw.mark(&ch.id, false);
                continue;
            }
            Err(_) => {
                tracing::warn!(channel = %ch.name, "upstream timed out");
                gw.mark(&ch.id, false);
                continue;
            }
        };
        let status = resp.status();
        if status.as_u16() == 429 || status.is_server_error() {
            tracing::warn!(channel = %ch.name, %status, "upstream refused; trying the next channel");
            gw.mark(&ch.id, false);
            continue;
        }
        gw.mark(&ch.id, true);
        adm.channel = ch.name.clone();
        let status =
            StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
        let mut out = if stream && status.is_success() {
            let pending = Pending {
                gw: gw.clone(),
                adm: Some(adm),
                meter: SseMeter::default(),
                prompt_est,
            };
            Response::new(metered_stream(Box::pin(resp.bytes_stream()), pending))
        } else {
            let bytes = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(channel = %ch.name, error = %e.without_url(), "upstream body failed");
                    gw.settle(adm, Tokens::default(), 502).await;
                    return GatewayError::Upstream("The upstream provider failed.".into())
                        .into_response();
                }
            };
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let t = tokens_of(&v).unwrap_or_default();
            gw.settle(adm, t, status.as_u16()).await;
            Response::new(Body::from(bytes))
        };
        *out.status_mut() = status;
        if let Some(ct) = content_type {
            out.headers_mut().insert(header::CONTENT_TYPE, ct);
        }
        return out;
    }
    gw.settle(adm, Tokens::default(), 502).await;
    GatewayError::Upstream("No upstream channel could serve this request.".into()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_meter_prefers_usage_and_counts_otherwise() {
        let mut m = SseMeter::default();
        m.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"he\"}}]}\n\ndata: {\"choi");
        m.feed(b"ces\":[{\"delta\":{\"content\":\"llo\"}}]}\n\ndata: [DONE]\n\n");
        assert_eq!(
            m.tokens(7),
            Tokens {
                prompt: 7,
                cached: 0,
                completion: 2
            }
        );
        m.feed(
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":3}}\n",
        );
        assert_eq!(
            m.tokens(7),
            Tokens {
                prompt: 11,
                cached: 0,
                completion: 3
            }
        );
    }

    #[test]
    fn mappings_parse() {
        let m = parse_mappings(&["a=b".into(), "c".into()]);
        assert_eq!(m, vec![("a".into(), "b".into()), ("c".into(), "c".into())]);
    }
}
