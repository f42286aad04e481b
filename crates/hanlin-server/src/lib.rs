//! HTTP server: OpenAI- (`/v1`) and Ollama-compatible (`/api`) routes over an
//! [`InferenceBackend`], plus `/health` and Prometheus `/metrics`. One module per route family;
//! validation lives in `hanlin-api`, generation behind the backend trait.

mod auth;
pub mod body;
pub mod error;
pub mod generation;
pub mod metrics;
pub mod ollama;
pub mod openai;

use std::future::Future;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hanlin_api::{ApiError, InferenceBackend};

use crate::error::{OllamaError, OpenAiError};
use crate::metrics::Metrics;

/// Request limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest accepted request body; larger ones get a 413.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Server settings besides the backend.
#[derive(Clone, Debug, Default)]
pub struct ServerConfig {
    /// When set, `/v1` and `/api` require `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Request limits.
    pub limits: Limits,
}

struct Inner {
    backend: Arc<dyn InferenceBackend>,
    config: ServerConfig,
    metrics: Arc<Metrics>,
    fingerprint: String,
}

/// What every handler shares; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    /// State for `backend` with `config`.
    pub fn new(backend: Arc<dyn InferenceBackend>, config: ServerConfig) -> Self {
        let fingerprint = fingerprint(backend.as_ref());
        AppState(Arc::new(Inner {
            backend,
            config,
            metrics: Arc::default(),
            fingerprint,
        }))
    }

    /// The backend.
    pub fn backend(&self) -> &dyn InferenceBackend {
        self.0.backend.as_ref()
    }

    /// Request limits.
    pub fn limits(&self) -> &Limits {
        &self.0.config.limits
    }

    /// The configured API key.
    pub fn api_key(&self) -> Option<&str> {
        self.0.config.api_key.as_deref()
    }

    /// Server-wide metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// Shared handle to the metrics, for guards that outlive a borrow.
    pub fn metrics_arc(&self) -> Arc<Metrics> {
        self.0.metrics.clone()
    }

    /// `system_fingerprint`: changes when the server version or the served models change.
    pub fn fingerprint(&self) -> &str {
        &self.0.fingerprint
    }
}

/// FNV-1a over the version and model ids; stable across runs of the same configuration.
fn fingerprint(backend: &dyn InferenceBackend) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |s: &str| {
        for b in s.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(env!("CARGO_PKG_VERSION"));
    for m in backend.models() {
        eat(&m.id);
    }
    format!("fp_{:010x}", h & 0xff_ffff_ffff)
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    use openai::{chat, completions, models};
    let v1 = Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/embeddings", post(models::embeddings))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*id}", get(models::retrieve))
        .route("/v1/tokenize", post(models::tokenize))
        .route("/v1/detokenize", post(models::detokenize))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_openai,
        ));
    let api = Router::new()
        .route("/api/chat", post(ollama::chat))
        .route("/api/generate", post(ollama::generate))
        .route("/api/embed", post(ollama::embed))
        .route("/api/tags", get(ollama::tags))
        .route("/api/show", post(ollama::show))
        .route("/api/ps", get(ollama::ps))
        .route("/api/version", get(ollama::version))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_ollama,
        ));
    Router::new()
        .merge(v1)
        .merge(api)
        .route("/health", get(health))
        .route("/metrics", get(metrics::metrics))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.limits().max_body_bytes))
        .with_state(state)
}

/// `GET /health`: 200 with the served models once the backend answers.
async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    let models: Vec<String> = state.backend().models().into_iter().map(|m| m.id).collect();
    Json(serde_json::json!({"status": "ok", "models": models}))
}

fn is_ollama(req: &Request) -> bool {
    req.uri().path().starts_with("/api/")
}

async fn not_found(req: Request) -> Response {
    let e = ApiError::not_found(req.uri().path());
    if is_ollama(&req) {
        OllamaError(e).into_response()
    } else {
        OpenAiError(e).into_response()
    }
}

async fn method_not_allowed(req: Request) -> Response {
    let e = ApiError::method_not_allowed(req.method().as_str(), req.uri().path());
    if is_ollama(&req) {
        OllamaError(e).into_response()
    } else {
        OpenAiError(e).into_response()
    }
}

/// Serves until `shutdown` resolves, then stops accepting and waits for in-flight requests
/// (streams included) to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Resolves on Ctrl-C or, on Unix, `SIGTERM`.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down: draining in-flight requests");
}
