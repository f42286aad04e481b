//! Models loaded on first request and unloaded when idle, as Ollama does. Each loaded model is
//! its own [`LocalBackend`] (engine thread, KV cache, mmap); the manager only decides when one
//! exists. Requests for a model that is still loading get their stream at once and see `Started`
//! after the load, so no caller ever blocks on disk.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use hanlin_api::{
    generation_channel, BackendError, BackendStats, EmbeddingJob, GenerationRequest,
    GenerationStream, InferenceBackend, KeepAlive, LoadJob, LoadedModel, ModelCard, ModelDetails,
    PromptInput,
};

use crate::local::{now_s, LocalBackend, LocalOptions};

/// Lists the models a manager may load, as `(id, path)`; called whenever the list is needed, so
/// models pulled while the server runs become available without a restart.
pub type ModelSource = Box<dyn Fn() -> Vec<(String, PathBuf)> + Send + Sync>;

/// How a [`ModelManager`] runs.
#[derive(Clone, Debug)]
pub struct ManagerOptions {
    /// Options of every loaded model.
    pub local: LocalOptions,
    /// How long a model loaded on demand stays after its last request.
    pub keep_alive: KeepAlive,
    /// Most models in memory at once; the least recently used idle one makes room.
    pub max_loaded: usize,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            local: LocalOptions::default(),
            keep_alive: KeepAlive::For(Duration::from_secs(300)),
            max_loaded: 3,
        }
    }
}

/// Serves every model of a catalog, loading and unloading them as requests come and go.
pub struct ModelManager {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ModelManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let loaded: Vec<String> = self.shared.lock().loaded.keys().cloned().collect();
        f.debug_struct("ModelManager")
            .field("loaded", &loaded)
            .finish()
    }
}

struct Shared {
    opts: ManagerOptions,
    /// Models named at start: loaded at once, kept until told otherwise.
    pinned: Vec<(String, PathBuf)>,
    source: Option<ModelSource>,
    catalog_cache: Mutex<Option<(Instant, Catalog)>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    loaded: HashMap<String, Loaded>,
    loading: HashMap<String, Vec<Waiter>>,
    /// Keep-alive asked for by requests, applied when the model (re)loads.
    keep: HashMap<String, KeepAlive>,
    /// Metadata of models not loaded now (`None`: the file cannot be read).
    cards: HashMap<PathBuf, Option<(ModelCard, ModelDetails)>>,
}

struct Loaded {
    backend: Arc<LocalBackend>,
    last_used: Instant,
    keep_alive: KeepAlive,
    size: u64,
}

type Ready = Result<Arc<LocalBackend>, BackendError>;

/// Models a manager may serve, as `(id, path)`.
type Catalog = Vec<(String, PathBuf)>;

/// Someone waiting for a load to finish.
enum Waiter {
    Async(tokio::sync::oneshot::Sender<Ready>),
    Unit(tokio::sync::oneshot::Sender<Result<(), BackendError>>),
    Sync(mpsc::Sender<Ready>),
}

