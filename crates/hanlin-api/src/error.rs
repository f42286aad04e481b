//! The one table from failure to HTTP status and error shape, shared by every route family.

use serde::{Deserialize, Serialize};

use crate::backend::BackendError;

/// What went wrong, in the categories clients see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A field is missing, has the wrong type or is out of range (400).
    InvalidRequest,
    /// The prompt plus requested tokens do not fit the context (400).
    ContextLengthExceeded,
    /// Missing or wrong API key (401).
    InvalidApiKey,
    /// No such model (404).
    ModelNotFound,
    /// No such route (404).
    NotFound,
    /// The route exists but not with this method (405).
    MethodNotAllowed,
    /// The request body is over the configured limit (413).
    PayloadTooLarge,
    /// The queue is full (429).
    Overloaded,
    /// Anything else (500); details stay in the log.
    Internal,
}

/// A client-facing error: status, message and the field it is about.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Category (decides status, `type` and `code`).
    pub kind: ErrorKind,
    /// Human-readable message.
    pub message: String,
    /// The offending request field, when there is one.
    pub param: Option<String>,
    /// Seconds a client should wait before retrying (429 only).
    pub retry_after_s: Option<u64>,
    /// The model a 404 is about (Ollama words its message around it).
    pub model: Option<String>,
}

impl ApiError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            param: None,
            retry_after_s: None,
            model: None,
        }
    }

    /// 400 about one field.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            param: Some(param.into()),
            ..Self::new(ErrorKind::InvalidRequest, message)
        }
    }

    /// 400 about the request as a whole (malformed JSON, wrong content type).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// 400 `context_length_exceeded`.
    pub fn context_length_exceeded(message: impl Into<String>) -> Self {
        ApiError {
            param: Some("messages".into()),
            ..Self::new(ErrorKind::ContextLengthExceeded, message)
        }
    }

    /// 401.
    pub fn invalid_api_key(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidApiKey, message)
    }

    /// 404 for a model id.
    pub fn model_not_found(model: &str) -> Self {
        ApiError {
            param: Some("model".into()),
            model: Some(model.to_string()),
            ..Self::new(
                ErrorKind::ModelNotFound,
                format!("The model `{model}` does not exist or you do not have access to it."),
            )
        }
    }

    /// 404 for a path.
    pub fn not_found(path: &str) -> Self {
        Self::new(ErrorKind::NotFound, format!("Unknown request URL: {path}"))
    }

    /// 405.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            ErrorKind::MethodNotAllowed,
            format!("Method {method} is not allowed on {path}"),
        )
    }

    /// 413.
    pub fn payload_too_large(limit_bytes: usize) -> Self {
        Self::new(
            ErrorKind::PayloadTooLarge,
            format!("Request body is larger than the limit of {limit_bytes} bytes"),
        )
    }

    /// 429 with a retry hint.
    pub fn overloaded(retry_after_s: u64) -> Self {
        ApiError {
            retry_after_s: Some(retry_after_s),
            ..Self::new(
                ErrorKind::Overloaded,
                "The server is overloaded with requests; please retry later.",
            )
        }
    }

    /// 500; the cause must already be logged by the caller.
    pub fn internal() -> Self {
        Self::new(
            ErrorKind::Internal,
            "The server had an error while processing your request.",
        )
    }

    /// HTTP status code.
    pub fn status(&self) -> u16 {
        match self.kind {
            ErrorKind::InvalidRequest | ErrorKind::ContextLengthExceeded => 400,
            ErrorKind::InvalidApiKey => 401,
            ErrorKind::ModelNotFound | ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::Overloaded => 429,
            ErrorKind::Internal => 500,
        }
    }

    /// OpenAI's `error.type`.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidRequest
            | ErrorKind::ContextLengthExceeded
            | ErrorKind::ModelNotFound
            | ErrorKind::NotFound
            | ErrorKind::MethodNotAllowed
            | ErrorKind::PayloadTooLarge => "invalid_request_error",
            ErrorKind::InvalidApiKey => "invalid_request_error",
            ErrorKind::Overloaded => "rate_limit_error",
            ErrorKind::Internal => "server_error",
        }
    }

    /// OpenAI's `error.code`.
    pub fn code(&self) -> Option<&'static str> {
        match self.kind {
            ErrorKind::InvalidRequest | ErrorKind::MethodNotAllowed => None,
            ErrorKind::ContextLengthExceeded => Some("context_length_exceeded"),
            ErrorKind::InvalidApiKey => Some("invalid_api_key"),
            ErrorKind::ModelNotFound => Some("model_not_found"),
            ErrorKind::NotFound => Some("unknown_url"),
            ErrorKind::PayloadTooLarge => Some("request_too_large"),
            ErrorKind::Overloaded => Some("rate_limit_exceeded"),
            ErrorKind::Internal => None,
        }
    }

    /// The OpenAI envelope `{"error":{"message","type","param","code"}}`.
    pub fn openai_body(&self) -> OpenAiErrorBody {
        OpenAiErrorBody {
            error: OpenAiErrorDetail {
                message: self.message.clone(),
                r#type: self.type_name().to_string(),
                param: self.param.clone(),
                code: self.code().map(str::to_string),
            },
        }
    }

    /// Ollama's `{"error": "..."}`.
    pub fn ollama_body(&self) -> OllamaErrorBody {
        let error = match self.kind {
            // Ollama clients match on this wording to offer a pull.
            ErrorKind::ModelNotFound => match &self.model {
                Some(name) => format!("model '{name}' not found"),
                None => self.message.clone(),
            },
            _ => match &self.param {
                Some(p) if !self.message.contains(p.as_str()) => {
                    format!("{} (field `{p}`)", self.message)
                }
                _ => self.message.clone(),
            },
        };
        OllamaErrorBody { error }
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::ModelNotFound(m) => ApiError::model_not_found(&m),
            BackendError::Overloaded { retry_after_s } => ApiError::overloaded(retry_after_s),
            e @ BackendError::ContextLengthExceeded { .. } => {
                let msg = format!("{e}. Please reduce the length of the messages or completion.");
                ApiError::context_length_exceeded(msg)
            }
            BackendError::InvalidRequest { param, message } => ApiError {
                param,
                ..ApiError::new(ErrorKind::InvalidRequest, message)
            },
            BackendError::Internal(_) => ApiError::internal(),
        }
    }
}

