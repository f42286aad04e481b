//! The SQL implementation: one set of queries in the common dialect of SQLite and PostgreSQL,
//! run through sqlx's `Any` driver, with one migrations folder per database.

mod billing;
pub(crate) mod fast;
mod rows;

use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor, Row};

use crate::{
    ApiKeyRecord, ChannelRecord, ChannelRepo, KeyRepo, LimitRepo, Result, Store, StoreError,
    Tenant, TenantRepo,
};
use fast::{Fast, Try};
use rows::{channel_from, key_from, tenant_from, tenant_from_prefixed};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
}

/// A [`Store`] on SQLite or PostgreSQL. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: AnyPool,
    kind: Kind,
    /// SQLite files only: the in-place connection for the per-request statements.
    fast: Option<Arc<Fast>>,
}

/// Maps a sqlx error to ours; the raw text goes to `Backend` (logs only).
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(d) = &e {
        if d.is_unique_violation() {
            return StoreError::Conflict("a row with that key".into());
        }
        if d.is_check_violation() {
            return StoreError::Invalid("a value is out of range".into());
        }
        if d.is_foreign_key_violation() {
            return StoreError::NotFound("referenced row".into());
        }
    }
    if let sqlx::Error::RowNotFound = e {
        return StoreError::NotFound("row".into());
    }
    StoreError::Backend(e.to_string())
}

/// `sqlite://PATH` (or `sqlite:PATH`) → a URL that creates the file, after creating its folder.
fn sqlite_url(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(StoreError::Invalid("sqlite URL without a path".into()));
    }
    if path != ":memory:" {
        if let Some(dir) = Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
            }
        }
    }
    let query = if query.is_empty() {
        "mode=rwc".to_string()
    } else if query.contains("mode=") {
        query.to_string()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// The file behind a `sqlite://PATH?…` URL; `None` for in-memory databases (a second
/// connection would open a different, empty one).
fn sqlite_file(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite://")?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    (path != ":memory:" && !query.contains("mode=memory")).then(|| path.to_string())
}

impl SqlStore {
    /// Opens (creating and migrating on first use) `sqlite://PATH` or `postgres://…`.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (kind, url, max) = if url.starts_with("sqlite:") {
            // One connection: SQLite takes one writer at a time anyway, and several connections in
            // one process only meet at the file lock, where the busy handler sleeps for
            // milliseconds (the tail latency). Serialising in the pool costs microseconds.
            (Kind::Sqlite, sqlite_url(url)?, 1)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Kind::Postgres, url.to_string(), 16)
        } else {
            return Err(StoreError::Invalid(
                "database URL must start with sqlite:// or postgres://".into(),
            ));
        };
        let opts: AnyConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::Invalid(format!("database URL: {e}")))?;
        let opts = opts.disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if kind == Kind::Sqlite {
                        // WAL: readers never block the writer; NORMAL sync is durable against a
                        // killed process (the crash we test), and busy_timeout lets the CLI and
                        // a running server share the file.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(db_err)?;
        let migrator = match kind {
            Kind::Sqlite => &SQLITE_MIGRATIONS,
            Kind::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating: {e}")))?;
        let fast = match sqlite_file(&url) {
            Some(path) if kind == Kind::Sqlite => Some(Fast::open(&path)?),
            _ => None,
        };
        Ok(SqlStore { pool, kind, fast })
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn is_sqlite(&self) -> bool {
        self.kind == Kind::Sqlite
    }

    pub(crate) fn fast(&self) -> Option<&Fast> {
        self.fast.as_deref()
    }
}

impl Store for SqlStore {
    fn backend_name(&self) -> &'static str {
        match self.kind {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
        }
    }
}

const TENANT_COLS: &str = "id, name, kind, billing, currency, group_name, balance, reserved, \
    credit_limit, included_tokens, period, period_tokens, rpm, tpm, disabled, created_ms";
const KEY_COLS: &str = "id, tenant_id, name, hash, is_admin, models, expires_ms, spend_cap, \
    spent, reserved, rpm, tpm, revoked_ms, created_ms";
