//! Rendering [`ApiError`] as an HTTP response, in each route family's error shape.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hanlin_api::{ApiError, BackendError};

/// An error rendered in OpenAI's envelope (`/v1`, `/health`, unknown routes).
#[derive(Debug)]
pub struct OpenAiError(pub ApiError);

/// An error rendered as Ollama's `{"error": "..."}` (`/api`).
#[derive(Debug)]
pub struct OllamaError(pub ApiError);

fn with_status(e: &ApiError, body: Response) -> Response {
    let mut resp = body;
    *resp.status_mut() =
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(s) = e.retry_after_s {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        with_status(&self.0, Json(self.0.openai_body()).into_response())
    }
}

impl IntoResponse for OllamaError {
    fn into_response(self) -> Response {
        with_status(&self.0, Json(self.0.ollama_body()).into_response())
    }
}

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        OpenAiError(e)
    }
}

impl From<ApiError> for OllamaError {
    fn from(e: ApiError) -> Self {
        OllamaError(e)
    }
}

/// Maps a backend failure to the client error, logging what the client must not see.
pub fn from_backend(e: BackendError) -> ApiError {
    match &e {
        BackendError::Internal(detail) => tracing::error!(%detail, "backend failed"),
        BackendError::Overloaded { .. } => tracing::warn!("backend overloaded; answering 429"),
        _ => tracing::debug!(error = %e, "request refused by backend"),
    }
    e.into()
}
