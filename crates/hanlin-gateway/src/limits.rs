//! Requests- and tokens-per-minute limits per key, tenant and model, counted in fixed one-minute
//! windows in the shared database (so every replica sees the same counts), and OpenAI's
//! `x-ratelimit-*` headers.

use axum::http::{HeaderMap, HeaderValue};
use hanlin_store::Store;

use crate::GatewayError;

/// One limit to enforce.
#[derive(Clone, Debug)]
pub struct Check {
    label: &'static str,
    scope: String,
    rpm: i64,
    tpm: i64,
}

impl Check {
    /// A limit on `scope` (0: unlimited).
    pub fn new(label: &'static str, scope: String, rpm: i64, tpm: i64) -> Self {
        Check {
            label,
            scope,
            rpm,
            tpm,
        }
    }

    fn active(&self) -> bool {
        self.rpm > 0 || self.tpm > 0
    }
}

/// What the tightest limit looks like after this request, for the response headers.
#[derive(Clone, Debug, Default)]
pub struct RateInfo {
    /// Requests per minute allowed (tightest scope), if any.
    pub limit_requests: Option<i64>,
    /// Requests left in this window.
    pub remaining_requests: i64,
    /// Tokens per minute allowed (tightest scope), if any.
    pub limit_tokens: Option<i64>,
    /// Tokens left in this window.
    pub remaining_tokens: i64,
    /// Milliseconds until the window resets.
    pub reset_ms: i64,
}

impl RateInfo {
    /// Adds `x-ratelimit-*` headers.
    pub fn apply(&self, h: &mut HeaderMap) {
        let reset = format!("{}ms", self.reset_ms.max(0));
        let mut put = |name: &'static str, v: String| {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(name, v);
            }
        };
        if let Some(l) = self.limit_requests {
            put("x-ratelimit-limit-requests", l.to_string());
            put(
                "x-ratelimit-remaining-requests",
                self.remaining_requests.max(0).to_string(),
            );
            put("x-ratelimit-reset-requests", reset.clone());
        }
        if let Some(l) = self.limit_tokens {
            put("x-ratelimit-limit-tokens", l.to_string());
            put(
                "x-ratelimit-remaining-tokens",
                self.remaining_tokens.max(0).to_string(),
            );
            put("x-ratelimit-reset-tokens", reset);
        }
    }
}

/// Counts this request against every active limit (one statement for all scopes). Over a
/// limit: the counts are given back and the refusal names the scope. Returns the header state
/// and the scopes whose token counts the settlement corrects.
pub async fn hit(
    store: &dyn Store,
    checks: &[Check],
    window_start: i64,
    now: i64,
    est_tokens: i64,
) -> Result<(Option<RateInfo>, Vec<String>), GatewayError> {
    let active: Vec<&Check> = checks.iter().filter(|c| c.active()).collect();
    if active.is_empty() {
        return Ok((None, Vec::new()));
    }
    let scopes: Vec<&str> = active.iter().map(|c| c.scope.as_str()).collect();
    let totals = store
        .hit_windows(&scopes, window_start, 1, est_tokens)
        .await?;
    let reset_ms = window_start + 60_000 - now;
    let mut info = RateInfo {
        reset_ms,
        remaining_requests: i64::MAX,
        remaining_tokens: i64::MAX,
        ..RateInfo::default()
    };
    for (c, &(reqs, toks)) in active.iter().zip(&totals) {
        let over = if c.rpm > 0 && reqs > c.rpm {
            Some(("requests", c.rpm))
        } else if c.tpm > 0 && toks > c.tpm {
            Some(("tokens", c.tpm))
        } else {
            None
        };
        if let Some((what, limit)) = over {
            give_back(store, &scopes, window_start, est_tokens).await;
            return Err(GatewayError::RateLimited {
                what,
                scope: c.label,
                limit,
                retry_after_s: (reset_ms.max(0) as u64).div_ceil(1000).max(1),
            });
        }
        if c.rpm > 0 && c.rpm - reqs < info.remaining_requests {
            info.remaining_requests = c.rpm - reqs;
            info.limit_requests = Some(c.rpm);
        }
        if c.tpm > 0 && c.tpm - toks < info.remaining_tokens {
            info.remaining_tokens = c.tpm - toks;
            info.limit_tokens = Some(c.tpm);
        }
    }
    let token_scopes = scopes.iter().map(|s| s.to_string()).collect();
    Ok((Some(info), token_scopes))
}

async fn give_back(store: &dyn Store, scopes: &[&str], window_start: i64, est_tokens: i64) {
    if let Err(e) = store
        .hit_windows(scopes, window_start, -1, -est_tokens)
        .await
    {
        tracing::warn!(error = %e, "giving back rate-limit slots failed");
    }
}

/// Gives back the counts of a request refused after [`hit`] let it through.
pub async fn undo(store: &dyn Store, checks: &[Check], window_start: i64, est_tokens: i64) {
    let scopes: Vec<&str> = checks
        .iter()
        .filter(|c| c.active())
        .map(|c| c.scope.as_str())
        .collect();
    if !scopes.is_empty() {
        give_back(store, &scopes, window_start, est_tokens).await;
    }
}
