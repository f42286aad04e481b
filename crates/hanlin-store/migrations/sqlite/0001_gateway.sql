-- Gateway schema (SQLite). Times are Unix milliseconds, money is integer micro-units of the
-- tenant's currency (1 CNY = 1_000_000); both are BIGINT-compatible so the PostgreSQL schema in
-- ../postgres is column-for-column the same.
CREATE TABLE groups (
    name TEXT PRIMARY KEY,
    ratio_bp INTEGER NOT NULL CHECK (ratio_bp >= 0 AND ratio_bp <= 100000)
);

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('individual', 'business', 'internal')),
    billing TEXT NOT NULL CHECK (billing IN ('prepaid', 'postpaid', 'subscription')),
    currency TEXT NOT NULL CHECK (currency IN ('CNY', 'USD')),
    group_name TEXT NOT NULL DEFAULT '',
    balance INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL DEFAULT 0,
    credit_limit INTEGER NOT NULL DEFAULT 0,
    included_tokens INTEGER NOT NULL DEFAULT 0,
    period TEXT NOT NULL DEFAULT '',
    period_tokens INTEGER NOT NULL DEFAULT 0,
    rpm INTEGER NOT NULL DEFAULT 0,
    tpm INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    models TEXT NOT NULL DEFAULT '',
    expires_ms INTEGER NOT NULL DEFAULT 0,
    spend_cap INTEGER NOT NULL DEFAULT 0,
    spent INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL DEFAULT 0,
    rpm INTEGER NOT NULL DEFAULT 0,
    tpm INTEGER NOT NULL DEFAULT 0,
    revoked_ms INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE prices (
    model TEXT PRIMARY KEY,
    currency TEXT NOT NULL CHECK (currency IN ('CNY', 'USD')),
    prompt_per_1k INTEGER NOT NULL CHECK (prompt_per_1k >= 0),
    completion_per_1k INTEGER NOT NULL CHECK (completion_per_1k >= 0),
    cached_per_1k INTEGER NOT NULL CHECK (cached_per_1k >= 0),
    per_request INTEGER NOT NULL CHECK (per_request >= 0),
    rpm INTEGER NOT NULL DEFAULT 0,
    tpm INTEGER NOT NULL DEFAULT 0,
    updated_ms INTEGER NOT NULL
);

CREATE TABLE usage_ledger (
    request_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    model TEXT NOT NULL,
    channel TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost INTEGER NOT NULL,
    currency TEXT NOT NULL,
    latency_ms INTEGER NOT NULL,
    status INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX usage_ledger_tenant_time ON usage_ledger (tenant_id, created_ms);
CREATE INDEX usage_ledger_time ON usage_ledger (created_ms);

-- The ledger is append-only: the database itself refuses edits, not just the code.
CREATE TRIGGER usage_ledger_no_update BEFORE UPDATE ON usage_ledger
BEGIN SELECT RAISE(ABORT, 'usage_ledger is append-only'); END;
CREATE TRIGGER usage_ledger_no_delete BEFORE DELETE ON usage_ledger
BEGIN SELECT RAISE(ABORT, 'usage_ledger is append-only'); END;

CREATE TABLE credits (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    amount INTEGER NOT NULL,
    source TEXT NOT NULL,
    note TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX credits_tenant ON credits (tenant_id, created_ms);

CREATE TABLE redeem_codes (
    code_hash TEXT PRIMARY KEY,
    amount INTEGER NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    redeemed_by TEXT NOT NULL DEFAULT '',
    redeemed_ms INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE reservations (
    request_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX reservations_time ON reservations (created_ms);

CREATE TABLE rate_windows (
    scope TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    PRIMARY KEY (scope, window_start)
);

CREATE TABLE channels (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    base_url TEXT NOT NULL,
    key_enc TEXT NOT NULL,
    models TEXT NOT NULL,
    weight INTEGER NOT NULL DEFAULT 1,
    priority INTEGER NOT NULL DEFAULT 0,
    enabled INTEGER NOT NULL DEFAULT 1,
    unhealthy_until_ms INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);
