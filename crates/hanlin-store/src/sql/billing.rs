//! Prices, reservations, the ledger, credits and codes: everything that moves money, each
//! movement in one transaction so that a crash leaves either all of it or none.

use std::sync::LazyLock;

use async_trait::async_trait;
use sqlx::{Any, Row, Transaction};

use super::fast::{bind, Try};
use super::rows::{credit_from, price_from, total_from, usage_from};
use super::{db_err, SqlStore};
use crate::{
    BillingRepo, Credit, Price, RedeemCode, Reservation, Result, StoreError, UsageRecord,
    UsageTotal,
};

const USAGE_COLS: &str = "request_id, tenant_id, key_id, model, channel, prompt_tokens, \
    cached_tokens, completion_tokens, cost, currency, latency_ms, status, created_ms";

/// A hold on SQLite: written only if tenant balance (with credit limit) and key cap allow it.
const RESERVE_SQLITE: &str =
    "INSERT INTO reservations (request_id, tenant_id, key_id, amount, created_ms) \
     SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $2 \
     AND disabled = 0 AND balance - reserved - $4 >= -credit_limit) \
     AND EXISTS (SELECT 1 FROM api_keys WHERE id = $3 \
     AND (spend_cap = 0 OR spent + reserved + $4 <= spend_cap))";

/// A settlement: the ledger row, once per request id (its trigger moves the money).
static SETTLE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO usage_ledger ({USAGE_COLS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (request_id) DO NOTHING"
    )
});

/// Moves a tenant's balance by `amount` and records the credit, inside `tx`.
async fn credit_in(tx: &mut Transaction<'static, Any>, c: &Credit) -> Result<()> {
    sqlx::query(
        "INSERT INTO credits (id, tenant_id, amount, source, note, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&c.id)
    .bind(&c.tenant_id)
    .bind(c.amount)
    .bind(&c.source)
    .bind(&c.note)
    .bind(c.created_ms)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    let done = sqlx::query("UPDATE tenants SET balance = balance + $2 WHERE id = $1")
        .bind(&c.tenant_id)
        .bind(c.amount)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("tenant".into()));
    }
    Ok(())
}

