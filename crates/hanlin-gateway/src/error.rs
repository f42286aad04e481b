//! Gateway refusals rendered in OpenAI's error envelope, and the one status table for them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hanlin_store::StoreError;

/// Why the gateway refused or failed a request.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No key, a malformed key, a wrong, revoked or expired key (401). The message never says
    /// which, so a caller cannot probe which keys exist.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A valid key that may not do this (403), e.g. a model outside its allow-list.
    #[error("{message}")]
    Forbidden {
        /// Client-facing message.
        message: String,
        /// Machine-readable code.
        code: &'static str,
    },
    /// Balance, credit limit, subscription or key spend cap exhausted (429 insufficient_quota).
    #[error("You exceeded your current quota, please check your plan and billing details.")]
    InsufficientQuota,
    /// Over a requests- or tokens-per-minute limit (429 + Retry-After).
    #[error("Rate limit reached for {scope} on {what}: limit {limit}, please try again in {retry_after_s}s.")]
    RateLimited {
        /// `requests` or `tokens`.
        what: &'static str,
        /// Which limit: key, tenant or model.
        scope: &'static str,
        /// The limit per minute.
        limit: i64,
        /// Seconds until the window resets.
        retry_after_s: u64,
    },
    /// Bad input (400) naming the field.
    #[error("{message}")]
    Invalid {
        /// The field.
        param: String,
        /// What is wrong.
        message: String,
    },
    /// No such thing (404).
    #[error("{0}")]
    NotFound(String),
    /// Already exists (409).
    #[error("{0}")]
    Conflict(String),
    /// Every upstream channel failed (502) or none serves the model.
    #[error("{0}")]
    Upstream(String),
    /// Storage or another internal failure (500); details are logged, not returned.
    #[error("internal error")]
    Internal,
}

impl GatewayError {
    /// A 400 naming `param`.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        GatewayError::Invalid {
            param: param.into(),
            message: message.into(),
        }
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            GatewayError::Forbidden { .. } => StatusCode::FORBIDDEN,
            GatewayError::InsufficientQuota | GatewayError::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            GatewayError::Invalid { .. } => StatusCode::BAD_REQUEST,
            GatewayError::NotFound(_) => StatusCode::NOT_FOUND,
            GatewayError::Conflict(_) => StatusCode::CONFLICT,
            GatewayError::Upstream(_) => StatusCode::BAD_GATEWAY,
            GatewayError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> (&'static str, Option<&'static str>) {
        match self {
            GatewayError::Unauthorized(_) => ("invalid_request_error", Some("invalid_api_key")),
            GatewayError::Forbidden { code, .. } => ("invalid_request_error", Some(code)),
            GatewayError::InsufficientQuota => ("insufficient_quota", Some("insufficient_quota")),
            GatewayError::RateLimited { what, .. } => (*what, Some("rate_limit_exceeded")),
            GatewayError::Invalid { .. } => ("invalid_request_error", None),
            GatewayError::NotFound(_) => ("invalid_request_error", Some("not_found")),
            GatewayError::Conflict(_) => ("invalid_request_error", Some("conflict")),
            GatewayError::Upstream(_) => ("api_error", Some("upstream_error")),
            GatewayError::Internal => ("server_error", None),
        }
    }

    /// The OpenAI envelope `{"error": {message, type, param, code}}`.
    pub fn body(&self) -> serde_json::Value {
        let (ty, code) = self.kind();
        let param = match self {
            GatewayError::Invalid { param, .. } => Some(param.clone()),
            _ => None,
        };
        serde_json::json!({"error": {
            "message": self.to_string(),
            "type": ty,
            "param": param,
            "code": code,
        }})
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let mut resp = (self.status(), Json(self.body())).into_response();
        if let GatewayError::RateLimited { retry_after_s, .. } = &self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
        }
        resp
    }
}

impl From<StoreError> for GatewayError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => GatewayError::NotFound(format!("{what} not found")),
            StoreError::Conflict(what) => GatewayError::Conflict(format!("{what} already exists")),
            StoreError::Invalid(msg) => GatewayError::invalid("body", msg),
            StoreError::Backend(detail) => {
                tracing::error!(%detail, "storage failed");
                GatewayError::Internal
            }
        }
    }
}
