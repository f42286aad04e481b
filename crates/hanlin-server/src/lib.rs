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
use hanlin_gateway::Gateway;

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
    gateway: Option<Gateway>,
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
            gateway: None,
        }))
    }

    /// The same state with the multi-tenant gateway in front of `/v1` and `/api` (it replaces
    /// the single `--api-key`) and its admin API mounted at `/admin/v1`.
    pub fn with_gateway(self, gateway: Gateway) -> Self {
        let i = &self.0;
        AppState(Arc::new(Inner {
            backend: i.backend.clone(),
            config: i.config.clone(),
            metrics: i.metrics.clone(),
            fingerprint: i.fingerprint.clone(),
            gateway: Some(gateway),
        }))
    }

    /// The gateway, when one is configured.
    pub fn gateway(&self) -> Option<&Gateway> {
        self.0.gateway.as_ref()
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

    /// `system_fingerprint`: changes when the build, a served model or the kernel ISA changes.
    pub fn fingerprint(&self) -> &str {
        &self.0.fingerprint
    }
}

/// FNV-1a over everything that could change outputs: this build (the executable's bytes), each
/// served model's id and content digest (size and quantization where no digest is known), and
/// the backend's runtime identity (kernel ISA). Stable across restarts of the same build on the
/// same machine with the same models; different as soon as any of those differ.
fn fingerprint(backend: &dyn InferenceBackend) -> String {
    let mut h = Fnv::default();
    h.eat(env!("CARGO_PKG_VERSION").as_bytes());
    h.eat(&build_id().to_le_bytes());
    for m in backend.models() {
        h.eat(m.id.as_bytes());
        if let Some(d) = backend.model_details(&m.id) {
            h.eat(d.digest.as_bytes());
            h.eat(d.quantization_level.as_bytes());
            h.eat(&d.size_bytes.to_le_bytes());
        }
    }
    h.eat(backend.runtime_identity().as_bytes());
    format!("fp_{:010x}", h.0 & 0xff_ffff_ffff)
}

/// 64-bit FNV-1a; each `eat` ends with a separator byte so that fields cannot run together.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn eat(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().chain([&0xff]) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A hash of the running executable, so that any rebuild (compiler, flags, code) changes the
/// fingerprint; read once per process, streamed in 1 MiB pieces (the binary is tens of
/// megabytes, which must not show up in the server's peak memory).
fn build_id() -> u64 {
    use std::io::Read;
    static ID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ID.get_or_init(|| {
        let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
        let Ok(mut file) = std::env::current_exe().and_then(std::fs::File::open) else {
            return h;
        };
        let mut buf = vec![0u8; 1 << 20];
        let mut eat = |chunk: &[u8]| {
            for word in chunk.chunks(8) {
                let mut w = [0u8; 8];
                w[..word.len()].copy_from_slice(word);
                h = (h ^ u64::from_le_bytes(w))
                    .wrapping_mul(0x0100_0000_01b3)
                    .rotate_left(29);
            }
        };
        // Whole 1 MiB pieces keep the 8-byte word boundaries where they would be in one pass.
        let mut filled = 0;
        loop {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        eat(&buf);
                        filled = 0;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        eat(&buf[..filled]);
        h
    })
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
        .route("/v1/detokenize", post(models::detokenize));
    let api = Router::new()
        .route("/api/chat", post(ollama::chat))
        .route("/api/generate", post(ollama::generate))
        .route("/api/embed", post(ollama::embed))
        .route("/api/tags", get(ollama::tags))
        .route("/api/show", post(ollama::show))
        .route("/api/ps", get(ollama::ps))
        .route("/api/version", get(ollama::version));
    // With a gateway, it authenticates, limits and meters; without, the optional single key.
    let (v1, api, admin) = match state.gateway() {
        Some(gw) => {
            let layer =
                || middleware::from_fn_with_state(gw.clone(), hanlin_gateway::layer::require);
            (
                v1.route_layer(layer()),
                api.route_layer(layer()),
                hanlin_gateway::admin::router(gw.clone()),
            )
        }
        None => (
            v1.route_layer(middleware::from_fn_with_state(
                state.clone(),
                auth::require_openai,
            )),
            api.route_layer(middleware::from_fn_with_state(
                state.clone(),
                auth::require_ollama,
            )),
            Router::new(),
        ),
    };
    Router::new()
        .merge(v1)
        .merge(api)
        .merge(admin)
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