impl Waiter {
    fn send(self, r: &Ready) {
        match self {
            Waiter::Async(tx) => {
                let _ = tx.send(r.clone());
            }
            Waiter::Unit(tx) => {
                let _ = tx.send(r.as_ref().map(|_| ()).map_err(Clone::clone));
            }
            Waiter::Sync(tx) => {
                let _ = tx.send(r.clone());
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take model serving down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pinned models first, then the source's, without duplicate ids. The source is asked at
    /// most once a second: Ollama clients look models up on every request.
    fn catalog(&self) -> Vec<(String, PathBuf)> {
        self.catalog_within(Duration::from_secs(1))
    }

    /// The catalog, asking the source again if the cached list is older than `max_age`.
    fn catalog_within(&self, max_age: Duration) -> Vec<(String, PathBuf)> {
        let Some(source) = &self.source else {
            return self.pinned.clone();
        };
        let mut cache = self.catalog_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, list)) = cache.as_ref() {
            if at.elapsed() < max_age {
                return list.clone();
            }
        }
        let mut all = self.pinned.clone();
        for (id, path) in source() {
            if !all.iter().any(|(i, _)| *i == id) {
                all.push((id, path));
            }
        }
        *cache = Some((Instant::now(), all.clone()));
        all
    }

    fn path_of(&self, id: &str) -> Option<PathBuf> {
        if let Some((_, p)) = self.pinned.iter().find(|(i, _)| i == id) {
            return Some(p.clone());
        }
        let find =
            |list: Vec<(String, PathBuf)>| list.into_iter().find(|(i, _)| i == id).map(|(_, p)| p);
        // A name we have not seen may have been pulled a moment ago.
        find(self.catalog()).or_else(|| find(self.catalog_within(Duration::ZERO)))
    }

    fn is_pinned(&self, id: &str) -> bool {
        self.pinned.iter().any(|(i, _)| i == id)
    }

    /// The loaded backend of `id`, marked as used now.
    fn ready(&self, id: &str) -> Option<Arc<LocalBackend>> {
        let mut st = self.lock();
        st.loaded.get_mut(id).map(|l| {
            l.last_used = Instant::now();
            Arc::clone(&l.backend)
        })
    }

    /// Queues `waiter` for `id`, starting a load unless one is running.
    fn request_load(self: &Arc<Self>, id: &str, waiter: Waiter) -> Result<(), BackendError> {
        let path = self
            .path_of(id)
            .ok_or_else(|| BackendError::ModelNotFound(id.to_string()))?;
        let mut st = self.lock();
        if let Some(l) = st.loaded.get_mut(id) {
            l.last_used = Instant::now();
            let b = Arc::clone(&l.backend);
            drop(st);
            waiter.send(&Ok(b));
            return Ok(());
        }
        if let Some(waiters) = st.loading.get_mut(id) {
            waiters.push(waiter);
            return Ok(());
        }
        st.loading.insert(id.to_string(), vec![waiter]);
        drop(st);
        let shared = Arc::clone(self);
        let id2 = id.to_string();
        let spawned = std::thread::Builder::new()
            .name(format!("hanlin-load-{id}"))
            .spawn(move || shared.load_now(&id2, path));
        if let Err(e) = spawned {
            let r = Err(BackendError::Internal(format!(
                "cannot start a loader thread: {e}"
            )));
            for w in self.lock().loading.remove(id).unwrap_or_default() {
                w.send(&r);
            }
        }
        Ok(())
    }

    /// Loads `id` from `path` on this thread and wakes everyone waiting for it.
    fn load_now(&self, id: &str, path: PathBuf) {
        let t = Instant::now();
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let result: Ready = match LocalBackend::start(
            vec![(id.to_string(), path)],
            self.opts.local.clone(),
        ) {
            Ok(b) => {
                tracing::info!(model = %id, ms = t.elapsed().as_millis() as u64, "model loaded on demand");
                Ok(Arc::new(b))
            }
            Err(e) => {
                tracing::error!(model = %id, error = %e, "model failed to load");
                Err(BackendError::Internal(format!("loading {id}: {e}")))
            }
        };
        let mut evicted = Vec::new();
        let waiters = {
            let mut st = self.lock();
            if let Ok(b) = &result {
                while st.loaded.len() >= self.opts.max_loaded.max(1) {
                    match lru_idle(&st.loaded) {
                        Some(victim) => {
                            tracing::info!(model = %victim, "unloading to make room");
                            evicted.extend(st.loaded.remove(&victim));
                        }
                        None => {
                            tracing::warn!(
                                loaded = st.loaded.len(),
                                "every loaded model is busy: loading one more than --max-loaded"
                            );
                            break;
                        }
                    }
                }
                let keep_alive = st.keep.get(id).copied().unwrap_or(if self.is_pinned(id) {
                    KeepAlive::Forever
                } else {
                    self.opts.keep_alive
                });
                st.loaded.insert(
                    id.to_string(),
                    Loaded {
                        backend: Arc::clone(b),
                        last_used: Instant::now(),
                        keep_alive,
                        size,
                    },
                );
            }
            st.loading.remove(id).unwrap_or_default()
        };
        drop(evicted);
        for w in waiters {
            w.send(&result);
        }
    }

    /// Unloads idle models whose keep-alive ran out.
    fn reap(&self) {
        let mut gone = Vec::new();
        {
            let mut st = self.lock();
            let now = Instant::now();
            let mut expired = Vec::new();
            for (id, l) in st.loaded.iter_mut() {
                if busy(&l.backend) {
                    l.last_used = now;
                } else if let KeepAlive::For(d) = l.keep_alive {
                    if now.duration_since(l.last_used) >= d {
                        expired.push(id.clone());
                    }
                }
            }
            for id in expired {
                tracing::info!(model = %id, "keep-alive expired: unloading");
                gone.extend(st.loaded.remove(&id));
            }
        }
        // Dropping the last handle closes the engine's queue; its thread then exits.
        drop(gone);
    }

    /// Card and details of a model that may not be loaded.
    fn describe(&self, id: &str, path: &PathBuf) -> Option<(ModelCard, ModelDetails)> {
        if let Some(b) = self.lock().loaded.get(id).map(|l| Arc::clone(&l.backend)) {
            let card = b.models().into_iter().next()?;
            let details = b.model_details(id).unwrap_or_default();
            return Some((card, details));
        }
        if let Some(c) = self.lock().cards.get(path) {
            return c.clone().map(|(mut card, d)| {
                card.id = id.to_string();
                (card, d)
            });
        }
        let described = describe_file(id, path, self.opts.local.n_ctx);
        if described.is_none() {
            tracing::warn!(model = %id, path = %path.display(), "cannot read the model's metadata");
        }
        self.lock().cards.insert(path.clone(), described.clone());
        described
    }
}

fn busy(b: &LocalBackend) -> bool {
    b.stats().is_some_and(|s| s.running + s.queued > 0)
}

fn lru_idle(loaded: &HashMap<String, Loaded>) -> Option<String> {
    loaded
        .iter()
        .filter(|(_, l)| !busy(&l.backend))
        .min_by_key(|(_, l)| l.last_used)
        .map(|(id, _)| id.clone())
}

/// What `/v1/models` says about a model file that is not loaded.
fn describe_file(id: &str, path: &PathBuf, n_ctx: usize) -> Option<(ModelCard, ModelDetails)> {
    let file = hanlin_gguf::GgufFile::open(path).ok()?;
    let arch = file
        .get_str("general.architecture")
        .ok()
        .flatten()?
        .to_string();
    let max = file
        .get_u64(&format!("{arch}.context_length"))
        .ok()
        .flatten()
        .map_or(n_ctx, |v| v as usize);
    let card = ModelCard {
        id: id.to_string(),
        created: now_s(),
        owned_by: "hanlin".into(),
        context_length: if arch == "bert" {
            max
        } else {
            n_ctx.clamp(16, max.max(16))
        },
    };
    Some((card, crate::details::model_details(&file, path)))
}

impl ModelManager {
    /// Loads the `pinned` models now (any failure is returned) and serves them plus whatever
    /// `source` lists, loading those on first use.
    pub fn start(
        pinned: Vec<(String, PathBuf)>,
        source: Option<ModelSource>,
        opts: ManagerOptions,
    ) -> crate::Result<Self> {
        let shared = Arc::new(Shared {
            opts,
            pinned: pinned.clone(),
            source,
            catalog_cache: Mutex::new(None),
            state: Mutex::new(State::default()),
        });
        for (id, path) in pinned {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let backend = LocalBackend::start(vec![(id.clone(), path)], shared.opts.local.clone())?;
            shared.lock().loaded.insert(
                id,
                Loaded {
                    backend: Arc::new(backend),
                    last_used: Instant::now(),
                    keep_alive: KeepAlive::Forever,
                    size,
                },
            );
        }
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("hanlin-reaper".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(250));
                match weak.upgrade() {
                    Some(s) => s.reap(),
                    None => return,
                }
            })
            .map_err(|e| crate::EngineError::Thread(e.to_string()))?;
        Ok(ModelManager { shared })
    }

    /// The backend of `id`, loading it on this thread if needed (for the quick synchronous
    /// calls: tokenize, detokenize).
    fn backend_blocking(&self, id: &str) -> Result<Arc<LocalBackend>, BackendError> {
        if let Some(b) = self.shared.ready(id) {
            return Ok(b);
        }
        let (tx, rx) = mpsc::channel();
        self.shared.request_load(id, Waiter::Sync(tx))?;
        rx.recv()
            .map_err(|_| BackendError::Internal("model loader went away".into()))?
    }
}

