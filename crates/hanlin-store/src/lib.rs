//! Storage for the gateway: repository traits ([`Store`]) and one SQL implementation that runs on
//! SQLite (embedded default: one file, WAL, created and migrated on first open) and on PostgreSQL
//! (many replicas). Each database has its own migrations folder; the queries are written in the
//! common subset of both dialects so that one conformance story (see `tests/conformance.rs`)
//! proves the same behaviour on both. No `sqlx` type appears in this crate's public API.
//!
//! Units: times are Unix milliseconds; money is `i64` micro-units of the tenant's currency
//! (1 CNY = 1_000_000), so per-token prices are exact integers and no float ever touches money.

mod model;
mod sql;
#[doc(hidden)]
pub mod testing;

pub use model::*;
pub use sql::SqlStore;

use async_trait::async_trait;

/// What can go wrong in storage. Messages of `Backend` are for logs, never for clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such row.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique name or id already exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// A value the schema refuses (a check constraint, a bad enum string).
    #[error("invalid value: {0}")]
    Invalid(String),
    /// The database failed or cannot be reached.
    #[error("database error: {0}")]
    Backend(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Tenants and discount groups.
#[async_trait]
pub trait TenantRepo: Send + Sync {
    /// Creates a tenant; `Conflict` when the name is taken.
    async fn create_tenant(&self, t: &Tenant) -> Result<()>;
    /// One tenant by id.
    async fn tenant(&self, id: &str) -> Result<Tenant>;
    /// One tenant by its unique name.
    async fn tenant_by_name(&self, name: &str) -> Result<Tenant>;
    /// All tenants, by name.
    async fn tenants(&self) -> Result<Vec<Tenant>>;
    /// Replaces the editable settings (limits, group, plan) of a tenant.
    async fn update_tenant(&self, t: &Tenant) -> Result<()>;
    /// Creates or replaces a discount group (`ratio_bp`: basis points charged, 10000 = full).
    async fn upsert_group(&self, name: &str, ratio_bp: i64) -> Result<()>;
    /// A group's ratio in basis points; `None` when the group does not exist.
    async fn group_ratio(&self, name: &str) -> Result<Option<i64>>;
}

/// API keys (stored as hashes only).
#[async_trait]
pub trait KeyRepo: Send + Sync {
    /// Stores a new key record.
    async fn create_key(&self, k: &ApiKeyRecord) -> Result<()>;
    /// One key by its public id (the part of the key before the secret).
    async fn key(&self, id: &str) -> Result<ApiKeyRecord>;
    /// One key and its tenant, in one round trip (the authentication path).
    async fn key_with_tenant(&self, id: &str) -> Result<(ApiKeyRecord, Tenant)>;
    /// Keys of one tenant, or all keys.
    async fn keys(&self, tenant_id: Option<&str>) -> Result<Vec<ApiKeyRecord>>;
    /// Revokes a key at `now_ms`; false when it was already revoked.
    async fn revoke_key(&self, id: &str, now_ms: i64) -> Result<bool>;
    /// Number of keys that are neither revoked nor expired at `now_ms`.
    async fn active_key_count(&self, now_ms: i64) -> Result<i64>;
}

/// Prices, the usage ledger, balances, top-ups and redemption codes.
#[async_trait]
pub trait BillingRepo: Send + Sync {
    /// Creates or replaces the price of a model.
    async fn upsert_price(&self, p: &Price) -> Result<()>;
    /// The price of a model, if any.
    async fn price(&self, model: &str) -> Result<Option<Price>>;
    /// All prices, by model.
    async fn prices(&self) -> Result<Vec<Price>>;
    /// Removes a model's price; false when there was none.
    async fn delete_price(&self, model: &str) -> Result<bool>;

    /// Atomically holds `r.amount` against the tenant's balance (respecting its credit limit) and
    /// the key's spend cap; false (and nothing held) when either would be exceeded.
    async fn reserve(&self, r: &Reservation) -> Result<bool>;
    /// Atomically: appends the usage record unless its request id is already in the ledger,
    /// charges its cost to tenant and key and counts its prompt + completion tokens in the
    /// tenant's UTC month of `created_ms` if it was appended, and releases the request's
    /// reservation. Returns whether the record was new. Safe to call twice.
    async fn settle(&self, u: &UsageRecord) -> Result<bool>;
    /// Releases reservations older than `before_ms` (left behind by a crashed replica).
    async fn sweep_reservations(&self, before_ms: i64) -> Result<u64>;
    /// One ledger row by request id.
    async fn ledger_row(&self, request_id: &str) -> Result<Option<UsageRecord>>;
    /// Ledger rows of a tenant (or all) in `[from_ms, to_ms)`, oldest first.
    async fn ledger(
        &self,
        tenant_id: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<UsageRecord>>;
    /// Totals per UTC day, tenant and model in `[from_ms, to_ms)`.
    async fn usage_totals(
        &self,
        tenant_id: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<UsageTotal>>;

    /// Adds a credit (admin top-up, or a negative adjustment) and moves the balance with it.
    async fn add_credit(&self, c: &Credit) -> Result<()>;
    /// Credits of a tenant, oldest first.
    async fn credits(&self, tenant_id: &str) -> Result<Vec<Credit>>;
    /// Stores a redemption code (by hash).
    async fn create_code(&self, c: &RedeemCode) -> Result<()>;
    /// Redeems a code once for `tenant_id`: the amount credited, or `None` when the code is
    /// unknown, already used, or in another currency.
    async fn redeem_code(
        &self,
        code_hash: &str,
        tenant_id: &str,
        now_ms: i64,
    ) -> Result<Option<i64>>;
}

/// Fixed-window request and token counters shared by every replica on the database.
#[async_trait]
pub trait LimitRepo: Send + Sync {
    /// Adds `requests` and `tokens` to the counters of every scope (distinct names) in the
    /// window starting at `window_start_ms`, in one atomic statement, and returns each scope's
    /// new totals `(requests, tokens)` in the order given.
    async fn hit_windows(
        &self,
        scopes: &[&str],
        window_start_ms: i64,
        requests: i64,
        tokens: i64,
    ) -> Result<Vec<(i64, i64)>>;
    /// [`LimitRepo::hit_windows`] for one scope.
    async fn hit_window(
        &self,
        scope: &str,
        window_start_ms: i64,
        requests: i64,
        tokens: i64,
    ) -> Result<(i64, i64)> {
        self.hit_windows(&[scope], window_start_ms, requests, tokens)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Backend("rate window row missing".into()))
    }
    /// Forgets windows that started before `before_ms`.
    async fn prune_windows(&self, before_ms: i64) -> Result<u64>;
}

/// Upstream channels.
#[async_trait]
pub trait ChannelRepo: Send + Sync {
    /// Creates a channel; `Conflict` when the name is taken.
    async fn create_channel(&self, c: &ChannelRecord) -> Result<()>;
    /// All channels, by priority then name.
    async fn channels(&self) -> Result<Vec<ChannelRecord>>;
    /// Deletes a channel by id or name; false when none matched.
    async fn delete_channel(&self, id_or_name: &str) -> Result<bool>;
    /// Records a channel's health: unhealthy until `until_ms` (0: healthy) after `failures`.
    async fn set_channel_health(&self, id: &str, until_ms: i64, failures: i64) -> Result<()>;
}

/// Everything the gateway needs from storage.
pub trait Store: TenantRepo + KeyRepo + BillingRepo + LimitRepo + ChannelRepo {
    /// `"sqlite"` or `"postgres"`.
    fn backend_name(&self) -> &'static str;
}