/// [`KEY_COLS`] qualified for a join with `tenants t`.
const KEY_COLS_K: &str = "k.id, k.tenant_id, k.name, k.hash, k.is_admin, k.models, \
    k.expires_ms, k.spend_cap, k.spent, k.reserved, k.rpm, k.tpm, k.revoked_ms, k.created_ms";
/// [`TENANT_COLS`] of `tenants t`, renamed `t_…` so they do not collide with the key's.
const TENANT_COLS_T: &str = "t.id AS t_id, t.name AS t_name, t.kind AS t_kind, \
    t.billing AS t_billing, t.currency AS t_currency, t.group_name AS t_group_name, \
    t.balance AS t_balance, t.reserved AS t_reserved, t.credit_limit AS t_credit_limit, \
    t.included_tokens AS t_included_tokens, t.period AS t_period, \
    t.period_tokens AS t_period_tokens, t.rpm AS t_rpm, t.tpm AS t_tpm, \
    t.disabled AS t_disabled, t.created_ms AS t_created_ms";
/// A key and its tenant in one round trip (authentication).
static KEY_WITH_TENANT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {KEY_COLS_K}, {TENANT_COLS_T} FROM api_keys k \
         JOIN tenants t ON t.id = k.tenant_id WHERE k.id = $1"
    )
});
const CHANNEL_COLS: &str = "id, name, base_url, key_enc, models, weight, priority, enabled, \
    unhealthy_until_ms, failures, created_ms";

#[async_trait]
impl TenantRepo for SqlStore {
    async fn create_tenant(&self, t: &Tenant) -> Result<()> {
        sqlx::query(
            "INSERT INTO tenants (id, name, kind, billing, currency, group_name, balance, reserved, \
             credit_limit, included_tokens, period, period_tokens, rpm, tpm, disabled, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10, 0, $11, $12, $13, $14)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(t.kind.as_str())
        .bind(t.billing.as_str())
        .bind(t.currency.as_str())
        .bind(&t.group)
        .bind(t.balance)
        .bind(t.credit_limit)
        .bind(t.included_tokens)
        .bind(&t.period)
        .bind(t.rpm)
        .bind(t.tpm)
        .bind(i64::from(t.disabled))
        .bind(t.created_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| match db_err(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("tenant {:?}", t.name)),
            other => other,
        })?;
        Ok(())
    }

