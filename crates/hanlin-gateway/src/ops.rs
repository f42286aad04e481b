//! Admin operations, shared by the REST API and the CLI so that both validate the same way.
//! Every string is checked for length and alphabet before it reaches storage.

use hanlin_store::{
    ApiKeyRecord, Billing, ChannelRecord, Credit, Currency, Price, RedeemCode, Tenant, TenantKind,
};
use serde::{Deserialize, Serialize};

use crate::gateway::{new_request_id, now_ms, Gateway};
use crate::money::{format_amount, parse_amount};
pub use crate::report::{parse_day, parse_month, statement, usage, Statement, UsageLine};
use crate::secret::{mint_code, mint_key, sha256_hex, Secret};
use crate::GatewayError;

type R<T> = Result<T, GatewayError>;

/// A display name: 1–64 letters (any script), digits, space and `_ . @ : -`.
pub fn check_name(field: &str, s: &str) -> R<()> {
    let ok_char = |c: char| c.is_alphanumeric() || " _.@:-".contains(c);
    if s.is_empty() || s.chars().count() > 64 || !s.chars().all(ok_char) || s.trim() != s {
        return Err(GatewayError::invalid(
            field,
            format!("{field} must be 1-64 letters, digits, spaces or _ . @ : -"),
        ));
    }
    Ok(())
}

/// A model name: 1–128 of `A-Z a-z 0-9 . _ : / -`.
pub fn check_model(field: &str, s: &str) -> R<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._:/-".contains(c);
    if s.is_empty() || s.len() > 128 || !s.chars().all(ok_char) {
        return Err(GatewayError::invalid(
            field,
            format!("{field} must be 1-128 characters of A-Z a-z 0-9 . _ : / -"),
        ));
    }
    Ok(())
}

fn check_count(field: &str, v: i64, max: i64) -> R<i64> {
    if !(0..=max).contains(&v) {
        return Err(GatewayError::invalid(
            field,
            format!("{field} must be 0..={max}"),
        ));
    }
    Ok(v)
}

fn amount(field: &str, s: &str, allow_negative: bool) -> R<i64> {
    let v = parse_amount(s).ok_or_else(|| {
        GatewayError::invalid(
            field,
            format!("{field} must be a decimal amount like \"12.50\""),
        )
    })?;
    let max = 1_000_000_000 * crate::money::MICROS;
    if v.abs() > max || (!allow_negative && v < 0) {
        return Err(GatewayError::invalid(
            field,
            format!("{field} is out of range"),
        ));
    }
    Ok(v)
}

fn random_id(prefix: &str) -> String {
    let r = new_request_id();
    format!("{prefix}_{}", &r[4..20])
}

