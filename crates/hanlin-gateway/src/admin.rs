//! The admin REST API (`/admin/v1/...`), the same verbs as the `hanlin` admin commands; every
//! route requires an admin key. Bodies are small JSON objects with unknown fields refused.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::gateway::{now_ms, Gateway};
use crate::money::format_amount;
use crate::ops::{self, ChannelView, KeyView, TenantView};
use crate::GatewayError;

type R = Result<Response, GatewayError>;

/// Largest admin request body.
const ADMIN_BODY_LIMIT: usize = 64 * 1024;

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, GatewayError> {
    serde_json::from_slice(body).map_err(|e| {
        // serde's message names the field and position, never echoes a value back.
        GatewayError::invalid("body", format!("invalid JSON body: {e}"))
    })
}

async fn require_admin(State(gw): State<Gateway>, req: Request, next: Next) -> Response {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match gw.authenticate(auth).await {
        Ok(c) if c.key.is_admin => next.run(req).await,
        Ok(c) => {
            tracing::warn!(key = %c.key.id, "non-admin key on the admin API");
            GatewayError::Forbidden {
                message: "This endpoint requires an admin key.".into(),
                code: "admin_required",
            }
            .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// The admin router, to be merged at the root (its paths start with `/admin/v1`).
pub fn router<S: Clone + Send + Sync + 'static>(gw: Gateway) -> Router<S> {
    Router::new()
        .route("/admin/v1/tenants", get(list_tenants).post(create_tenant))
        .route("/admin/v1/tenants/{t}", get(get_tenant).patch(patch_tenant))
        .route("/admin/v1/groups", post(set_group))
        .route("/admin/v1/keys", get(list_keys).post(create_key))
        .route("/admin/v1/keys/{id}", delete(revoke_key))
        .route("/admin/v1/prices", get(list_prices).put(set_price))
        .route("/admin/v1/prices/{*model}", delete(delete_price))
        .route("/admin/v1/topups", post(topup))
        .route("/admin/v1/codes", post(create_codes))
        .route("/admin/v1/codes/redeem", post(redeem))
        .route("/admin/v1/usage", get(usage))
        .route("/admin/v1/statements/{t}", get(statement))
        .route(
            "/admin/v1/channels",
            get(list_channels).post(create_channel),
        )
        .route("/admin/v1/channels/{id}", delete(delete_channel))
        .route_layer(middleware::from_fn_with_state(gw.clone(), require_admin))
        .layer(DefaultBodyLimit::max(ADMIN_BODY_LIMIT))
        .with_state(gw)
}

async fn list_tenants(State(gw): State<Gateway>) -> R {
    let ts = gw.store().tenants().await?;
    let v: Vec<TenantView> = ts.iter().map(Into::into).collect();
    Ok(Json(json!({"data": v})).into_response())
}

async fn create_tenant(State(gw): State<Gateway>, body: Bytes) -> R {
    let t = ops::create_tenant(&gw, parse(&body)?).await?;
    Ok((StatusCode::CREATED, Json(TenantView::from(&t))).into_response())
}

async fn get_tenant(State(gw): State<Gateway>, Path(t): Path<String>) -> R {
    let t = ops::find_tenant(&gw, &t).await?;
    Ok(Json(TenantView::from(&t)).into_response())
}

async fn patch_tenant(State(gw): State<Gateway>, Path(t): Path<String>, body: Bytes) -> R {
    let t = ops::update_tenant(&gw, &t, parse(&body)?).await?;
    Ok(Json(TenantView::from(&t)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupReq {
    name: String,
    ratio: String,
}

async fn set_group(State(gw): State<Gateway>, body: Bytes) -> R {
    let g: GroupReq = parse(&body)?;
    let bp = ops::set_group(&gw, &g.name, &g.ratio).await?;
    Ok(Json(json!({"name": g.name, "ratio_bp": bp})).into_response())
}

async fn list_keys(State(gw): State<Gateway>, Query(q): Query<HashMap<String, String>>) -> R {
    let tid = match q.get("tenant") {
        Some(t) => Some(ops::find_tenant(&gw, t).await?.id),
        None => None,
    };
    let ks = gw.store().keys(tid.as_deref()).await?;
    let v: Vec<KeyView> = ks.iter().map(Into::into).collect();
    Ok(Json(json!({"data": v})).into_response())
}

async fn create_key(State(gw): State<Gateway>, body: Bytes) -> R {
    let (rec, secret) = ops::create_key(&gw, parse(&body)?).await?;
    let mut v = serde_json::to_value(KeyView::from(&rec)).unwrap_or(Value::Null);
    v["key"] = Value::String(secret.expose().to_string());
    v["note"] = Value::String("Store this key now: it is not shown again.".into());
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn revoke_key(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    let changed = ops::revoke_key(&gw, &id).await?;
    Ok(Json(json!({"id": id, "revoked": true, "changed": changed})).into_response())
}

async fn list_prices(State(gw): State<Gateway>) -> R {
    let ps = gw.store().prices().await?;
    let v: Vec<Value> = ps.iter().map(price_json).collect();
    Ok(Json(json!({"data": v})).into_response())
}

fn price_json(p: &hanlin_store::Price) -> Value {
    json!({
        "model": p.model, "currency": p.currency,
        "prompt_per_1k": format_amount(p.prompt_per_1k),
        "completion_per_1k": format_amount(p.completion_per_1k),
        "cached_per_1k": format_amount(p.cached_per_1k),
        "per_request": format_amount(p.per_request),
        "rpm": p.rpm, "tpm": p.tpm,
    })
}

async fn set_price(State(gw): State<Gateway>, body: Bytes) -> R {
    let p = ops::set_price(&gw, parse(&body)?).await?;
    Ok(Json(price_json(&p)).into_response())
}

async fn delete_price(State(gw): State<Gateway>, Path(model): Path<String>) -> R {
    ops::check_model("model", &model)?;
    if !gw.store().delete_price(&model).await? {
        return Err(GatewayError::NotFound("price not found".into()));
    }
    gw.invalidate_prices();
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopupReq {
    tenant: String,
    amount: String,
    note: Option<String>,
}

async fn topup(State(gw): State<Gateway>, body: Bytes) -> R {
    let t: TopupReq = parse(&body)?;
    let c = ops::topup(&gw, &t.tenant, &t.amount, t.note.as_deref().unwrap_or("")).await?;
    let tenant = gw.store().tenant(&c.tenant_id).await?;
    Ok(
        Json(json!({"credit": c.id, "amount": format_amount(c.amount),
        "balance": format_amount(tenant.balance)}))
        .into_response(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodesReq {
    amount: String,
    currency: Option<String>,
    count: Option<i64>,
}

async fn create_codes(State(gw): State<Gateway>, body: Bytes) -> R {
    let c: CodesReq = parse(&body)?;
    let codes = ops::create_codes(
        &gw,
        &c.amount,
        c.currency.as_deref().unwrap_or("CNY"),
        c.count.unwrap_or(1),
    )
    .await?;
    let list: Vec<&str> = codes.iter().map(|s| s.expose()).collect();
    Ok((StatusCode::CREATED, Json(json!({"codes": list}))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeemReq {
    tenant: String,
    code: String,
}

async fn redeem(State(gw): State<Gateway>, body: Bytes) -> R {
    let r: RedeemReq = parse(&body)?;
    let amount = ops::redeem(&gw, &r.tenant, &r.code).await?;
    Ok(Json(json!({"credited": format_amount(amount)})).into_response())
}

async fn usage(State(gw): State<Gateway>, Query(q): Query<HashMap<String, String>>) -> R {
    let today = now_ms().div_euclid(86_400_000);
    let from = match q.get("from") {
        Some(s) => ops::parse_day("from", s)?,
        None => today - 30,
    };
    let to = match q.get("to") {
        Some(s) => ops::parse_day("to", s)?,
        None => today,
    };
    let lines = ops::usage(&gw, q.get("tenant").map(String::as_str), from, to).await?;
    Ok(Json(json!({"data": lines})).into_response())
}

async fn statement(
    State(gw): State<Gateway>,
    Path(t): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> R {
    let period = q
        .get("period")
        .cloned()
        .unwrap_or_else(|| crate::gateway::month_of(now_ms()));
    let s = ops::statement(&gw, &t, &period).await?;
    match q.get("format").map(String::as_str) {
        Some("csv") => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            s.to_csv(),
        )
            .into_response()),
        None | Some("json") => Ok(Json(s).into_response()),
        Some(_) => Err(GatewayError::invalid(
            "format",
            "format must be json or csv",
        )),
    }
}

async fn list_channels(State(gw): State<Gateway>) -> R {
    let cs = gw.store().channels().await?;
    let v: Vec<ChannelView> = cs.iter().map(Into::into).collect();
    Ok(Json(json!({"data": v})).into_response())
}

async fn create_channel(State(gw): State<Gateway>, body: Bytes) -> R {
    let c = ops::create_channel(&gw, parse(&body)?).await?;
    Ok((StatusCode::CREATED, Json(ChannelView::from(&c))).into_response())
}

async fn delete_channel(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    ops::check_name("id", &id)?;
    if !gw.store().delete_channel(&id).await? {
        return Err(GatewayError::NotFound("channel not found".into()));
    }
    gw.reload_channels().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
