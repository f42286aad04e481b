//! Reports: usage totals per day, tenant and model, and monthly statements (JSON and CSV).

use hanlin_store::{Credit, UsageRecord, UsageTotal};
use serde::Serialize;

use crate::gateway::{day_string, days_from_civil, Gateway};
use crate::money::format_amount;
use crate::ops::{find_tenant, TenantView};
use crate::GatewayError;

type R<T> = Result<T, GatewayError>;

/// Parses `YYYY-MM-DD` into a day number.
pub fn parse_day(field: &str, s: &str) -> R<i64> {
    let bad = || GatewayError::invalid(field, format!("{field} must be YYYY-MM-DD"));
    let mut it = s.split('-');
    let (Some(y), Some(m), Some(d), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(bad());
    };
    let y: i64 = y.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    let d: u32 = d.parse().map_err(|_| bad())?;
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    Ok(days_from_civil(y, m, d))
}

/// Parses `YYYY-MM` into `[from_ms, to_ms)`.
pub fn parse_month(s: &str) -> R<(i64, i64)> {
    let bad = || GatewayError::invalid("period", "period must be YYYY-MM");
    let (y, m) = s.split_once('-').ok_or_else(bad)?;
    let y: i64 = y.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || s.len() != 7 {
        return Err(bad());
    }
    let from = days_from_civil(y, m, 1);
    let to = if m == 12 {
        days_from_civil(y + 1, 1, 1)
    } else {
        days_from_civil(y, m + 1, 1)
    };
    Ok((from * 86_400_000, to * 86_400_000))
}

/// One line of `hanlin usage`.
#[derive(Clone, Debug, Serialize)]
pub struct UsageLine {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Tenant name.
    pub tenant: String,
    /// Model.
    pub model: String,
    /// Requests.
    pub requests: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Cached.
    pub cached_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Cost.
    pub cost: String,
}

/// Usage totals per day, tenant and model over `[from_day, to_day]`.
pub async fn usage(
    gw: &Gateway,
    tenant: Option<&str>,
    from_day: i64,
    to_day: i64,
) -> R<Vec<UsageLine>> {
    let tid = match tenant {
        Some(t) => Some(find_tenant(gw, t).await?.id),
        None => None,
    };
    let totals: Vec<UsageTotal> = gw
        .store()
        .usage_totals(
            tid.as_deref(),
            from_day * 86_400_000,
            (to_day + 1) * 86_400_000,
        )
        .await?;
    let names: std::collections::HashMap<String, String> = gw
        .store()
        .tenants()
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    Ok(totals
        .into_iter()
        .map(|t| UsageLine {
            day: day_string(t.day),
            tenant: names.get(&t.tenant_id).cloned().unwrap_or(t.tenant_id),
            model: t.model,
            requests: t.requests,
            prompt_tokens: t.prompt_tokens,
            cached_tokens: t.cached_tokens,
            completion_tokens: t.completion_tokens,
            cost: format_amount(t.cost),
        })
        .collect())
}

/// A tenant's statement for one month.
#[derive(Clone, Debug, Serialize)]
pub struct Statement {
    /// Tenant.
    pub tenant: TenantView,
    /// `YYYY-MM`.
    pub period: String,
    /// Credits in the period.
    pub credits: Vec<Credit>,
    /// Ledger rows in the period.
    pub usage: Vec<UsageRecord>,
    /// Sum of credits.
    pub total_credits: String,
    /// Sum of usage cost.
    pub total_usage: String,
}

/// Builds a statement.
pub async fn statement(gw: &Gateway, tenant: &str, period: &str) -> R<Statement> {
    let (from, to) = parse_month(period)?;
    let t = find_tenant(gw, tenant).await?;
    let usage = gw.store().ledger(Some(&t.id), from, to).await?;
    let credits: Vec<Credit> = gw
        .store()
        .credits(&t.id)
        .await?
        .into_iter()
        .filter(|c| c.created_ms >= from && c.created_ms < to)
        .collect();
    Ok(Statement {
        total_credits: format_amount(credits.iter().map(|c| c.amount).sum()),
        total_usage: format_amount(usage.iter().map(|u| u.cost).sum()),
        tenant: (&t).into(),
        period: period.to_string(),
        credits,
        usage,
    })
}

fn csv_field(s: &str) -> String {
    // Quote always; a leading = + - @ is neutralised so a spreadsheet never runs it.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl Statement {
    /// CSV: one line per ledger row and per credit.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "kind,time_ms,request_id,model,channel,prompt_tokens,cached_tokens,completion_tokens,status,amount,currency\n",
        );
        for c in &self.credits {
            out.push_str(&format!(
                "credit,{},{},,,,,,,{},{}\n",
                c.created_ms,
                csv_field(&c.id),
                format_amount(c.amount),
                self.tenant.currency
            ));
        }
        for u in &self.usage {
            out.push_str(&format!(
                "usage,{},{},{},{},{},{},{},{},{},{}\n",
                u.created_ms,
                csv_field(&u.request_id),
                csv_field(&u.model),
                csv_field(&u.channel),
                u.prompt_tokens,
                u.cached_tokens,
                u.completion_tokens,
                u.status,
                format_amount(-u.cost),
                u.currency
            ));
        }
        out
    }
}
