-- Gateway schema (PostgreSQL). Times are Unix milliseconds, money is integer micro-units of the
-- tenant's currency (1 CNY = 1_000_000); both are BIGINT-compatible so the PostgreSQL schema in
-- ../sqlite is column-for-column the same.
CREATE TABLE groups (
    name TEXT PRIMARY KEY,
    ratio_bp BIGINT NOT NULL CHECK (ratio_bp >= 0 AND ratio_bp <= 100000)
);

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('individual', 'business', 'internal')),
    billing TEXT NOT NULL CHECK (billing IN ('prepaid', 'postpaid', 'subscription')),
    currency TEXT NOT NULL CHECK (currency IN ('CNY', 'USD')),
    group_name TEXT NOT NULL DEFAULT '',
    balance BIGINT NOT NULL DEFAULT 0,
    reserved BIGINT NOT NULL DEFAULT 0,
    credit_limit BIGINT NOT NULL DEFAULT 0,
    included_tokens BIGINT NOT NULL DEFAULT 0,
    period TEXT NOT NULL DEFAULT '',
    period_tokens BIGINT NOT NULL DEFAULT 0,
    rpm BIGINT NOT NULL DEFAULT 0,
    tpm BIGINT NOT NULL DEFAULT 0,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    is_admin BIGINT NOT NULL DEFAULT 0,
    models TEXT NOT NULL DEFAULT '',
    expires_ms BIGINT NOT NULL DEFAULT 0,
    spend_cap BIGINT NOT NULL DEFAULT 0,
    spent BIGINT NOT NULL DEFAULT 0,
    reserved BIGINT NOT NULL DEFAULT 0,
    rpm BIGINT NOT NULL DEFAULT 0,
    tpm BIGINT NOT NULL DEFAULT 0,
    revoked_ms BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE prices (
    model TEXT PRIMARY KEY,
    currency TEXT NOT NULL CHECK (currency IN ('CNY', 'USD')),
    prompt_per_1k BIGINT NOT NULL CHECK (prompt_per_1k >= 0),
    completion_per_1k BIGINT NOT NULL CHECK (completion_per_1k >= 0),
    cached_per_1k BIGINT NOT NULL CHECK (cached_per_1k >= 0),
    per_request BIGINT NOT NULL CHECK (per_request >= 0),
    rpm BIGINT NOT NULL DEFAULT 0,
    tpm BIGINT NOT NULL DEFAULT 0,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE usage_ledger (
    request_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    model TEXT NOT NULL,
    channel TEXT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cost BIGINT NOT NULL,
    currency TEXT NOT NULL,
    latency_ms BIGINT NOT NULL,
    status BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX usage_ledger_tenant_time ON usage_ledger (tenant_id, created_ms);
CREATE INDEX usage_ledger_time ON usage_ledger (created_ms);

-- The ledger is append-only: the database itself refuses edits, not just the code.
CREATE FUNCTION usage_ledger_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'usage_ledger is append-only'; END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER usage_ledger_no_edit BEFORE UPDATE OR DELETE ON usage_ledger
FOR EACH ROW EXECUTE FUNCTION usage_ledger_append_only();

CREATE TABLE credits (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    amount BIGINT NOT NULL,
    source TEXT NOT NULL,
    note TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX credits_tenant ON credits (tenant_id, created_ms);

CREATE TABLE redeem_codes (
    code_hash TEXT PRIMARY KEY,
    amount BIGINT NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    redeemed_by TEXT NOT NULL DEFAULT '',
    redeemed_ms BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE reservations (
    request_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    amount BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX reservations_time ON reservations (created_ms);

CREATE TABLE rate_windows (
    scope TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    tokens BIGINT NOT NULL,
    PRIMARY KEY (scope, window_start)
);

CREATE TABLE channels (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    base_url TEXT NOT NULL,
    key_enc TEXT NOT NULL,
    models TEXT NOT NULL,
    weight BIGINT NOT NULL DEFAULT 1,
    priority BIGINT NOT NULL DEFAULT 0,
    enabled BIGINT NOT NULL DEFAULT 1,
    unhealthy_until_ms BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL
);
