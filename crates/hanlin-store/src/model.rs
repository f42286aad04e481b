//! Plain records exchanged with the store.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::StoreError;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl $name {
            /// The stored spelling.
            pub fn as_str(self) -> &'static str { match self { $($name::$v => $s),+ } }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.pad(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, StoreError> {
                match s { $($s => Ok($name::$v),)+ _ => Err(StoreError::Invalid(format!(
                    concat!(stringify!($name), " must be one of: ", $($s, " "),+)))) }
            }
        }
    };
}

string_enum!(
    /// Who a tenant is.
    TenantKind {
        /// A person with a subscription or prepaid balance.
        Individual => "individual",
        /// A company billed for metered use.
        Business => "business",
        /// A team inside the operator's own company.
        Internal => "internal",
    }
);

string_enum!(
    /// How a tenant pays.
    Billing {
        /// Spends a balance that top-ups and codes fill.
        Prepaid => "prepaid",
        /// Invoiced later; may go negative down to its credit limit.
        Postpaid => "postpaid",
        /// Monthly included tokens, overage from the balance.
        Subscription => "subscription",
    }
);

/// A currency of account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Currency {
    /// Renminbi.
    #[serde(rename = "CNY")]
    Cny,
    /// US dollar.
    #[serde(rename = "USD")]
    Usd,
}

impl Currency {
    /// ISO code.
    pub fn as_str(self) -> &'static str {
        match self {
            Currency::Cny => "CNY",
            Currency::Usd => "USD",
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Currency {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "CNY" | "cny" => Ok(Currency::Cny),
            "USD" | "usd" => Ok(Currency::Usd),
            _ => Err(StoreError::Invalid("currency must be CNY or USD".into())),
        }
    }
}

/// A customer of the platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Stable id (`t_…`).
    pub id: String,
    /// Unique human name.
    pub name: String,
    /// Individual, business or internal.
    pub kind: TenantKind,
    /// Prepaid, postpaid or subscription.
    pub billing: Billing,
    /// Currency of its balance and prices.
    pub currency: Currency,
    /// Discount group (`""`: none).
    pub group: String,
    /// Balance in micro-units (negative for a postpaid tenant that owes).
    pub balance: i64,
    /// Held for requests in flight.
    pub reserved: i64,
    /// How far below zero the balance may go (postpaid).
    pub credit_limit: i64,
    /// Tokens included per month (subscription).
    pub included_tokens: i64,
    /// The month (`YYYY-MM`) `period_tokens` counts.
    pub period: String,
    /// Tokens used in `period`.
    pub period_tokens: i64,
    /// Requests per minute (0: unlimited).
    pub rpm: i64,
    /// Tokens per minute (0: unlimited).
    pub tpm: i64,
    /// Refuses all requests when set.
    pub disabled: bool,
    /// Creation time.
    pub created_ms: i64,
}

/// A stored API key: the secret itself is never stored, only its SHA-256.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Public id, also the visible prefix of the key.
    pub id: String,
    /// Owner.
    pub tenant_id: String,
    /// Label.
    pub name: String,
    /// Hex SHA-256 of the secret part.
    pub hash: String,
    /// May use the admin API.
    pub is_admin: bool,
    /// Allowed models (empty: all).
    pub models: Vec<String>,
    /// Expiry (0: never).
    pub expires_ms: i64,
    /// Spend cap in micro-units (0: none).
    pub spend_cap: i64,
    /// Spent so far.
    pub spent: i64,
    /// Held for requests in flight.
    pub reserved: i64,
    /// Requests per minute (0: unlimited).
    pub rpm: i64,
    /// Tokens per minute (0: unlimited).
    pub tpm: i64,
    /// Revocation time (0: live).
    pub revoked_ms: i64,
    /// Creation time.
    pub created_ms: i64,
}

impl fmt::Debug for ApiKeyRecord {
    // The hash is not a secret, but there is no reason to spray it into logs either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("name", &self.name)
            .field("hash", &"***")
            .field("is_admin", &self.is_admin)
            .field("models", &self.models)
            .field("expires_ms", &self.expires_ms)
            .field("revoked_ms", &self.revoked_ms)
            .finish_non_exhaustive()
    }
}

