//! Gateway admin commands: `hanlin tenants|keys|prices|topup|codes|usage|channels`. They work
//! on the database directly (no server needed) through the same operations as the admin API.

use anyhow::Context;
use hanlin_gateway::money::format_amount;
use hanlin_gateway::ops::{
    self, KeyView, NewChannel, NewKey, NewTenant, PriceReq, TenantPatch, TenantView,
};
use hanlin_gateway::{Gateway, GatewayConfig};

use super::gateway::{open, DbArgs};

fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(
    db: &DbArgs,
    f: impl FnOnce(Gateway) -> F,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let gw = open(db.db.as_deref(), GatewayConfig::default()).await?;
        f(gw).await
    })
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Gateway errors carry their client-facing message; that is what an admin needs to read.
fn gw_err(e: hanlin_gateway::GatewayError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// `hanlin tenants …`
#[derive(clap::Args, Debug)]
pub struct TenantsArgs {
    #[command(subcommand)]
    cmd: TenantsCmd,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(clap::Subcommand, Debug)]
enum TenantsCmd {
    /// List tenants with balances.
    List,
    /// Create a tenant.
    Create {
        /// Unique name.
        name: String,
        /// individual | business | internal.
        #[arg(long, default_value = "individual")]
        kind: String,
        /// prepaid | postpaid | subscription.
        #[arg(long, default_value = "prepaid")]
        billing: String,
        /// CNY | USD.
        #[arg(long, default_value = "CNY")]
        currency: String,
        /// Discount group.
        #[arg(long)]
        group: Option<String>,
        /// Postpaid credit limit (decimal).
        #[arg(long)]
        credit_limit: Option<String>,
        /// Subscription tokens included per month.
        #[arg(long)]
        included_tokens: Option<i64>,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<i64>,
        /// Tokens per minute.
        #[arg(long)]
        tpm: Option<i64>,
    },
    /// Show one tenant.
    Show {
        /// Id or name.
        tenant: String,
    },
    /// Change a tenant's plan or limits.
    Set {
        /// Id or name.
        tenant: String,
        /// prepaid | postpaid | subscription.
        #[arg(long)]
        billing: Option<String>,
        /// Discount group ("" clears).
        #[arg(long)]
        group: Option<String>,
        /// Credit limit (decimal).
        #[arg(long)]
        credit_limit: Option<String>,
        /// Included tokens per month.
        #[arg(long)]
        included_tokens: Option<i64>,
        /// Requests per minute (0: unlimited).
        #[arg(long)]
        rpm: Option<i64>,
        /// Tokens per minute (0: unlimited).
        #[arg(long)]
        tpm: Option<i64>,
        /// Disable (true) or enable (false).
        #[arg(long)]
        disabled: Option<bool>,
    },
    /// Create or change a discount group: RATIO is the share paid (0.8 = 20% off).
    Group {
        /// Group name.
        name: String,
        /// Share paid.
        ratio: String,
    },
}

/// Runs `hanlin tenants`.
pub fn tenants(a: TenantsArgs) -> anyhow::Result<()> {
    block_on(&a.db, |gw| async move {
        match a.cmd {
            TenantsCmd::List => {
                println!(
                    "{:<18} {:<24} {:<10} {:<12} {:>14} {:>6} {:>8}",
                    "ID", "NAME", "KIND", "BILLING", "BALANCE", "RPM", "TPM"
                );
                for t in gw.store().tenants().await? {
                    println!(
                        "{:<18} {:<24} {:<10} {:<12} {:>10} {} {:>6} {:>8}",
                        t.id,
                        t.name,
                        t.kind,
                        t.billing,
                        format_amount(t.balance),
                        t.currency,
                        t.rpm,
                        t.tpm
                    );
                }
                Ok(())
            }
            TenantsCmd::Create {
                name,
                kind,
                billing,
                currency,
                group,
                credit_limit,
                included_tokens,
                rpm,
                tpm,
            } => {
                let t = ops::create_tenant(
                    &gw,
                    NewTenant {
                        name,
                        kind: Some(kind),
                        billing: Some(billing),
                        currency: Some(currency),
                        group,
                        credit_limit,
                        included_tokens,
                        rpm,
                        tpm,
                    },
                )
                .await
                .map_err(gw_err)?;
                print_json(&TenantView::from(&t))
            }
            TenantsCmd::Show { tenant } => {
                let t = ops::find_tenant(&gw, &tenant).await.map_err(gw_err)?;
                print_json(&TenantView::from(&t))
            }
            TenantsCmd::Set {
                tenant,
                billing,
                group,
                credit_limit,
                included_tokens,
                rpm,
                tpm,
                disabled,
            } => {
                let t = ops::update_tenant(
                    &gw,
                    &tenant,
                    TenantPatch {
                        billing,
                        group,
                        credit_limit,
                        included_tokens,
                        rpm,
                        tpm,
                        disabled,
                    },
                )
                .await
                .map_err(gw_err)?;
                print_json(&TenantView::from(&t))
            }
            TenantsCmd::Group { name, ratio } => {
                let bp = ops::set_group(&gw, &name, &ratio).await.map_err(gw_err)?;
                println!(
                    "group {name}: pays {}.{:02}% of list price",
                    bp / 100,
                    bp % 100
                );
                Ok(())
            }
        }
    })
}

/// `hanlin keys …`
#[derive(clap::Args, Debug)]
pub struct KeysArgs {
    #[command(subcommand)]
    cmd: KeysCmd,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(clap::Subcommand, Debug)]
enum KeysCmd {
    /// List keys (never their secrets).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Create a key; it is printed once and cannot be shown again.
    Create {
        /// Tenant id or name (created as an internal tenant with --admin if missing).
        #[arg(long)]
        tenant: String,
        /// Label.
        #[arg(long)]
        name: Option<String>,
        /// May use the admin API.
        #[arg(long)]
        admin: bool,
        /// Allowed model (repeat; default all).
        #[arg(long = "model")]
        models: Vec<String>,
        /// Expires after this many days.
        #[arg(long)]
        expires_days: Option<i64>,
        /// Spend cap (decimal).
        #[arg(long)]
        spend_cap: Option<String>,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<i64>,
        /// Tokens per minute.
        #[arg(long)]
        tpm: Option<i64>,
    },
    /// Revoke a key by id (its visible prefix, `hl…`); effective immediately.
    Revoke {
        /// Key id.
        id: String,
    },
}

/// Runs `hanlin keys`.
pub fn keys(a: KeysArgs) -> anyhow::Result<()> {
    block_on(&a.db, |gw| async move {
        match a.cmd {
            KeysCmd::List { tenant } => {
                let tid = match tenant {
                    Some(t) => Some(ops::find_tenant(&gw, &t).await.map_err(gw_err)?.id),
                    None => None,
                };
                println!(
                    "{:<14} {:<18} {:<12} {:<6} {:<8} MODELS",
                    "ID", "TENANT", "NAME", "ADMIN", "STATE"
                );
                for k in gw.store().keys(tid.as_deref()).await? {
                    let v = KeyView::from(&k);
                    let state = if v.revoked_ms != 0 { "revoked" } else { "live" };
                    println!(
                        "{:<14} {:<18} {:<12} {:<6} {:<8} {}",
                        v.id,
                        v.tenant_id,
                        v.name,
                        v.admin,
                        state,
                        v.models.join(",")
                    );
                }
                Ok(())
            }
            KeysCmd::Create {
                tenant,
                name,
                admin,
                models,
                expires_days,
                spend_cap,
                rpm,
                tpm,
            } => {
                if admin && ops::find_tenant(&gw, &tenant).await.is_err() {
                    // The first admin key needs somewhere to live.
                    ops::create_tenant(
                        &gw,
                        NewTenant {
                            name: tenant.clone(),
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
                    .await
                    .map_err(gw_err)?;
                }
                let (rec, secret) = ops::create_key(
                    &gw,
                    NewKey {
                        tenant,
                        name,
                        admin: Some(admin),
                        models: Some(models),
                        expires_in_days: expires_days,
                        spend_cap,
                        rpm,
                        tpm,
                    },
                )
                .await
                .map_err(gw_err)?;
                eprintln!(
                    "key {} for tenant {} (store it now: it is not shown again):",
                    rec.id, rec.tenant_id
                );
                println!("{}", secret.expose());
                Ok(())
            }
            KeysCmd::Revoke { id } => {
                let changed = ops::revoke_key(&gw, &id).await.map_err(gw_err)?;
                println!(
                    "{id}: {}",
                    if changed {
                        "revoked"
                    } else {
                        "was already revoked"
                    }
                );
                Ok(())
            }
        }
    })
}

/// `hanlin prices …`
#[derive(clap::Args, Debug)]
pub struct PricesArgs {
    #[command(subcommand)]
    cmd: PricesCmd,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(clap::Subcommand, Debug)]
enum PricesCmd {
    /// List prices (per 1K tokens).
    List,
    /// Set a model's price; amounts are decimals per 1K tokens.
    Set {
        /// Model.
        model: String,
        /// Per 1K prompt tokens.
        #[arg(long)]
        prompt: Option<String>,
        /// Per 1K completion tokens.
        #[arg(long)]
        completion: Option<String>,
        /// Per 1K cached prompt tokens (default: the prompt price).
        #[arg(long)]
        cached: Option<String>,
        /// Fixed price per request.
        #[arg(long)]
        per_request: Option<String>,
        /// CNY | USD.
        #[arg(long, default_value = "CNY")]
        currency: String,
        /// Model-wide requests per minute.
        #[arg(long)]
        rpm: Option<i64>,
        /// Model-wide tokens per minute.
        #[arg(long)]
        tpm: Option<i64>,
    },
    /// Remove a model's price (it becomes free).
    Rm {
        /// Model.
        model: String,
    },
}

/// Runs `hanlin prices`.
pub fn prices(a: PricesArgs) -> anyhow::Result<()> {
    block_on(&a.db, |gw| async move {
        match a.cmd {
            PricesCmd::List => {
                println!(
                    "{:<28} {:<4} {:>12} {:>12} {:>12} {:>12}",
                    "MODEL", "CUR", "PROMPT/1K", "COMPL/1K", "CACHED/1K", "PER-REQ"
                );
                for p in gw.store().prices().await? {
                    println!(
                        "{:<28} {:<4} {:>12} {:>12} {:>12} {:>12}",
                        p.model,
                        p.currency,
                        format_amount(p.prompt_per_1k),
                        format_amount(p.completion_per_1k),
                        format_amount(p.cached_per_1k),
                        format_amount(p.per_request)
                    );
                }
                Ok(())
            }
            PricesCmd::Set {
                model,
                prompt,
                completion,
                cached,
                per_request,
                currency,
                rpm,
                tpm,
            } => {
                let p = ops::set_price(
                    &gw,
                    PriceReq {
                        model,
                        currency: Some(currency),
                        prompt,
                        completion,
                        cached,
                        per_request,
                        rpm,
                        tpm,
                    },
                )
                .await
                .map_err(gw_err)?;
                println!(
                    "{}: prompt {} / completion {} / cached {} per 1K, {} per request ({})",
                    p.model,
                    format_amount(p.prompt_per_1k),
                    format_amount(p.completion_per_1k),
                    format_amount(p.cached_per_1k),
                    format_amount(p.per_request),
                    p.currency
                );
                Ok(())
            }
            PricesCmd::Rm { model } => {
                ops::check_model("model", &model).map_err(gw_err)?;
                let gone = gw.store().delete_price(&model).await?;
                println!(
                    "{model}: {}",
                    if gone {
                        "price removed"
                    } else {
                        "had no price"
                    }
                );
                Ok(())
            }
        }
    })
}

/// `hanlin topup TENANT AMOUNT`
#[derive(clap::Args, Debug)]
pub struct TopupArgs {
    /// Tenant id or name.
    tenant: String,
    /// Amount (decimal; negative adjusts down).
    #[arg(allow_hyphen_values = true)]
    amount: String,
    /// Note on the credit.
    #[arg(long, default_value = "")]
    note: String,
    #[command(flatten)]
    db: DbArgs,
}

/// Runs `hanlin topup`.
pub fn topup(a: TopupArgs) -> anyhow::Result<()> {
    block_on(&a.db, |gw| async move {
        let c = ops::topup(&gw, &a.tenant, &a.amount, &a.note)
            .await
            .map_err(gw_err)?;
        let t = gw.store().tenant(&c.tenant_id).await?;
        println!(
            "{}: +{} → balance {} {}",
            t.name,
            format_amount(c.amount),
            format_amount(t.balance),
            t.currency
        );
        Ok(())
    })
}

/// `hanlin codes …`
#[derive(clap::Args, Debug)]
pub struct CodesArgs {
    #[command(subcommand)]
    cmd: CodesCmd,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(clap::Subcommand, Debug)]
enum CodesCmd {
    /// Create single-use redemption codes (printed once).
    Create {
        /// Value of each code (decimal).
        amount: String,
        /// CNY | USD.
        #[arg(long, default_value = "CNY")]
        currency: String,
        /// How many.
        #[arg(long, default_value_t = 1)]
        count: i64,
    },
    /// Redeem a code for a tenant.
    Redeem {
        /// Tenant id or name.
        tenant: String,
        /// The code.
        code: String,
    },
}

/// Runs `hanlin codes`.
pub fn codes(a: CodesArgs) -> anyhow::Result<()> {
    block_on(&a.db, |gw| async move {
        match a.cmd {
            CodesCmd::Create {
                amount,
                currency,
                count,
            } => {
                for c in ops::create_codes(&gw, &amount, &currency, count)
                    .await
                    .map_err(gw_err)?
                {
                    println!("{}", c.expose());
                }
                Ok(())
            }
            CodesCmd::Redeem { tenant, code } => {
                let v = ops::redeem(&gw, &tenant, &code).await.map_err(gw_err)?;
                println!("credited {}", format_amount(v));
                Ok(())
            }
        }
    })
}

/// `hanlin usage`: totals per day, model and tenant; or a tenant's statement.
#[derive(clap::Args, Debug)]
pub struct UsageArgs {
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// First day, YYYY-MM-DD (default: 30 days ago).
    #[arg(long)]
    from: Option<String>,
    /// Last day, YYYY-MM-DD (default: today).
    #[arg(long)]
    to: Option<String>,
    /// Print the tenant's statement for this month (YYYY-MM) instead.
    #[arg(long, requires = "tenant")]
    statement: Option<String>,
    /// Output: table, json or csv (csv: statements only).
    #[arg(long, default_value = "table")]
    format: String,
    #[command(flatten)]
    db: DbArgs,
}

/// Runs `hanlin usage`.
pub fn usage(a: UsageArgs) -> anyhow::Result<()> {
    block_on(&a.db, |gw| async move {
        if let (Some(period), Some(tenant)) = (&a.statement, &a.tenant) {
            let s = ops::statement(&gw, tenant, period).await.map_err(gw_err)?;
            return match a.format.as_str() {
                "csv" => {
                    print!("{}", s.to_csv());
                    Ok(())
                }
                "json" => print_json(&s),
                _ => {
                    println!(
                        "{} {} — credits {} usage {} ({} requests) {}",
                        s.tenant.name,
                        s.period,
                        s.total_credits,
                        s.total_usage,
                        s.usage.len(),
                        s.tenant.currency
                    );
                    Ok(())
                }
            };
        }
        let today = hanlin_gateway::gateway::now_ms().div_euclid(86_400_000);
        let from = match &a.from {
            Some(d) => ops::parse_day("from", d).map_err(gw_err)?,
            None => today - 30,
        };
        let to = match &a.to {
            Some(d) => ops::parse_day("to", d).map_err(gw_err)?,
            None => today,
        };
        let lines = ops::usage(&gw, a.tenant.as_deref(), from, to)
            .await
            .map_err(gw_err)?;
        if a.format == "json" {
            return print_json(&lines);
        }
        println!(
            "{:<10} {:<20} {:<24} {:>8} {:>10} {:>10} {:>10} {:>12}",
            "DAY", "TENANT", "MODEL", "REQS", "PROMPT", "CACHED", "COMPL", "COST"
        );
        let (mut reqs, mut p, mut c, mut k, mut cost) = (0, 0, 0, 0, 0i64);
        for l in &lines {
            println!(
                "{:<10} {:<20} {:<24} {:>8} {:>10} {:>10} {:>10} {:>12}",
                l.day,
                l.tenant,
                l.model,
                l.requests,
                l.prompt_tokens,
                l.cached_tokens,
                l.completion_tokens,
                l.cost
            );
            reqs += l.requests;
            p += l.prompt_tokens;
            k += l.cached_tokens;
            c += l.completion_tokens;
            cost += hanlin_gateway::money::parse_amount(&l.cost).unwrap_or(0);
        }
        println!(
            "{:<10} {:<20} {:<24} {:>8} {:>10} {:>10} {:>10} {:>12}",
            "TOTAL",
            "",
            "",
            reqs,
            p,
            k,
            c,
            format_amount(cost)
        );
        Ok(())
    })
}

/// `hanlin channels …`
#[derive(clap::Args, Debug)]
pub struct ChannelsArgs {
    #[command(subcommand)]
    cmd: ChannelsCmd,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(clap::Subcommand, Debug)]
enum ChannelsCmd {
    /// List channels (keys never shown).
    List,
    /// Add an OpenAI-compatible upstream.
    Add {
        /// Unique name.
        name: String,
        /// Base URL up to /v1, e.g. https://api.deepseek.com/v1.
        #[arg(long)]
        base_url: String,
        /// Model mapping `public=upstream` (or a name served as is); repeat.
        #[arg(long = "model", required = true)]
        models: Vec<String>,
        /// Weight within its priority.
        #[arg(long, default_value_t = 1)]
        weight: i64,
        /// Higher is tried first.
        #[arg(long, default_value_t = 0)]
        priority: i64,
    },
    /// Remove a channel by id or name.
    Rm {
        /// Id or name.
        channel: String,
    },
}

/// Runs `hanlin channels`. The provider key is read from `$HANLIN_CHANNEL_KEY` so that it never
/// appears in shell history or the process list.
pub fn channels(a: ChannelsArgs) -> anyhow::Result<()> {
    block_on(&a.db, |gw| async move {
        match a.cmd {
            ChannelsCmd::List => {
                println!(
                    "{:<16} {:<16} {:<40} {:>4} {:>4} {:<8} MODELS",
                    "ID", "NAME", "BASE URL", "PRIO", "WT", "HEALTH"
                );
                for c in gw.store().channels().await? {
                    let health = if c.unhealthy_until_ms > hanlin_gateway::gateway::now_ms() {
                        "down"
                    } else {
                        "ok"
                    };
                    println!(
                        "{:<16} {:<16} {:<40} {:>4} {:>4} {:<8} {}",
                        c.id,
                        c.name,
                        c.base_url,
                        c.priority,
                        c.weight,
                        health,
                        c.models.join(",")
                    );
                }
                Ok(())
            }
            ChannelsCmd::Add {
                name,
                base_url,
                models,
                weight,
                priority,
            } => {
                let key = std::env::var("HANLIN_CHANNEL_KEY").ok();
                if key.is_none() {
                    eprintln!("note: $HANLIN_CHANNEL_KEY is not set; the channel has no key");
                }
                let c = ops::create_channel(
                    &gw,
                    NewChannel {
                        name,
                        base_url,
                        key,
                        models,
                        weight: Some(weight),
                        priority: Some(priority),
                    },
                )
                .await
                .map_err(gw_err)?;
                print_json(&ops::ChannelView::from(&c))
            }
            ChannelsCmd::Rm { channel } => {
                ops::check_name("channel", &channel).map_err(gw_err)?;
                let gone = gw.store().delete_channel(&channel).await?;
                println!("{channel}: {}", if gone { "removed" } else { "not found" });
                Ok(())
            }
        }
    })
}