#[async_trait]
impl BillingRepo for SqlStore {
    async fn upsert_price(&self, p: &Price) -> Result<()> {
        sqlx::query(
            "INSERT INTO prices (model, currency, prompt_per_1k, completion_per_1k, cached_per_1k, \
             per_request, rpm, tpm, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (model) DO UPDATE SET currency = excluded.currency, \
             prompt_per_1k = excluded.prompt_per_1k, completion_per_1k = excluded.completion_per_1k, \
             cached_per_1k = excluded.cached_per_1k, per_request = excluded.per_request, \
             rpm = excluded.rpm, tpm = excluded.tpm, updated_ms = excluded.updated_ms",
        )
        .bind(&p.model)
        .bind(p.currency.as_str())
        .bind(p.prompt_per_1k)
        .bind(p.completion_per_1k)
        .bind(p.cached_per_1k)
        .bind(p.per_request)
        .bind(p.rpm)
        .bind(p.tpm)
        .bind(p.updated_ms)
        .execute(self.pool())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn price(&self, model: &str) -> Result<Option<Price>> {
        let row = sqlx::query("SELECT * FROM prices WHERE model = $1")
            .bind(model)
            .fetch_optional(self.pool())
            .await
            .map_err(db_err)?;
        row.map(|r| price_from(&r)).transpose()
    }

    async fn prices(&self) -> Result<Vec<Price>> {
        let rows = sqlx::query("SELECT * FROM prices ORDER BY model")
            .fetch_all(self.pool())
            .await
            .map_err(db_err)?;
        rows.iter().map(price_from).collect()
    }

    async fn delete_price(&self, model: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM prices WHERE model = $1")
            .bind(model)
            .execute(self.pool())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn reserve(&self, r: &Reservation) -> Result<bool> {
        // The hold's trigger raises `reserved` on tenant and key; the conditions decide whether
        // the row (and so the hold) is written at all.
        if self.is_sqlite() {
            // One statement: SQLite runs it under its single write lock, so the check and the
            // hold are atomic against every other writer.
            if let Some(fast) = self.fast() {
                let got = fast.run(|c| {
                    let mut st = c.prepare_cached(RESERVE_SQLITE)?;
                    bind(
                        &mut st,
                        &[
                            &r.request_id,
                            &r.tenant_id,
                            &r.key_id,
                            &r.amount,
                            &r.created_ms,
                        ],
                    )?;
                    st.raw_execute()
                });
                if let Try::Done(n) = got {
                    return Ok(n? == 1);
                }
            }
            let done = sqlx::query(RESERVE_SQLITE)
                .bind(&r.request_id)
                .bind(&r.tenant_id)
                .bind(&r.key_id)
                .bind(r.amount)
                .bind(r.created_ms)
                .execute(self.pool())
                .await
                .map_err(db_err)?;
            return Ok(done.rows_affected() == 1);
        }
        // PostgreSQL under READ COMMITTED: a conditional no-op UPDATE takes the row lock and
        // re-checks the condition on the newest row version, so replicas queue on the tenant row
        // and no two can both take the last of a balance.
        let mut tx = self.pool().begin().await.map_err(db_err)?;
        let t = sqlx::query(
            "UPDATE tenants SET reserved = reserved WHERE id = $1 AND disabled = 0 \
             AND balance - reserved - $2 >= -credit_limit",
        )
        .bind(&r.tenant_id)
        .bind(r.amount)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if t.rows_affected() == 0 {
            tx.rollback().await.map_err(db_err)?;
            return Ok(false);
        }
        let k = sqlx::query(
            "UPDATE api_keys SET reserved = reserved WHERE id = $1 \
             AND (spend_cap = 0 OR spent + reserved + $2 <= spend_cap)",
        )
        .bind(&r.key_id)
        .bind(r.amount)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if k.rows_affected() == 0 {
            tx.rollback().await.map_err(db_err)?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO reservations (request_id, tenant_id, key_id, amount, created_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&r.request_id)
        .bind(&r.tenant_id)
        .bind(&r.key_id)
        .bind(r.amount)
        .bind(r.created_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn settle(&self, u: &UsageRecord) -> Result<bool> {
        // One statement: the ledger's trigger charges tenant and key and releases the hold in
        // the same atomic write, so a crash leaves all of it or none.
        let fast = self.fast().map(|f| {
            f.run(|c| {
                let mut st = c.prepare_cached(&SETTLE_SQL)?;
                bind(
                    &mut st,
                    &[
                        &u.request_id,
                        &u.tenant_id,
                        &u.key_id,
                        &u.model,
                        &u.channel,
                        &u.prompt_tokens,
                        &u.cached_tokens,
                        &u.completion_tokens,
                        &u.cost,
                        &u.currency.as_str(),
                        &u.latency_ms,
                        &u.status,
                        &u.created_ms,
                    ],
                )?;
                st.raw_execute()
            })
        });
        let inserted = match fast {
            Some(Try::Done(n)) => n? == 1,
            _ => {
                sqlx::query(&SETTLE_SQL)
                    .bind(&u.request_id)
                    .bind(&u.tenant_id)
                    .bind(&u.key_id)
                    .bind(&u.model)
                    .bind(&u.channel)
                    .bind(u.prompt_tokens)
                    .bind(u.cached_tokens)
                    .bind(u.completion_tokens)
                    .bind(u.cost)
                    .bind(u.currency.as_str())
                    .bind(u.latency_ms)
                    .bind(u.status)
                    .bind(u.created_ms)
                    .execute(self.pool())
                    .await
                    .map_err(db_err)?
                    .rows_affected()
                    == 1
            }
        };
        if !inserted {
            // Settled before (a retry after a lost reply): only a hold may be left to release.
            sqlx::query("DELETE FROM reservations WHERE request_id = $1")
                .bind(&u.request_id)
                .execute(self.pool())
                .await
                .map_err(db_err)?;
        }
        Ok(inserted)
    }

    async fn sweep_reservations(&self, before_ms: i64) -> Result<u64> {
        // The release trigger gives each hold back to its tenant and key.
        let done = sqlx::query("DELETE FROM reservations WHERE created_ms < $1")
            .bind(before_ms)
            .execute(self.pool())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn ledger_row(&self, request_id: &str) -> Result<Option<UsageRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {USAGE_COLS} FROM usage_ledger WHERE request_id = $1"
        ))
        .bind(request_id)
        .fetch_optional(self.pool())
        .await
        .map_err(db_err)?;
        row.map(|r| usage_from(&r)).transpose()
    }

    async fn ledger(
        &self,
        tenant_id: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<UsageRecord>> {
        // `$3 = ''` selects every tenant; one statement text for both cases.
        let rows = sqlx::query(&format!(
            "SELECT {USAGE_COLS} FROM usage_ledger WHERE created_ms >= $1 AND created_ms < $2 \
             AND ($3 = '' OR tenant_id = $3) ORDER BY created_ms, request_id"
        ))
        .bind(from_ms)
        .bind(to_ms)
        .bind(tenant_id.unwrap_or(""))
        .fetch_all(self.pool())
        .await
        .map_err(db_err)?;
        rows.iter().map(usage_from).collect()
    }

    async fn usage_totals(
        &self,
        tenant_id: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<UsageTotal>> {
        let rows = sqlx::query(
            "SELECT CAST(created_ms / 86400000 AS BIGINT) AS day, tenant_id, model, \
             CAST(COUNT(*) AS BIGINT) AS requests, \
             CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
             CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT) AS cached_tokens, \
             CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
             CAST(COALESCE(SUM(cost), 0) AS BIGINT) AS cost \
             FROM usage_ledger WHERE created_ms >= $1 AND created_ms < $2 \
             AND ($3 = '' OR tenant_id = $3) \
             GROUP BY CAST(created_ms / 86400000 AS BIGINT), tenant_id, model \
             ORDER BY day, tenant_id, model",
        )
        .bind(from_ms)
        .bind(to_ms)
        .bind(tenant_id.unwrap_or(""))
        .fetch_all(self.pool())
        .await
        .map_err(db_err)?;
        rows.iter().map(total_from).collect()
    }

    async fn add_credit(&self, c: &Credit) -> Result<()> {
        let mut tx = self.pool().begin().await.map_err(db_err)?;
        credit_in(&mut tx, c).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn credits(&self, tenant_id: &str) -> Result<Vec<Credit>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, amount, source, note, created_ms FROM credits \
             WHERE tenant_id = $1 ORDER BY created_ms, id",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await
        .map_err(db_err)?;
        rows.iter().map(credit_from).collect()
    }

    async fn create_code(&self, c: &RedeemCode) -> Result<()> {
        sqlx::query(
            "INSERT INTO redeem_codes (code_hash, amount, currency, created_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&c.code_hash)
        .bind(c.amount)
        .bind(c.currency.as_str())
        .bind(c.created_ms)
        .execute(self.pool())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn redeem_code(
        &self,
        code_hash: &str,
        tenant_id: &str,
        now_ms: i64,
    ) -> Result<Option<i64>> {
        let mut tx = self.pool().begin().await.map_err(db_err)?;
        // Claiming the code and crediting happen together or not at all; the `redeemed_ms = 0`
        // condition makes a second redemption (from any replica) match nothing.
        let row = sqlx::query(
            "UPDATE redeem_codes SET redeemed_by = $2, redeemed_ms = $3 \
             WHERE code_hash = $1 AND redeemed_ms = 0 \
             AND currency = (SELECT currency FROM tenants WHERE id = $2) RETURNING amount",
        )
        .bind(code_hash)
        .bind(tenant_id)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            tx.rollback().await.map_err(db_err)?;
            return Ok(None);
        };
        let amount: i64 = row.try_get(0).map_err(db_err)?;
        let prefix: String = code_hash.chars().take(16).collect();
        credit_in(
            &mut tx,
            &Credit {
                id: format!("code_{prefix}"),
                tenant_id: tenant_id.to_string(),
                amount,
                source: "code".into(),
                note: format!("redemption code {prefix}…"),
                created_ms: now_ms,
            },
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(amount))
    }
}
