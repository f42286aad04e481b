//! The axum middleware in front of `/v1`: authenticate, admit (allow-list, limits, money held),
//! route to the local handler or an upstream channel, and make sure one ledger row is written.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::gateway::{Admission, Estimate, Gateway};
use crate::limits::RateInfo;
use crate::meter::RequestMeter;
use crate::money::Tokens;
use crate::{upstream, GatewayError};

/// Routes that generate (and so are metered and limited); other `/v1` routes only need a key.
fn metered(method: &Method, path: &str) -> bool {
    method == Method::POST
        && matches!(
            path,
            "/v1/chat/completions"
                | "/v1/completions"
                | "/v1/embeddings"
                | "/api/chat"
                | "/api/generate"
                | "/api/embed"
        )
}

/// Largest model name looked at; longer ones are refused before touching the database.
const MAX_MODEL_LEN: usize = 256;

fn estimate(body: &Value, body_len: usize, path: &str, default_max: i64) -> Estimate {
    // A token is at least one byte of JSON in practice, so bytes/3 (+ template overhead)
    // over-estimates the prompt; actual counts settle the difference.
    let prompt_tokens = (body_len / 3) as i64 + 16;
    if path.ends_with("/embeddings") || path.ends_with("/embed") {
        return Estimate {
            prompt_tokens,
            max_completion_tokens: 0,
        };
    }
    let max = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_i64))
        .or_else(|| body["options"]["num_predict"].as_i64())
        .filter(|n| (0..=10_000_000).contains(n))
        .unwrap_or(default_max);
    let n = body
        .get("n")
        .and_then(Value::as_i64)
        .filter(|n| (1..=128).contains(n))
        .unwrap_or(1);
    Estimate {
        prompt_tokens,
        max_completion_tokens: max * n,
    }
}

fn decorate(resp: &mut Response, request_id: &str, rate: Option<&RateInfo>) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    if let Some(r) = rate {
        r.apply(resp.headers_mut());
    }
}

/// Reads `usage` from a buffered JSON response (embeddings, or any handler that did not report).
fn usage_of(body: &[u8]) -> Tokens {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let u = &v["usage"];
    let get = |k: &str| u.get(k).and_then(Value::as_i64).unwrap_or(0);
    Tokens {
        prompt: get("prompt_tokens"),
        cached: u["prompt_tokens_details"]["cached_tokens"]
            .as_i64()
            .unwrap_or(0),
        completion: get("completion_tokens"),
    }
}

/// The middleware (`axum::middleware::from_fn_with_state(gateway, gateway::layer::require)`);
/// refusals on `/api` come in Ollama's `{"error": "..."}` shape, elsewhere in OpenAI's.
pub async fn require(State(gw): State<Gateway>, req: Request, next: Next) -> Response {
    let ollama = req.uri().path().starts_with("/api/");
    match run(gw, req, next).await {
        Ok(r) => r,
        Err(e) if ollama => {
            let body = serde_json::json!({"error": e.to_string()});
            let mut r = e.into_response();
            *r.body_mut() = Body::from(body.to_string());
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn run(gw: Gateway, req: Request, next: Next) -> Result<Response, GatewayError> {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = gw.authenticate(auth).await?;
    let path = req.uri().path().to_string();
    if !metered(req.method(), &path) {
        let mut req = req;
        req.extensions_mut().insert(caller);
        return Ok(next.run(req).await);
    }
    let (parts, body) = req.into_parts();
    let limit = gw.config().max_body_bytes;
    let Ok(bytes) = to_bytes(body, limit).await else {
        return Ok(payload_too_large(limit));
    };
    let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let Some(model) = json
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        // Malformed or model-less: the handler answers with the precise 400, nothing runs.
        let mut req = Request::from_parts(parts, Body::from(bytes));
        req.extensions_mut().insert(caller);
        return Ok(next.run(req).await);
    };
    if model.is_empty() || model.len() > MAX_MODEL_LEN {
        return Err(GatewayError::invalid(
            "model",
            "model must be 1 to 256 characters",
        ));
    }
    let est = estimate(&json, bytes.len(), &path, gw.config().default_max_tokens);
    let adm = gw.admit(&caller, &model, est).await?;
    if let Some(route) = gw.route(&model) {
        let request_id = adm.request_id.clone();
        let rate = adm.rate.clone();
        let mut resp = upstream::proxy(&gw, adm, route, &path, json, &parts.headers).await;
        decorate(&mut resp, &request_id, rate.as_ref());
        return Ok(resp);
    }
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(caller);
    local(gw, adm, req, next).await
}

async fn local(
    gw: Gateway,
    adm: Admission,
    req: Request,
    next: Next,
) -> Result<Response, GatewayError> {
    let request_id = adm.request_id.clone();
    let rate = adm.rate.clone();
    let meter = RequestMeter::new(gw, adm);
    let resp = meter.scope(next.run(req)).await;
    let mut resp = if meter.attached() {
        resp
    } else {
        // Nothing generated through the meter (an error, or embeddings): settle from the
        // response itself before it leaves.
        let status = resp.status();
        let is_json = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if status.is_success() && is_json {
            let (parts, body) = resp.into_parts();
            let bytes = to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
            let t = usage_of(&bytes);
            meter
                .finish(
                    t.prompt as usize,
                    t.cached as usize,
                    t.completion as usize,
                    status.as_u16(),
                )
                .await;
            Response::from_parts(parts, Body::from(bytes))
        } else {
            meter.finish(0, 0, 0, status.as_u16()).await;
            resp
        }
    };
    decorate(&mut resp, &request_id, rate.as_ref());
    Ok(resp)
}

fn payload_too_large(limit: usize) -> Response {
    let body = serde_json::json!({"error": {
        "message": format!("Request body is larger than {limit} bytes."),
        "type": "invalid_request_error", "param": null, "code": "payload_too_large"}});
    (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response()
}
