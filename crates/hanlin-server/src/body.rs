//! Request bodies as raw JSON, with every failure (too large, wrong content type, invalid UTF-8,
//! malformed JSON) turned into a JSON error instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use hanlin_api::ApiError;
use serde_json::Value;

use crate::error::{OllamaError, OpenAiError};
use crate::AppState;

/// A `/v1` body: `Content-Type`, when sent, must be JSON.
pub struct OpenAiJson(pub Value);

/// An `/api` body: any content type, since Ollama's own examples use `curl -d` without one.
pub struct OllamaJson(pub Value);

async fn read(req: Request, state: &AppState, strict_type: bool) -> Result<Value, ApiError> {
    if strict_type {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            let essence = ct.split(';').next().unwrap_or("").trim();
            if essence != "application/json" && !essence.ends_with("+json") {
                return Err(ApiError::bad_request(format!(
                    "Invalid Content-Type header ({essence:?}); expected application/json."
                )));
            }
        }
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
        if rej.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(state.limits().max_body_bytes)
        } else {
            ApiError::bad_request(format!("Could not read the request body: {rej}"))
        }
    })?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "The request body is empty; expected a JSON object.",
        ));
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "The request body is not valid UTF-8 (at byte {}).",
            e.valid_up_to()
        ))
    })?;
    serde_json::from_str(text).map_err(|e| {
        ApiError::bad_request(format!(
            "We could not parse the JSON body of your request: {e}."
        ))
    })
}

impl FromRequest<AppState> for OpenAiJson {
    type Rejection = OpenAiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(OpenAiJson(read(req, state, true).await?))
    }
}

impl FromRequest<AppState> for OllamaJson {
    type Rejection = OllamaError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(OllamaJson(read(req, state, false).await?))
    }
}