/// Price of one model, in micro-units of `currency`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    /// Model id as clients name it.
    pub model: String,
    /// Currency of the amounts.
    pub currency: Currency,
    /// Per 1,000 prompt tokens (not cached).
    pub prompt_per_1k: i64,
    /// Per 1,000 completion tokens.
    pub completion_per_1k: i64,
    /// Per 1,000 cached prompt tokens.
    pub cached_per_1k: i64,
    /// Fixed per request.
    pub per_request: i64,
    /// Requests per minute for this model across all tenants (0: unlimited).
    pub rpm: i64,
    /// Tokens per minute for this model across all tenants (0: unlimited).
    pub tpm: i64,
    /// Last change.
    pub updated_ms: i64,
}

/// One row of the append-only usage ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Idempotency key: one row per request id, ever.
    pub request_id: String,
    /// Tenant charged.
    pub tenant_id: String,
    /// Key used.
    pub key_id: String,
    /// Model as requested.
    pub model: String,
    /// Upstream channel (`""`: local engine).
    pub channel: String,
    /// Prompt tokens (including cached).
    pub prompt_tokens: i64,
    /// Of those, served from cache.
    pub cached_tokens: i64,
    /// Generated tokens.
    pub completion_tokens: i64,
    /// Charged, in micro-units of `currency`.
    pub cost: i64,
    /// Currency of `cost`.
    pub currency: Currency,
    /// Time to the end of the response.
    pub latency_ms: i64,
    /// HTTP status (499: client went away mid-stream).
    pub status: i64,
    /// When written.
    pub created_ms: i64,
}

/// Money held for a request in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// The request.
    pub request_id: String,
    /// Tenant whose balance is held.
    pub tenant_id: String,
    /// Key whose spend cap is held.
    pub key_id: String,
    /// Amount held.
    pub amount: i64,
    /// When.
    pub created_ms: i64,
}

/// A balance movement other than usage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credit {
    /// Id (`c_…`).
    pub id: String,
    /// Tenant credited.
    pub tenant_id: String,
    /// Amount (negative: adjustment down).
    pub amount: i64,
    /// `admin` or `code`.
    pub source: String,
    /// Free text.
    pub note: String,
    /// When.
    pub created_ms: i64,
}

/// A single-use redemption code (stored by hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedeemCode {
    /// Hex SHA-256 of the code.
    pub code_hash: String,
    /// Value.
    pub amount: i64,
    /// Currency of the value; only tenants in it may redeem.
    pub currency: Currency,
    /// When created.
    pub created_ms: i64,
}

/// Usage summed per day, tenant and model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTotal {
    /// UTC day number since 1970-01-01.
    pub day: i64,
    /// Tenant.
    pub tenant_id: String,
    /// Model.
    pub model: String,
    /// Requests.
    pub requests: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Cached prompt tokens.
    pub cached_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Cost in micro-units.
    pub cost: i64,
}

/// An upstream OpenAI-compatible provider.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRecord {
    /// Id (`ch_…`).
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Base URL up to and including `/v1`.
    pub base_url: String,
    /// The provider key, encrypted by the gateway (nonce ‖ ciphertext, hex).
    pub key_enc: String,
    /// `public=upstream` model mappings (`public` alone: same name upstream).
    pub models: Vec<String>,
    /// Share of traffic among channels of equal priority.
    pub weight: i64,
    /// Higher first.
    pub priority: i64,
    /// Off when false.
    pub enabled: bool,
    /// Skipped until then after failures (0: healthy).
    pub unhealthy_until_ms: i64,
    /// Consecutive failures.
    pub failures: i64,
    /// Creation time.
    pub created_ms: i64,
}

impl fmt::Debug for ChannelRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("key_enc", &"***")
            .field("models", &self.models)
            .field("weight", &self.weight)
            .field("priority", &self.priority)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}