    async fn tenant(&self, id: &str) -> Result<Tenant> {
        let row = sqlx::query(&format!("SELECT {TENANT_COLS} FROM tenants WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(|r| tenant_from(&r))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound("tenant".into()))
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Tenant> {
        let row = sqlx::query(&format!(
            "SELECT {TENANT_COLS} FROM tenants WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| tenant_from(&r))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound("tenant".into()))
    }

    async fn tenants(&self) -> Result<Vec<Tenant>> {
        let rows = sqlx::query(&format!("SELECT {TENANT_COLS} FROM tenants ORDER BY name"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(tenant_from).collect()
    }

    async fn update_tenant(&self, t: &Tenant) -> Result<()> {
        let done = sqlx::query(
            "UPDATE tenants SET kind = $2, billing = $3, group_name = $4, credit_limit = $5, \
             included_tokens = $6, rpm = $7, tpm = $8, disabled = $9 WHERE id = $1",
        )
        .bind(&t.id)
        .bind(t.kind.as_str())
        .bind(t.billing.as_str())
        .bind(&t.group)
        .bind(t.credit_limit)
        .bind(t.included_tokens)
        .bind(t.rpm)
        .bind(t.tpm)
        .bind(i64::from(t.disabled))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("tenant".into()));
        }
        Ok(())
    }

    async fn upsert_group(&self, name: &str, ratio_bp: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO groups (name, ratio_bp) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET ratio_bp = excluded.ratio_bp",
        )
        .bind(name)
        .bind(ratio_bp)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn group_ratio(&self, name: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT ratio_bp FROM groups WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(|r| r.try_get::<i64, _>(0).map_err(db_err))
            .transpose()
    }
}

#[async_trait]
impl KeyRepo for SqlStore {
    async fn create_key(&self, k: &ApiKeyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, hash, is_admin, models, expires_ms, \
             spend_cap, spent, reserved, rpm, tpm, revoked_ms, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0, $9, $10, 0, $11)",
        )
        .bind(&k.id)
        .bind(&k.tenant_id)
        .bind(&k.name)
        .bind(&k.hash)
        .bind(i64::from(k.is_admin))
        .bind(k.models.join(","))
        .bind(k.expires_ms)
        .bind(k.spend_cap)
        .bind(k.rpm)
        .bind(k.tpm)
        .bind(k.created_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn key(&self, id: &str) -> Result<ApiKeyRecord> {
        let row = sqlx::query(&format!("SELECT {KEY_COLS} FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(|r| key_from(&r))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound("key".into()))
    }

    async fn key_with_tenant(&self, id: &str) -> Result<(ApiKeyRecord, Tenant)> {
        if let Some(fast) = self.fast() {
            let got = fast.run(|c| {
                let mut st = c.prepare_cached(&KEY_WITH_TENANT_SQL)?;
                fast::bind(&mut st, &[&id])?;
                let mut rows = st.raw_query();
                Ok(rows.next()?.map(|r| -> Result<(ApiKeyRecord, Tenant)> {
                    Ok((key_from(r)?, tenant_from_prefixed(r, "t_")?))
                }))
            });
            if let Try::Done(r) = got {
                return r?.ok_or_else(|| StoreError::NotFound("key".into()))?;
            }
        }
        let row = sqlx::query(&KEY_WITH_TENANT_SQL)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        let row = row.ok_or_else(|| StoreError::NotFound("key".into()))?;
        Ok((key_from(&row)?, tenant_from_prefixed(&row, "t_")?))
    }

    async fn keys(&self, tenant_id: Option<&str>) -> Result<Vec<ApiKeyRecord>> {
        let rows = match tenant_id {
            Some(t) => {
                sqlx::query(&format!(
                    "SELECT {KEY_COLS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_ms, id"
                ))
                .bind(t)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {KEY_COLS} FROM api_keys ORDER BY created_ms, id"
                ))
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(db_err)?;
        rows.iter().map(key_from).collect()
    }

    async fn revoke_key(&self, id: &str, now_ms: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_ms = $2 WHERE id = $1 AND revoked_ms = 0")
                .bind(id)
                .bind(now_ms)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        if done.rows_affected() == 0 {
            // Distinguish "already revoked" from "no such key".
            self.key(id).await?;
            return Ok(false);
        }
        Ok(true)
    }

    async fn active_key_count(&self, now_ms: i64) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM api_keys WHERE revoked_ms = 0 \
             AND (expires_ms = 0 OR expires_ms > $1)",
        )
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        row.try_get::<i64, _>(0).map_err(db_err)
    }
}

#[async_trait]
impl LimitRepo for SqlStore {
    async fn hit_windows(
        &self,
        scopes: &[&str],
        window_start_ms: i64,
        requests: i64,
        tokens: i64,
    ) -> Result<Vec<(i64, i64)>> {
        if scopes.is_empty() {
            return Ok(Vec::new());
        }
        // One statement for every scope, atomic on both databases: concurrent replicas each see
        // the totals including their own hit, so no two can both take the last slot.
        let values: Vec<String> = (0..scopes.len())
            .map(|i| format!("(${}, $1, $2, $3)", i + 4))
            .collect();
        let sql = format!(
            "INSERT INTO rate_windows (scope, window_start, requests, tokens) VALUES {} \
             ON CONFLICT (scope, window_start) DO UPDATE SET \
             requests = rate_windows.requests + excluded.requests, \
             tokens = rate_windows.tokens + excluded.tokens RETURNING scope, requests, tokens",
            values.join(", ")
        );
        let rows: Vec<(String, i64, i64)> = match self.fast().map(|f| {
            f.run(|c| {
                let mut st = c.prepare_cached(&sql)?;
                let mut vals: Vec<&dyn rusqlite::ToSql> =
                    vec![&window_start_ms, &requests, &tokens];
                vals.extend(scopes.iter().map(|s| s as &dyn rusqlite::ToSql));
                fast::bind(&mut st, &vals)?;
                let mut rows = st.raw_query();
                let mut out = Vec::with_capacity(scopes.len());
                while let Some(r) = rows.next()? {
                    out.push((r.get(0)?, r.get(1)?, r.get(2)?));
                }
                Ok(out)
            })
        }) {
            Some(Try::Done(r)) => r?,
            _ => {
                let mut q = sqlx::query(&sql)
                    .bind(window_start_ms)
                    .bind(requests)
                    .bind(tokens);
                for scope in scopes {
                    q = q.bind(*scope);
                }
                let rows = q.fetch_all(&self.pool).await.map_err(db_err)?;
                rows.iter()
                    .map(|row| {
                        Ok((
                            row.try_get::<String, _>(0).map_err(db_err)?,
                            row.try_get::<i64, _>(1).map_err(db_err)?,
                            row.try_get::<i64, _>(2).map_err(db_err)?,
                        ))
                    })
                    .collect::<Result<_>>()?
            }
        };
        // RETURNING gives no order guarantee for a multi-row insert: match by scope.
        let mut totals = vec![None; scopes.len()];
        for (scope, reqs, toks) in rows {
            for (i, s) in scopes.iter().enumerate() {
                if *s == scope {
                    totals[i] = Some((reqs, toks));
                }
            }
        }
        totals
            .into_iter()
            .map(|t| t.ok_or_else(|| StoreError::Backend("rate window row missing".into())))
            .collect()
    }

    async fn prune_windows(&self, before_ms: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM rate_windows WHERE window_start < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl ChannelRepo for SqlStore {
    async fn create_channel(&self, c: &ChannelRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO channels (id, name, base_url, key_enc, models, weight, priority, enabled, \
             unhealthy_until_ms, failures, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0, $9)",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.base_url)
        .bind(&c.key_enc)
        .bind(c.models.join(","))
        .bind(c.weight)
        .bind(c.priority)
        .bind(i64::from(c.enabled))
        .bind(c.created_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| match db_err(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("channel {:?}", c.name)),
            other => other,
        })?;
        Ok(())
    }

    async fn channels(&self) -> Result<Vec<ChannelRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {CHANNEL_COLS} FROM channels ORDER BY priority DESC, name"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(channel_from).collect()
    }

    async fn delete_channel(&self, id_or_name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM channels WHERE id = $1 OR name = $1")
            .bind(id_or_name)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_channel_health(&self, id: &str, until_ms: i64, failures: i64) -> Result<()> {
        sqlx::query("UPDATE channels SET unhealthy_until_ms = $2, failures = $3 WHERE id = $1")
            .bind(id)
            .bind(until_ms)
            .bind(failures)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

impl SqlStore {
    /// Opens a PostgreSQL store inside `schema` (created if missing), for isolated tests and
    /// for operators who share one database between deployments. `schema` must be a plain
    /// identifier (letters, digits, `_`).
    pub async fn open_postgres_schema(base_url: &str, schema: &str) -> Result<Self> {
        let valid = !schema.is_empty()
            && schema.len() <= 63
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(StoreError::Invalid("schema name".into()));
        }
        sqlx::any::install_default_drivers();
        let opts: AnyConnectOptions = base_url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::Invalid(format!("database URL: {e}")))?;
        let mut conn = opts.connect().await.map_err(db_err)?;
        conn.execute(format!("CREATE SCHEMA IF NOT EXISTS {schema}").as_str())
            .await
            .map_err(db_err)?;
        drop(conn);
        let sep = if base_url.contains('?') { '&' } else { '?' };
        Self::open(&format!(
            "{base_url}{sep}options=-c%20search_path%3D{schema}"
        ))
        .await
    }
}