/// OpenAI error envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenAiErrorBody {
    /// The error.
    pub error: OpenAiErrorDetail,
}

/// OpenAI error fields; `param` and `code` serialize as `null` when absent, as OpenAI's do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenAiErrorDetail {
    /// Message.
    pub message: String,
    /// `invalid_request_error`, `rate_limit_error`, `server_error`.
    pub r#type: String,
    /// Offending field.
    pub param: Option<String>,
    /// Machine-readable code.
    pub code: Option<String>,
}

/// Ollama error body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OllamaErrorBody {
    /// Message.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let cases = [
            (
                ApiError::invalid("n", "x"),
                400,
                "invalid_request_error",
                None,
            ),
            (
                ApiError::context_length_exceeded("x"),
                400,
                "invalid_request_error",
                Some("context_length_exceeded"),
            ),
            (
                ApiError::invalid_api_key("x"),
                401,
                "invalid_request_error",
                Some("invalid_api_key"),
            ),
            (
                ApiError::model_not_found("m"),
                404,
                "invalid_request_error",
                Some("model_not_found"),
            ),
            (
                ApiError::payload_too_large(1),
                413,
                "invalid_request_error",
                Some("request_too_large"),
            ),
            (
                ApiError::overloaded(3),
                429,
                "rate_limit_error",
                Some("rate_limit_exceeded"),
            ),
            (ApiError::internal(), 500, "server_error", None),
        ];
        for (e, status, ty, code) in cases {
            assert_eq!(e.status(), status, "{e:?}");
            assert_eq!(e.type_name(), ty, "{e:?}");
            assert_eq!(e.code(), code, "{e:?}");
        }
    }

    #[test]
    fn envelope_has_null_param_and_code() {
        let v = serde_json::to_value(ApiError::bad_request("bad").openai_body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}})
        );
    }

    #[test]
    fn backend_errors_map_and_hide_internals() {
        let e: ApiError = BackendError::Internal("secret path /x".into()).into();
        assert_eq!(e.status(), 500);
        assert!(!e.message.contains("secret"));
        let e: ApiError = BackendError::ContextLengthExceeded {
            n_ctx: 8,
            needed: 20,
        }
        .into();
        assert_eq!(e.code(), Some("context_length_exceeded"));
        assert!(e.message.contains("8 tokens"), "{}", e.message);
        let e: ApiError = BackendError::Overloaded { retry_after_s: 7 }.into();
        assert_eq!((e.status(), e.retry_after_s), (429, Some(7)));
    }

    #[test]
    fn ollama_not_found_wording() {
        let e = ApiError::model_not_found("llama9");
        assert_eq!(e.ollama_body().error, "model 'llama9' not found");
        let e = ApiError::invalid("options.temperature", "must be a number");
        assert_eq!(
            e.ollama_body().error,
            "must be a number (field `options.temperature`)"
        );
    }
}