/// Finds a tenant by id or name.
pub async fn find_tenant(gw: &Gateway, id_or_name: &str) -> R<Tenant> {
    check_name("tenant", id_or_name)?;
    match gw.store().tenant(id_or_name).await {
        Ok(t) => Ok(t),
        Err(hanlin_store::StoreError::NotFound(_)) => {
            Ok(gw.store().tenant_by_name(id_or_name).await?)
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /tenants` and `hanlin tenants create`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// Unique name.
    pub name: String,
    /// individual | business | internal.
    pub kind: Option<String>,
    /// prepaid | postpaid | subscription.
    pub billing: Option<String>,
    /// CNY | USD.
    pub currency: Option<String>,
    /// Discount group.
    pub group: Option<String>,
    /// Postpaid credit limit, decimal.
    pub credit_limit: Option<String>,
    /// Subscription tokens per month.
    pub included_tokens: Option<i64>,
    /// Requests per minute.
    pub rpm: Option<i64>,
    /// Tokens per minute.
    pub tpm: Option<i64>,
}

/// A tenant as shown to admins (amounts as decimals).
#[derive(Clone, Debug, Serialize)]
pub struct TenantView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: TenantKind,
    /// Billing.
    pub billing: Billing,
    /// Currency.
    pub currency: Currency,
    /// Group.
    pub group: String,
    /// Balance.
    pub balance: String,
    /// Held for requests in flight.
    pub reserved: String,
    /// Credit limit.
    pub credit_limit: String,
    /// Included tokens per month.
    pub included_tokens: i64,
    /// Tokens used this period.
    pub period_tokens: i64,
    /// RPM.
    pub rpm: i64,
    /// TPM.
    pub tpm: i64,
    /// Disabled.
    pub disabled: bool,
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        TenantView {
            id: t.id.clone(),
            name: t.name.clone(),
            kind: t.kind,
            billing: t.billing,
            currency: t.currency,
            group: t.group.clone(),
            balance: format_amount(t.balance),
            reserved: format_amount(t.reserved),
            credit_limit: format_amount(t.credit_limit),
            included_tokens: t.included_tokens,
            period_tokens: t.period_tokens,
            rpm: t.rpm,
            tpm: t.tpm,
            disabled: t.disabled,
        }
    }
}

/// Creates a tenant.
pub async fn create_tenant(gw: &Gateway, n: NewTenant) -> R<Tenant> {
    check_name("name", &n.name)?;
    let kind: TenantKind = n
        .kind
        .as_deref()
        .unwrap_or("individual")
        .parse()
        .map_err(|_| {
            GatewayError::invalid("kind", "kind must be individual, business or internal")
        })?;
    let billing: Billing = n
        .billing
        .as_deref()
        .unwrap_or("prepaid")
        .parse()
        .map_err(|_| {
            GatewayError::invalid(
                "billing",
                "billing must be prepaid, postpaid or subscription",
            )
        })?;
    let currency: Currency = n
        .currency
        .as_deref()
        .unwrap_or("CNY")
        .parse()
        .map_err(|_| GatewayError::invalid("currency", "currency must be CNY or USD"))?;
    let group = n.group.unwrap_or_default();
    if !group.is_empty() {
        check_name("group", &group)?;
    }
    let credit_limit = match n.credit_limit.as_deref() {
        Some(s) => amount("credit_limit", s, false)?,
        None => 0,
    };
    let t = Tenant {
        id: random_id("t"),
        name: n.name,
        kind,
        billing,
        currency,
        group,
        balance: 0,
        reserved: 0,
        credit_limit,
        included_tokens: check_count("included_tokens", n.included_tokens.unwrap_or(0), 1 << 50)?,
        period: String::new(),
        period_tokens: 0,
        rpm: check_count("rpm", n.rpm.unwrap_or(0), 1_000_000_000)?,
        tpm: check_count("tpm", n.tpm.unwrap_or(0), 1 << 50)?,
        disabled: false,
        created_ms: now_ms(),
    };
    gw.store().create_tenant(&t).await?;
    Ok(t)
}

/// `PATCH /tenants/{id}` and `hanlin tenants set`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// New billing.
    pub billing: Option<String>,
    /// New group (`""` clears).
    pub group: Option<String>,
    /// New credit limit.
    pub credit_limit: Option<String>,
    /// New included tokens.
    pub included_tokens: Option<i64>,
    /// New RPM.
    pub rpm: Option<i64>,
    /// New TPM.
    pub tpm: Option<i64>,
    /// Disable or enable.
    pub disabled: Option<bool>,
}

/// Changes a tenant's settings.
pub async fn update_tenant(gw: &Gateway, id_or_name: &str, p: TenantPatch) -> R<Tenant> {
    let mut t = find_tenant(gw, id_or_name).await?;
    if let Some(b) = p.billing {
        t.billing = b.parse().map_err(|_| {
            GatewayError::invalid(
                "billing",
                "billing must be prepaid, postpaid or subscription",
            )
        })?;
    }
    if let Some(g) = p.group {
        if !g.is_empty() {
            check_name("group", &g)?;
        }
        t.group = g;
    }
    if let Some(c) = p.credit_limit {
        t.credit_limit = amount("credit_limit", &c, false)?;
    }
    if let Some(v) = p.included_tokens {
        t.included_tokens = check_count("included_tokens", v, 1 << 50)?;
    }
    if let Some(v) = p.rpm {
        t.rpm = check_count("rpm", v, 1_000_000_000)?;
    }
    if let Some(v) = p.tpm {
        t.tpm = check_count("tpm", v, 1 << 50)?;
    }
    if let Some(d) = p.disabled {
        t.disabled = d;
    }
    gw.store().update_tenant(&t).await?;
    Ok(t)
}

/// Sets a discount group's ratio (`"0.8"`: pay 80%).
pub async fn set_group(gw: &Gateway, name: &str, ratio: &str) -> R<i64> {
    check_name("name", name)?;
    let micro = amount("ratio", ratio, false)?;
    if micro > 10 * crate::money::MICROS {
        return Err(GatewayError::invalid(
            "ratio",
            "ratio must be between 0 and 10",
        ));
    }
    let bp = micro / 100;
    gw.store().upsert_group(name, bp).await?;
    gw.invalidate_prices();
    Ok(bp)
}

/// `POST /keys` and `hanlin keys create`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// Tenant id or name.
    pub tenant: String,
    /// Label.
    pub name: Option<String>,
    /// Admin key.
    pub admin: Option<bool>,
    /// Allowed models (empty: all).
    pub models: Option<Vec<String>>,
    /// Days until expiry (0 or absent: never).
    pub expires_in_days: Option<i64>,
    /// Spend cap, decimal.
    pub spend_cap: Option<String>,
    /// RPM.
    pub rpm: Option<i64>,
    /// TPM.
    pub tpm: Option<i64>,
}

/// A key as shown to admins (never the secret or its hash).
#[derive(Clone, Debug, Serialize)]
pub struct KeyView {
    /// Id (the key's visible prefix).
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Label.
    pub name: String,
    /// Admin.
    pub admin: bool,
    /// Allowed models.
    pub models: Vec<String>,
    /// Expiry (ms; 0 never).
    pub expires_ms: i64,
    /// Spend cap.
    pub spend_cap: String,
    /// Spent.
    pub spent: String,
    /// RPM.
    pub rpm: i64,
    /// TPM.
    pub tpm: i64,
    /// Revoked at (ms; 0 live).
    pub revoked_ms: i64,
}

impl From<&ApiKeyRecord> for KeyView {
    fn from(k: &ApiKeyRecord) -> Self {
        KeyView {
            id: k.id.clone(),
            tenant_id: k.tenant_id.clone(),
            name: k.name.clone(),
            admin: k.is_admin,
            models: k.models.clone(),
            expires_ms: k.expires_ms,
            spend_cap: format_amount(k.spend_cap),
            spent: format_amount(k.spent),
            rpm: k.rpm,
            tpm: k.tpm,
            revoked_ms: k.revoked_ms,
        }
    }
}

/// An internal, postpaid tenant named `name` with one admin key: how a fresh deployment (or a
/// test) gets its first administrator.
pub async fn create_admin(gw: &Gateway, name: &str) -> R<(Tenant, Secret)> {
    let tenant = create_tenant(
        gw,
        NewTenant {
            name: name.into(),
            kind: Some("internal".into()),
            billing: Some("postpaid".into()),
            currency: None,
            group: None,
            credit_limit: None,
            included_tokens: None,
            rpm: None,
            tpm: None,
        },
    )
    .await?;
    let (_, key) = create_key(
        gw,
        NewKey {
            tenant: tenant.id.clone(),
            admin: Some(true),
            ..NewKey::default()
        },
    )
    .await?;
    Ok((tenant, key))
}

/// Creates a key; the returned secret is the only time it is ever visible.
pub async fn create_key(gw: &Gateway, n: NewKey) -> R<(ApiKeyRecord, Secret)> {
    let tenant = find_tenant(gw, &n.tenant).await?;
    let name = n.name.unwrap_or_else(|| "default".into());
    check_name("name", &name)?;
    let models = n.models.unwrap_or_default();
    if models.len() > 256 {
        return Err(GatewayError::invalid("models", "at most 256 models"));
    }
    for m in &models {
        check_model("models", m)?;
    }
    let days = check_count("expires_in_days", n.expires_in_days.unwrap_or(0), 36_500)?;
    let minted = mint_key();
    let now = now_ms();
    let rec = ApiKeyRecord {
        id: minted.id,
        tenant_id: tenant.id,
        name,
        hash: minted.hash,
        is_admin: n.admin.unwrap_or(false),
        models,
        expires_ms: if days == 0 {
            0
        } else {
            now + days * 86_400_000
        },
        spend_cap: match n.spend_cap.as_deref() {
            Some(s) => amount("spend_cap", s, false)?,
            None => 0,
        },
        spent: 0,
        reserved: 0,
        rpm: check_count("rpm", n.rpm.unwrap_or(0), 1_000_000_000)?,
        tpm: check_count("tpm", n.tpm.unwrap_or(0), 1 << 50)?,
        revoked_ms: 0,
        created_ms: now,
    };
    gw.store().create_key(&rec).await?;
    Ok((rec, minted.key))
}

/// Revokes a key by id; effective for the very next request (keys are not cached).
pub async fn revoke_key(gw: &Gateway, id: &str) -> R<bool> {
    let ok = id.len() <= 32 && id.chars().all(|c| c.is_ascii_alphanumeric());
    if !ok || id.is_empty() {
        return Err(GatewayError::invalid(
            "id",
            "id must be a key id such as hl0123456789",
        ));
    }
    Ok(gw.store().revoke_key(id, now_ms()).await?)
}

/// `PUT /prices/{model}` and `hanlin prices set`; amounts are decimals per 1K tokens.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceReq {
    /// Model.
    pub model: String,
    /// CNY | USD.
    pub currency: Option<String>,
    /// Per 1K prompt tokens.
    pub prompt: Option<String>,
    /// Per 1K completion tokens.
    pub completion: Option<String>,
    /// Per 1K cached prompt tokens (default: the prompt price).
    pub cached: Option<String>,
    /// Fixed per request.
    pub per_request: Option<String>,
    /// Model-wide RPM.
    pub rpm: Option<i64>,
    /// Model-wide TPM.
    pub tpm: Option<i64>,
}

/// Sets a model's price.
pub async fn set_price(gw: &Gateway, p: PriceReq) -> R<Price> {
    check_model("model", &p.model)?;
    let get = |field: &str, v: &Option<String>| -> R<i64> {
        v.as_deref().map_or(Ok(0), |s| amount(field, s, false))
    };
    let prompt = get("prompt", &p.prompt)?;
    let price = Price {
        currency: p
            .currency
            .as_deref()
            .unwrap_or("CNY")
            .parse()
            .map_err(|_| GatewayError::invalid("currency", "currency must be CNY or USD"))?,
        prompt_per_1k: prompt,
        completion_per_1k: get("completion", &p.completion)?,
        cached_per_1k: match &p.cached {
            Some(_) => get("cached", &p.cached)?,
            None => prompt,
        },
        per_request: get("per_request", &p.per_request)?,
        rpm: check_count("rpm", p.rpm.unwrap_or(0), 1_000_000_000)?,
        tpm: check_count("tpm", p.tpm.unwrap_or(0), 1 << 50)?,
        updated_ms: now_ms(),
        model: p.model,
    };
    gw.store().upsert_price(&price).await?;
    gw.invalidate_prices();
    Ok(price)
}

/// Credits a tenant (an admin top-up; negative amounts adjust down).
pub async fn topup(gw: &Gateway, tenant: &str, amount_s: &str, note: &str) -> R<Credit> {
    let t = find_tenant(gw, tenant).await?;
    let v = amount("amount", amount_s, true)?;
    if v == 0 {
        return Err(GatewayError::invalid("amount", "amount must not be zero"));
    }
    if note.chars().count() > 200 || note.chars().any(char::is_control) {
        return Err(GatewayError::invalid(
            "note",
            "note must be at most 200 printable characters",
        ));
    }
    let c = Credit {
        id: random_id("c"),
        tenant_id: t.id,
        amount: v,
        source: "admin".into(),
        note: note.to_string(),
        created_ms: now_ms(),
    };
    gw.store().add_credit(&c).await?;
    Ok(c)
}

/// Creates `count` single-use codes worth `amount` each; the codes are shown only now.
pub async fn create_codes(
    gw: &Gateway,
    amount_s: &str,
    currency: &str,
    count: i64,
) -> R<Vec<Secret>> {
    let v = amount("amount", amount_s, false)?;
    if v == 0 {
        return Err(GatewayError::invalid("amount", "amount must be positive"));
    }
    let currency: Currency = currency
        .parse()
        .map_err(|_| GatewayError::invalid("currency", "currency must be CNY or USD"))?;
    if !(1..=1000).contains(&count) {
        return Err(GatewayError::invalid("count", "count must be 1..=1000"));
    }
    let mut out = Vec::new();
    for _ in 0..count {
        let (code, hash) = mint_code();
        gw.store()
            .create_code(&RedeemCode {
                code_hash: hash,
                amount: v,
                currency,
                created_ms: now_ms(),
            })
            .await?;
        out.push(code);
    }
    Ok(out)
}

/// Redeems a code for a tenant: the amount credited.
pub async fn redeem(gw: &Gateway, tenant: &str, code: &str) -> R<i64> {
    let t = find_tenant(gw, tenant).await?;
    let code = code.trim().to_ascii_uppercase();
    if code.len() > 64 {
        return Err(GatewayError::invalid("code", "not a redemption code"));
    }
    gw.store()
        .redeem_code(&sha256_hex(&code), &t.id, now_ms())
        .await?
        .ok_or_else(|| {
            GatewayError::invalid("code", "unknown, already used, or in another currency")
        })
}

/// `POST /channels` and `hanlin channels add`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    /// Unique name.
    pub name: String,
    /// Base URL up to `/v1`.
    pub base_url: String,
    /// Provider key (stored encrypted).
    pub key: Option<String>,
    /// `public=upstream` model mappings.
    pub models: Vec<String>,
    /// Weight (default 1).
    pub weight: Option<i64>,
    /// Priority (default 0).
    pub priority: Option<i64>,
}

/// A channel as shown to admins: the key is never shown.
#[derive(Clone, Debug, Serialize)]
pub struct ChannelView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Base URL.
    pub base_url: String,
    /// Always `***`.
    pub key: &'static str,
    /// Mappings.
    pub models: Vec<String>,
    /// Weight.
    pub weight: i64,
    /// Priority.
    pub priority: i64,
    /// Unhealthy until (ms).
    pub unhealthy_until_ms: i64,
    /// Failures.
    pub failures: i64,
}

impl From<&ChannelRecord> for ChannelView {
    fn from(c: &ChannelRecord) -> Self {
        ChannelView {
            id: c.id.clone(),
            name: c.name.clone(),
            base_url: c.base_url.clone(),
            key: "***",
            models: c.models.clone(),
            weight: c.weight,
            priority: c.priority,
            unhealthy_until_ms: c.unhealthy_until_ms,
            failures: c.failures,
        }
    }
}

/// Adds a channel.
pub async fn create_channel(gw: &Gateway, n: NewChannel) -> R<ChannelRecord> {
    check_name("name", &n.name)?;
    let url_ok = (n.base_url.starts_with("http://") || n.base_url.starts_with("https://"))
        && n.base_url.len() <= 512
        && !n
            .base_url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control());
    if !url_ok {
        return Err(GatewayError::invalid(
            "base_url",
            "base_url must be an http(s) URL of at most 512 characters",
        ));
    }
    if n.models.is_empty() || n.models.len() > 256 {
        return Err(GatewayError::invalid("models", "give 1-256 model mappings"));
    }
    for m in &n.models {
        let (p, u) = m.split_once('=').unwrap_or((m, m));
        check_model("models", p)?;
        check_model("models", u)?;
    }
    let key = Secret::new(n.key.unwrap_or_default());
    if key.expose().len() > 1024 {
        return Err(GatewayError::invalid("key", "key is too long"));
    }
    let key_enc = gw.cipher().encrypt(&key).ok_or(GatewayError::Internal)?;
    let rec = ChannelRecord {
        id: random_id("ch"),
        name: n.name,
        base_url: n.base_url,
        key_enc,
        models: n.models,
        weight: check_count("weight", n.weight.unwrap_or(1), 1_000_000)?.max(1),
        priority: check_count("priority", n.priority.unwrap_or(0), 1_000_000)?,
        enabled: true,
        unhealthy_until_ms: 0,
        failures: 0,
        created_ms: now_ms(),
    };
    gw.store().create_channel(&rec).await?;
    gw.reload_channels().await?;
    Ok(rec)
}
