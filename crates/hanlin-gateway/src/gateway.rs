//! The gateway service: who is calling ([`Gateway::authenticate`]), may they ([`Gateway::admit`]:
//! allow-list, rate limits, money held up front), and what it cost ([`Gateway::settle`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hanlin_store::{
    ApiKeyRecord, Billing, Currency, Price, Reservation, Store, Tenant, UsageRecord,
};

use crate::limits::{self, RateInfo};
use crate::money::{cost, Tokens};
use crate::secret::{parse_key, verify_secret, Cipher};
use crate::upstream::Channel;
use crate::GatewayError;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `YYYY-MM` of a Unix-ms time (UTC), for subscription periods.
pub fn month_of(ms: i64) -> String {
    let (y, m, _) = civil_from_days(ms.div_euclid(86_400_000));
    format!("{y:04}-{m:02}")
}

/// `YYYY-MM-DD` of a day number since 1970-01-01.
pub fn day_string(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Howard Hinnant's days → civil date, exact for any day; avoids a date crate for two uses.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Day number of a civil date (inverse of [`civil_from_days`]).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Tunables.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Completion tokens assumed when a request sets no `max_tokens` (for the money held up
    /// front and the token limit); actual usage settles the difference.
    pub default_max_tokens: i64,
    /// A reservation older than this belongs to a crashed replica and is released.
    pub reservation_ttl: Duration,
    /// Time allowed for an upstream to send response headers.
    pub upstream_timeout: Duration,
    /// How long a failed channel is skipped before it is probed again.
    pub unhealthy_for: Duration,
    /// Largest request body the gateway reads.
    pub max_body_bytes: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            default_max_tokens: 1024,
            reservation_ttl: Duration::from_secs(900),
            upstream_timeout: Duration::from_secs(60),
            unhealthy_for: Duration::from_secs(30),
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) cipher: Cipher,
    pub(crate) config: GatewayConfig,
    pub(crate) channels: RwLock<Vec<Channel>>,
    pub(crate) http: reqwest::Client,
    /// Prices and group ratios change rarely and are read on every request: cached briefly
    /// (a change applies within [`PRICE_TTL`]). Keys and balances are never cached.
    prices: Mutex<HashMap<String, (Instant, Option<Price>)>>,
    groups: Mutex<HashMap<String, (Instant, i64)>>,
}

/// How long a cached price or group ratio is trusted.
pub const PRICE_TTL: Duration = Duration::from_secs(2);

/// The gateway; cheap to clone.
#[derive(Clone)]
pub struct Gateway(pub(crate) Arc<Inner>);

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The key used.
    pub key: ApiKeyRecord,
    /// Its tenant.
    pub tenant: Tenant,
}

/// What a request is expected to use, for the checks made before it runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Estimate {
    /// Upper-bound guess of prompt tokens.
    pub prompt_tokens: i64,
    /// `max_tokens` or the default.
    pub max_completion_tokens: i64,
}

/// A request let in: what it holds and what it needs to settle.
#[derive(Debug)]
pub struct Admission {
    /// Ledger idempotency key.
    pub request_id: String,
    /// Caller.
    pub tenant_id: String,
    /// Key.
    pub key_id: String,
    /// Model as requested.
    pub model: String,
    /// Upstream channel name, once chosen (`""`: local).
    pub channel: String,
    currency: Currency,
    price: Option<Price>,
    ratio_bp: i64,
    billing: Billing,
    allowance_left: i64,
    est_tokens: i64,
    window_start: i64,
    token_scopes: Vec<String>,
    /// Held up front.
    pub reserved: i64,
    /// Rate-limit state for the response headers.
    pub rate: Option<RateInfo>,
    t0: Instant,
}

