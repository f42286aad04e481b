//! Row → record mapping (by column name, so column order in queries does not matter).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::db_err;
use crate::{ApiKeyRecord, ChannelRecord, Credit, Price, Result, Tenant, UsageRecord, UsageTotal};

/// A result row read by column name: sqlx's `AnyRow`, or rusqlite's row on the SQLite hot path
/// (see `fast.rs`), so both map to records through the same functions.
pub(crate) trait Cols {
    fn int(&self, c: &str) -> Result<i64>;
    fn text(&self, c: &str) -> Result<String>;
}

impl Cols for AnyRow {
    fn int(&self, c: &str) -> Result<i64> {
        self.try_get::<i64, _>(c).map_err(db_err)
    }
    fn text(&self, c: &str) -> Result<String> {
        self.try_get::<String, _>(c).map_err(db_err)
    }
}

impl Cols for rusqlite::Row<'_> {
    fn int(&self, c: &str) -> Result<i64> {
        self.get::<_, i64>(c).map_err(super::fast::lite_err)
    }
    fn text(&self, c: &str) -> Result<String> {
        self.get::<_, String>(c).map_err(super::fast::lite_err)
    }
}

fn i(r: &impl Cols, c: &str) -> Result<i64> {
    r.int(c)
}

fn s(r: &impl Cols, c: &str) -> Result<String> {
    r.text(c)
}

fn list(r: &impl Cols, c: &str) -> Result<Vec<String>> {
    Ok(s(r, c)?
        .split(',')
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect())
}

pub(crate) fn tenant_from(r: &AnyRow) -> Result<Tenant> {
    tenant_from_prefixed(r, "")
}

/// A tenant from columns named `{prefix}id`, `{prefix}name`, … (a join renames them).
pub(crate) fn tenant_from_prefixed(r: &impl Cols, prefix: &str) -> Result<Tenant> {
    let c = |name: &str| format!("{prefix}{name}");
    Ok(Tenant {
        id: s(r, &c("id"))?,
        name: s(r, &c("name"))?,
        kind: s(r, &c("kind"))?.parse()?,
        billing: s(r, &c("billing"))?.parse()?,
        currency: s(r, &c("currency"))?.parse()?,
        group: s(r, &c("group_name"))?,
        balance: i(r, &c("balance"))?,
        reserved: i(r, &c("reserved"))?,
        credit_limit: i(r, &c("credit_limit"))?,
        included_tokens: i(r, &c("included_tokens"))?,
        period: s(r, &c("period"))?,
        period_tokens: i(r, &c("period_tokens"))?,
        rpm: i(r, &c("rpm"))?,
        tpm: i(r, &c("tpm"))?,
        disabled: i(r, &c("disabled"))? != 0,
        created_ms: i(r, &c("created_ms"))?,
    })
}

pub(crate) fn key_from(r: &impl Cols) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: s(r, "id")?,
        tenant_id: s(r, "tenant_id")?,
        name: s(r, "name")?,
        hash: s(r, "hash")?,
        is_admin: i(r, "is_admin")? != 0,
        models: list(r, "models")?,
        expires_ms: i(r, "expires_ms")?,
        spend_cap: i(r, "spend_cap")?,
        spent: i(r, "spent")?,
        reserved: i(r, "reserved")?,
        rpm: i(r, "rpm")?,
        tpm: i(r, "tpm")?,
        revoked_ms: i(r, "revoked_ms")?,
        created_ms: i(r, "created_ms")?,
    })
}

pub(crate) fn price_from(r: &AnyRow) -> Result<Price> {
    Ok(Price {
        model: s(r, "model")?,
        currency: s(r, "currency")?.parse()?,
        prompt_per_1k: i(r, "prompt_per_1k")?,
        completion_per_1k: i(r, "completion_per_1k")?,
        cached_per_1k: i(r, "cached_per_1k")?,
        per_request: i(r, "per_request")?,
        rpm: i(r, "rpm")?,
        tpm: i(r, "tpm")?,
        updated_ms: i(r, "updated_ms")?,
    })
}

pub(crate) fn usage_from(r: &AnyRow) -> Result<UsageRecord> {
    Ok(UsageRecord {
        request_id: s(r, "request_id")?,
        tenant_id: s(r, "tenant_id")?,
        key_id: s(r, "key_id")?,
        model: s(r, "model")?,
        channel: s(r, "channel")?,
        prompt_tokens: i(r, "prompt_tokens")?,
        cached_tokens: i(r, "cached_tokens")?,
        completion_tokens: i(r, "completion_tokens")?,
        cost: i(r, "cost")?,
        currency: s(r, "currency")?.parse()?,
        latency_ms: i(r, "latency_ms")?,
        status: i(r, "status")?,
        created_ms: i(r, "created_ms")?,
    })
}

pub(crate) fn total_from(r: &AnyRow) -> Result<UsageTotal> {
    Ok(UsageTotal {
        day: i(r, "day")?,
        tenant_id: s(r, "tenant_id")?,
        model: s(r, "model")?,
        requests: i(r, "requests")?,
        prompt_tokens: i(r, "prompt_tokens")?,
        cached_tokens: i(r, "cached_tokens")?,
        completion_tokens: i(r, "completion_tokens")?,
        cost: i(r, "cost")?,
    })
}

pub(crate) fn credit_from(r: &AnyRow) -> Result<Credit> {
    Ok(Credit {
        id: s(r, "id")?,
        tenant_id: s(r, "tenant_id")?,
        amount: i(r, "amount")?,
        source: s(r, "source")?,
        note: s(r, "note")?,
        created_ms: i(r, "created_ms")?,
    })
}

pub(crate) fn channel_from(r: &AnyRow) -> Result<ChannelRecord> {
    Ok(ChannelRecord {
        id: s(r, "id")?,
        name: s(r, "name")?,
        base_url: s(r, "base_url")?,
        key_enc: s(r, "key_enc")?,
        models: list(r, "models")?,
        weight: i(r, "weight")?,
        priority: i(r, "priority")?,
        enabled: i(r, "enabled")? != 0,
        unhealthy_until_ms: i(r, "unhealthy_until_ms")?,
        failures: i(r, "failures")?,
        created_ms: i(r, "created_ms")?,
    })
}