impl InferenceBackend for ModelManager {
    fn models(&self) -> Vec<ModelCard> {
        self.shared
            .catalog()
            .iter()
            .filter_map(|(id, path)| self.shared.describe(id, path).map(|(c, _)| c))
            .collect()
    }

    fn model_details(&self, model: &str) -> Option<ModelDetails> {
        let path = self.shared.path_of(model)?;
        self.shared.describe(model, &path).map(|(_, d)| d)
    }

    fn runtime_identity(&self) -> String {
        crate::local::runtime_identity(&self.shared.opts.local)
    }

    fn stats(&self) -> Option<BackendStats> {
        let backends: Vec<Arc<LocalBackend>> = self
            .shared
            .lock()
            .loaded
            .values()
            .map(|l| Arc::clone(&l.backend))
            .collect();
        let mut total = BackendStats::default();
        for s in backends.iter().filter_map(|b| b.stats()) {
            total.queued += s.queued;
            total.running += s.running;
            total.kv_cells_used += s.kv_cells_used;
            total.kv_cells_total += s.kv_cells_total;
        }
        Some(total)
    }

    fn generate(&self, req: GenerationRequest) -> Result<GenerationStream, BackendError> {
        if let Some(b) = self.shared.ready(&req.model) {
            return b.generate(req);
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return self.backend_blocking(&req.model)?.generate(req);
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.shared.request_load(&req.model, Waiter::Async(tx))?;
        let (sink, stream) = generation_channel(64);
        rt.spawn(async move {
            let backend = tokio::select! {
                r = rx => r,
                () = sink.events.closed() => return,
            };
            let inner = match backend {
                Ok(Ok(b)) => b.generate(req),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(BackendError::Internal("model loader went away".into())),
            };
            let mut inner = match inner {
                Ok(s) => s,
                Err(e) => {
                    let _ = sink.events.send(Err(e)).await;
                    return;
                }
            };
            loop {
                tokio::select! {
                    ev = inner.events.recv() => match ev {
                        Some(ev) => {
                            if sink.events.send(ev).await.is_err() {
                                return;
                            }
                        }
                        None => return,
                    },
                    // The client left: dropping `inner` cancels the sequence.
                    () = sink.events.closed() => return,
                }
            }
        });
        Ok(stream)
    }

    fn tokenize(&self, model: &str, text: &str) -> Result<Vec<u32>, BackendError> {
        self.backend_blocking(model)?.tokenize(model, text)
    }

    fn detokenize(&self, model: &str, tokens: &[u32]) -> Result<String, BackendError> {
        self.backend_blocking(model)?.detokenize(model, tokens)
    }

    fn embed(&self, model: &str, inputs: Vec<PromptInput>) -> Result<EmbeddingJob, BackendError> {
        if let Some(b) = self.shared.ready(model) {
            return b.embed(model, inputs);
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return self.backend_blocking(model)?.embed(model, inputs);
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.shared.request_load(model, Waiter::Async(tx))?;
        let (out_tx, out_rx) = tokio::sync::oneshot::channel();
        let model = model.to_string();
        rt.spawn(async move {
            let result = match rx.await {
                Ok(Ok(b)) => match b.embed(&model, inputs) {
                    Ok(job) => job.await.unwrap_or_else(|_| {
                        Err(BackendError::Internal("embedding job dropped".into()))
                    }),
                    Err(e) => Err(e),
                },
                Ok(Err(e)) => Err(e),
                Err(_) => Err(BackendError::Internal("model loader went away".into())),
            };
            let _ = out_tx.send(result);
        });
        Ok(out_rx)
    }

    fn loaded(&self) -> Option<Vec<LoadedModel>> {
        let st = self.shared.lock();
        let now_unix = now_s();
        let mut out: Vec<LoadedModel> = st
            .loaded
            .iter()
            .map(|(id, l)| LoadedModel {
                id: id.clone(),
                expires_at: match l.keep_alive {
                    KeepAlive::Forever => None,
                    KeepAlive::For(d) => {
                        let left = d.saturating_sub(l.last_used.elapsed());
                        Some(now_unix + left.as_secs())
                    }
                },
                size_bytes: l.size,
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Some(out)
    }

    fn load(&self, model: &str, keep_alive: Option<KeepAlive>) -> Result<LoadJob, BackendError> {
        if let Some(ka) = keep_alive {
            self.set_keep_alive(model, ka);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.shared.request_load(model, Waiter::Unit(tx))?;
        Ok(rx)
    }

    fn unload(&self, model: &str) -> Result<(), BackendError> {
        if self.shared.path_of(model).is_none() {
            return Err(BackendError::ModelNotFound(model.to_string()));
        }
        let gone = self.shared.lock().loaded.remove(model);
        if gone.is_some() {
            tracing::info!(model = %model, "unloaded on request");
        }
        Ok(())
    }

    fn set_keep_alive(&self, model: &str, keep_alive: KeepAlive) {
        let mut st = self.shared.lock();
        st.keep.insert(model.to_string(), keep_alive);
        if let Some(l) = st.loaded.get_mut(model) {
            l.keep_alive = keep_alive;
            l.last_used = Instant::now();
        }
    }
}
