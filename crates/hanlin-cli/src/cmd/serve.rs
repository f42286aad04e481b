//! `hanlin serve`: OpenAI- and Ollama-compatible HTTP API over local models.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use hanlin_api::KeepAlive;
use hanlin_engine::{LocalOptions, ManagerOptions, ModelManager, ModelSource};
use hanlin_modelstore::Store;
use hanlin_server::{AppState, Limits, ServerConfig};

use super::resolve::resolve_model;

/// Flags of `hanlin serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model to serve: a store name or a GGUF path; repeat for several (default: gemma3:270m).
    #[arg(long = "model", short = 'm')]
    pub models: Vec<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Context size of each sequence.
    #[arg(long, default_value_t = 4096)]
    pub ctx: usize,
    /// Sequences decoded together per model.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Matrix-product threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// KV cache positions per model, shared by all sequences through the paged cache and
    /// kept as a prefix cache between requests (default: --parallel × --ctx). Memory is
    /// taken as positions are first used.
    #[arg(long)]
    pub kv_tokens: Option<usize>,
    /// Seconds a model's engine idles before its prefix cache is dropped and the KV cache's
    /// memory given back to the OS (0: keep it until the model unloads).
    #[arg(long, default_value_t = 60)]
    pub kv_idle_trim: u64,
    /// Requests that may wait for a slot before new ones get 429.
    #[arg(long, default_value_t = 64)]
    pub queue_depth: usize,
    /// Require `Authorization: Bearer KEY` on /v1 and /api (default: $HANLIN_API_KEY, if set).
    #[arg(long)]
    pub api_key: Option<String>,
    /// How long a model loaded on demand stays after its last request: seconds or a duration
    /// (`300`, `5m`, `1h`); `0` unloads at once, `-1` never. Models given with --model stay.
    #[arg(long, default_value = "5m", value_parser = parse_keep_alive)]
    pub keep_alive: KeepAlive,
    /// Most models in memory at once; the least recently used idle one is unloaded for a new one.
    #[arg(long, default_value_t = 3)]
    pub max_loaded: usize,
    /// Serve only the --model models, not every model in the store.
    #[arg(long)]
    pub no_store: bool,
    /// Largest accepted request body in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Gateway database (tenants, keys, billing): sqlite://PATH or postgres://…; default
    /// $HANLIN_DB, else $HANLIN_HOME/gateway.db if it exists. Without one, auth is --api-key.
    #[arg(long)]
    pub db: Option<String>,
}

/// The id clients use for a `--model` argument: the store name as given, or a file's stem.
fn model_id(arg: &str) -> String {
    let p = Path::new(arg);
    if p.is_file() {
        if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
            return stem.to_string();
        }
    }
    arg.to_string()
}

fn parse_keep_alive(s: &str) -> Result<KeepAlive, String> {
    KeepAlive::parse(s).ok_or_else(|| {
        format!("{s:?} is not a duration: use seconds (300), 5m, 1h, 0 (unload) or -1 (never)")
    })
}

/// Every model in the store, by name; read again on each call so fresh pulls show up.
fn store_models() -> Vec<(String, std::path::PathBuf)> {
    let Ok(store) = Store::open_default() else {
        return Vec::new();
    };
    store
        .names()
        .into_iter()
        .filter_map(|n| store.resolve(&n).ok().map(|p| (n, p)))
        .collect()
}

/// Runs the server until Ctrl-C or SIGTERM, then drains in-flight requests.
pub fn run(args: Args) -> anyhow::Result<()> {
    let names = if args.models.is_empty() {
        vec!["gemma3:270m".to_string()]
    } else {
        args.models.clone()
    };
    let mut models = Vec::with_capacity(names.len());
    for name in &names {
        let id = model_id(name);
        if models.iter().any(|(existing, _)| existing == &id) {
            anyhow::bail!("model id {id:?} is given twice");
        }
        models.push((id, resolve_model(name)?));
    }
    let ids: Vec<String> = models.iter().map(|(id, _)| id.clone()).collect();
    let opts = LocalOptions {
        n_ctx: args.ctx,
        threads: args.threads,
        parallel: args.parallel,
        queue_depth: args.queue_depth,
        kv_tokens: args.kv_tokens,
        kv_idle_trim: (args.kv_idle_trim > 0)
            .then(|| std::time::Duration::from_secs(args.kv_idle_trim)),
        ..LocalOptions::default()
    };
    let source: Option<ModelSource> = if args.no_store {
        None
    } else {
        Some(Box::new(store_models))
    };
    let manager_opts = ManagerOptions {
        local: opts,
        keep_alive: args.keep_alive,
        max_loaded: args.max_loaded.max(1),
    };
    let backend = ModelManager::start(models, source, manager_opts).context("loading models")?;
    let api_key = args
        .api_key
        .clone()
        .or_else(|| std::env::var("HANLIN_API_KEY").ok())
        .filter(|k| !k.is_empty());
    let config = ServerConfig {
        api_key,
        limits: Limits {
            max_body_bytes: args.max_body_bytes,
        },
    };
    let state = AppState::new(Arc::new(backend), config.clone());

    // HTTP work is light next to the engine threads; two workers keep cores for the matmuls.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hanlin-http")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .with_context(|| format!("binding {}:{}", args.host, args.port))?;
        let addr = listener.local_addr()?;
        let loopback = addr.ip().is_loopback()
            || args
                .host
                .parse::<IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(args.host == "localhost");
        let gateway = super::gateway::for_serve(
            args.db.as_deref(),
            loopback,
            config.api_key.is_some(),
            args.max_body_bytes,
        )
        .await?;
        let state = match gateway {
            Some(gw) => state.with_gateway(gw),
            None => state,
        };
        match (&config.api_key, loopback) {
            (Some(_), _) => tracing::info!("API key required on /v1 and /api"),
            (None, true) => tracing::info!("no API key set: auth is off (loopback only)"),
            (None, false) => tracing::warn!(
                %addr,
                "no API key set on a non-loopback address: anyone who can reach it can use it"
            ),
        }
        tracing::info!(%addr, models = ?ids, "serving");
        eprintln!("hanlin: serving {} on http://{addr}", ids.join(", "));
        hanlin_server::serve(listener, state, hanlin_server::shutdown_signal())
            .await
            .context("serving")
    })
}

#[cfg(test)]
mod tests {
    use super::model_id;

    #[test]
    fn ids_are_names_or_file_stems() {
        assert_eq!(model_id("gemma3:270m"), "gemma3:270m");
        assert_eq!(model_id("does/not/exist.gguf"), "does/not/exist.gguf");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tiny-q8.gguf");
        std::fs::write(&f, b"x").unwrap();
        assert_eq!(model_id(f.to_str().unwrap()), "tiny-q8");
    }
}
