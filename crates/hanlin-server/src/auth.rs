//! Bearer API key check for `/v1` and `/api`, when a key is configured.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hanlin_api::ApiError;

use crate::error::{OllamaError, OpenAiError};
use crate::AppState;

/// Compares in time independent of where the first difference is, so response timing does not
/// leak how much of a guessed key was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check(state: &AppState, req: &Request) -> Result<(), ApiError> {
    let Some(key) = state.api_key() else {
        return Ok(());
    };
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::invalid_api_key(
            "You didn't provide an API key. Provide it in the Authorization header as `Bearer KEY`.",
        ));
    };
    let given = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match given {
        Some(g) if same(g.as_bytes(), key.as_bytes()) => Ok(()),
        _ => Err(ApiError::invalid_api_key("Incorrect API key provided.")),
    }
}

/// Middleware for `/v1`: OpenAI-shaped 401.
pub async fn require_openai(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match check(&state, &req) {
        Ok(()) => next.run(req).await,
        Err(e) => OpenAiError(e).into_response(),
    }
}

/// Middleware for `/api`: Ollama-shaped 401.
pub async fn require_ollama(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match check(&state, &req) {
        Ok(()) => next.run(req).await,
        Err(e) => OllamaError(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn constant_time_compare() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(same(b"", b""));
    }
}