impl Gateway {
    /// A gateway over `store`; `cipher` protects channel keys.
    pub fn new(store: Arc<dyn Store>, cipher: Cipher, config: GatewayConfig) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Gateway(Arc::new(Inner {
            store,
            cipher,
            config,
            channels: RwLock::new(Vec::new()),
            http,
            prices: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
        }))
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.0.store.as_ref()
    }

    /// The cipher for channel keys.
    pub fn cipher(&self) -> &Cipher {
        &self.0.cipher
    }

    /// Tunables.
    pub fn config(&self) -> &GatewayConfig {
        &self.0.config
    }

    /// Start-up housekeeping, then a background task that repeats it: releases holds of
    /// crashed replicas, forgets old rate windows, reloads channels and probes unhealthy ones.
    /// `release_all_holds`: true for a single-process SQLite deployment, where every hold that
    /// exists at start-up was left by a previous run of this process.
    pub async fn start_housekeeping(&self, release_all_holds: bool) -> Result<(), GatewayError> {
        let cutoff = if release_all_holds {
            now_ms()
        } else {
            now_ms() - self.0.config.reservation_ttl.as_millis() as i64
        };
        let released = self.store().sweep_reservations(cutoff).await?;
        if released > 0 {
            tracing::warn!(released, "released holds left by an earlier crash");
        }
        self.reload_channels().await?;
        let gw = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                gw.housekeep_once().await;
            }
        });
        Ok(())
    }

    async fn housekeep_once(&self) {
        let ttl = self.0.config.reservation_ttl.as_millis() as i64;
        if let Err(e) = self.store().sweep_reservations(now_ms() - ttl).await {
            tracing::warn!(error = %e, "sweeping holds failed");
        }
        if let Err(e) = self.store().prune_windows(now_ms() - 180_000).await {
            tracing::warn!(error = %e, "pruning rate windows failed");
        }
        if let Err(e) = self.reload_channels().await {
            tracing::warn!(error = %e, "reloading channels failed");
        }
        self.probe_unhealthy().await;
    }

    async fn price(&self, model: &str) -> Result<Option<Price>, GatewayError> {
        if let Ok(m) = self.0.prices.lock() {
            if let Some((at, p)) = m.get(model) {
                if at.elapsed() < PRICE_TTL {
                    return Ok(p.clone());
                }
            }
        }
        let p = self.store().price(model).await?;
        if let Ok(mut m) = self.0.prices.lock() {
            // Bounded: a flood of made-up model names must not grow the cache without limit.
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(model.to_string(), (Instant::now(), p.clone()));
        }
        Ok(p)
    }

    async fn group_ratio(&self, group: &str) -> Result<i64, GatewayError> {
        if let Ok(m) = self.0.groups.lock() {
            if let Some((at, r)) = m.get(group) {
                if at.elapsed() < PRICE_TTL {
                    return Ok(*r);
                }
            }
        }
        let r = self.store().group_ratio(group).await?.unwrap_or(10_000);
        if let Ok(mut m) = self.0.groups.lock() {
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(group.to_string(), (Instant::now(), r));
        }
        Ok(r)
    }

    /// Forgets cached prices and group ratios (after an admin change in this process).
    pub fn invalidate_prices(&self) {
        if let Ok(mut m) = self.0.prices.lock() {
            m.clear();
        }
        if let Ok(mut m) = self.0.groups.lock() {
            m.clear();
        }
    }

    /// Checks `Authorization: Bearer sk-…`. Every failure is the same 401 so that callers
    /// cannot tell a revoked key from one that never existed.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, GatewayError> {
        const BAD: &str = "Incorrect API key provided.";
        let Some(value) = authorization else {
            return Err(GatewayError::Unauthorized(
                "You didn't provide an API key. Provide it in the Authorization header as `Bearer KEY`.",
            ));
        };
        let given = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or(GatewayError::Unauthorized(BAD))?;
        let (id, secret) = parse_key(given).ok_or(GatewayError::Unauthorized(BAD))?;
        let (key, tenant) = match self.store().key_with_tenant(id).await {
            Ok(kt) => kt,
            Err(hanlin_store::StoreError::NotFound(_)) => {
                return Err(GatewayError::Unauthorized(BAD))
            }
            Err(e) => return Err(e.into()),
        };
        if !verify_secret(secret, &key.hash) {
            tracing::info!(key = %key.id, "wrong secret for key");
            return Err(GatewayError::Unauthorized(BAD));
        }
        let now = now_ms();
        if key.revoked_ms != 0 {
            tracing::info!(key = %key.id, "revoked key used");
            return Err(GatewayError::Unauthorized(BAD));
        }
        if key.expires_ms != 0 && key.expires_ms <= now {
            tracing::info!(key = %key.id, "expired key used");
            return Err(GatewayError::Unauthorized(BAD));
        }
        if tenant.disabled {
            return Err(GatewayError::Forbidden {
                message: "This account is disabled.".into(),
                code: "account_disabled",
            });
        }
        Ok(Caller { key, tenant })
    }

    /// Lets a request for `model` in (or says why not): allow-list, rate limits, then money
    /// held up front so that concurrent requests cannot overspend by more than one request.
    pub async fn admit(
        &self,
        caller: &Caller,
        model: &str,
        est: Estimate,
    ) -> Result<Admission, GatewayError> {
        let t0 = Instant::now();
        let key = &caller.key;
        let tenant = &caller.tenant;
        if !key.models.is_empty() && !key.models.iter().any(|m| m == model) {
            return Err(GatewayError::Forbidden {
                message: format!("This key is not allowed to use model '{model}'."),
                code: "model_not_allowed",
            });
        }
        let price = self.price(model).await?;
        if let Some(p) = &price {
            if p.currency != tenant.currency {
                return Err(GatewayError::Forbidden {
                    message: format!("Model '{model}' is not sold in {}.", tenant.currency),
                    code: "currency_mismatch",
                });
            }
        }
        let est_tokens = est.prompt_tokens + est.max_completion_tokens;
        let now = now_ms();
        let window_start = now - now.rem_euclid(60_000);
        let mut checks = vec![
            limits::Check::new("key", format!("key:{}", key.id), key.rpm, key.tpm),
            limits::Check::new(
                "tenant",
                format!("tenant:{}", tenant.id),
                tenant.rpm,
                tenant.tpm,
            ),
        ];
        if let Some(p) = &price {
            checks.push(limits::Check::new(
                "model",
                format!("model:{model}"),
                p.rpm,
                p.tpm,
            ));
        }
        let (rate, token_scopes) =
            limits::hit(self.store(), &checks, window_start, now, est_tokens).await?;
        let ratio_bp = if tenant.group.is_empty() {
            10_000
        } else {
            self.group_ratio(&tenant.group).await?
        };
        let period = month_of(now);
        let used = if tenant.period == period {
            tenant.period_tokens
        } else {
            0
        };
        let allowance_left = if tenant.billing == Billing::Subscription {
            (tenant.included_tokens - used).max(0)
        } else {
            0
        };
        let mut adm = Admission {
            request_id: new_request_id(),
            tenant_id: tenant.id.clone(),
            key_id: key.id.clone(),
            model: model.to_string(),
            channel: String::new(),
            currency: tenant.currency,
            price,
            ratio_bp,
            billing: tenant.billing,
            allowance_left,
            est_tokens,
            window_start,
            token_scopes,
            reserved: 0,
            rate,
            t0,
        };
        let hold = adm.charge(Tokens {
            prompt: est.prompt_tokens,
            cached: 0,
            completion: est.max_completion_tokens,
        });
        let ok = self
            .store()
            .reserve(&Reservation {
                request_id: adm.request_id.clone(),
                tenant_id: adm.tenant_id.clone(),
                key_id: adm.key_id.clone(),
                amount: hold,
                created_ms: now,
            })
            .await?;
        if !ok {
            // Give the rate-limit slot back: a refused request should not also eat the quota.
            limits::undo(self.store(), &checks, window_start, est_tokens).await;
            return Err(GatewayError::InsufficientQuota);
        }
        adm.reserved = hold;
        Ok(adm)
    }

    /// Writes the request's one ledger row (idempotently), charges it and releases its hold.
    pub async fn settle(&self, adm: Admission, tokens: Tokens, status: u16) {
        let cost = if (200..300).contains(&status) || status == 499 {
            adm.charge(tokens)
        } else {
            0
        };
        let now = now_ms();
        let record = UsageRecord {
            request_id: adm.request_id.clone(),
            tenant_id: adm.tenant_id.clone(),
            key_id: adm.key_id.clone(),
            model: adm.model.clone(),
            channel: adm.channel.clone(),
            prompt_tokens: tokens.prompt,
            cached_tokens: tokens.cached,
            completion_tokens: tokens.completion,
            cost,
            currency: adm.currency,
            latency_ms: adm.t0.elapsed().as_millis() as i64,
            status: i64::from(status),
            created_ms: now,
        };
        // Writes are retried briefly: a busy database must not lose a billable record.
        let mut attempt = 0;
        loop {
            match self.store().settle(&record).await {
                Ok(_) => break,
                Err(e) if attempt < 3 => {
                    attempt += 1;
                    tracing::warn!(error = %e, request = %record.request_id, "ledger write failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, request = %record.request_id, "ledger write failed; hold kept for the sweep");
                    break;
                }
            }
        }
        let delta = tokens.total() - adm.est_tokens;
        if delta != 0 && !adm.token_scopes.is_empty() {
            let scopes: Vec<&str> = adm.token_scopes.iter().map(String::as_str).collect();
            if let Err(e) = self
                .store()
                .hit_windows(&scopes, adm.window_start, 0, delta)
                .await
            {
                tracing::warn!(error = %e, "correcting the token windows failed");
            }
        }
    }
}

impl Admission {
    /// What `t` costs this caller: price × group ratio, minus what a subscription includes.
    fn charge(&self, t: Tokens) -> i64 {
        let Some(p) = &self.price else {
            return 0;
        };
        let full = cost(p, t, self.ratio_bp);
        if self.billing != Billing::Subscription || t.total() == 0 {
            return full;
        }
        let covered = t.total().min(self.allowance_left);
        let over = t.total() - covered;
        // Only the share of tokens beyond the allowance is paid for, rounded up.
        let fixed = cost(p, Tokens::default(), self.ratio_bp);
        let variable = full - fixed;
        fixed
            + ((variable as i128 * over as i128 + t.total() as i128 - 1) / t.total() as i128) as i64
    }

    /// Seconds since admission.
    pub fn elapsed(&self) -> Duration {
        self.t0.elapsed()
    }
}

/// A request id: 128 random bits.
pub fn new_request_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("req_{}", hex::encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(day_string(days_from_civil(2024, 2, 29)), "2024-02-29");
        assert_eq!(month_of(1_764_400_000_000), "2025-11");
        for d in (-1000..40_000).step_by(37) {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}
