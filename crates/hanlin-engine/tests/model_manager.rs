//! The model manager on stories260K copies: models load on first request (the stream is handed
//! out before the load finishes), idle ones unload when their keep-alive runs out, the least
//! recently used idle one makes room, and unknown models are refused by name.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hanlin_api::{
    BackendError, GenerationEvent, GenerationRequest, GenerationStream, InferenceBackend,
    KeepAlive, PromptInput, SamplingOptions,
};
use hanlin_engine::{LocalOptions, ManagerOptions, ModelManager, ModelSource};

fn stories() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/models/stories260K/stories260K-f32.gguf");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipping: {} not found", p.display());
        None
    }
}

/// The catalog a test can grow while the manager runs.
type SharedCatalog = Arc<Mutex<Vec<(String, PathBuf)>>>;

/// A manager over copies `a`, `b`, `c` of stories260K, none loaded; the catalog can grow.
fn manager(
    keep_alive: KeepAlive,
    max_loaded: usize,
) -> Option<(ModelManager, tempfile::TempDir, SharedCatalog)> {
    let src = stories()?;
    let dir = tempfile::tempdir().unwrap();
    let mut list = Vec::new();
    for id in ["a", "b", "c"] {
        let p = dir.path().join(format!("{id}.gguf"));
        std::fs::copy(&src, &p).unwrap();
        list.push((id.to_string(), p));
    }
    let catalog = Arc::new(Mutex::new(list));
    let c2 = Arc::clone(&catalog);
    let source: ModelSource = Box::new(move || c2.lock().unwrap().clone());
    let opts = ManagerOptions {
        local: LocalOptions {
            n_ctx: 128,
            threads: Some(1),
            parallel: 2,
            queue_depth: 8,
            ..Default::default()
        },
        keep_alive,
        max_loaded,
    };
    let m = ModelManager::start(Vec::new(), Some(source), opts).unwrap();
    Some((m, dir, catalog))
}

fn request(model: &str) -> GenerationRequest {
    GenerationRequest {
        model: model.into(),
        input: PromptInput::Text("Once upon a time".into()),
        max_tokens: Some(12),
        sampling: SamplingOptions {
            temperature: 0.0,
            ..Default::default()
        },
        stop: vec![],
        logprobs: None,
        constraint: None,
    }
}

async fn text_of(mut s: GenerationStream) -> Result<String, BackendError> {
    let mut text = String::new();
    while let Some(ev) = s.events.recv().await {
        match ev? {
            GenerationEvent::Started { .. } => {}
            GenerationEvent::Delta { text: t, .. } => text.push_str(&t),
            GenerationEvent::Finished { .. } => return Ok(text),
        }
    }
    panic!("stream ended without Finished");
}

fn loaded(m: &ModelManager) -> Vec<String> {
    m.loaded().unwrap().into_iter().map(|l| l.id).collect()
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_on_demand_and_matches_a_loaded_model() {
    let Some((m, _dir, _)) = manager(KeepAlive::Forever, 3) else {
        return;
    };
    let ids: Vec<String> = m.models().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert!(loaded(&m).is_empty(), "nothing is loaded before a request");
    assert_eq!(m.model_details("a").unwrap().family, "llama");

    // Two requests race the load; both get the same greedy text as a request after it.
    let (s1, s2) = (
        m.generate(request("a")).unwrap(),
        m.generate(request("a")).unwrap(),
    );
    let (t1, t2) = tokio::join!(text_of(s1), text_of(s2));
    let t3 = text_of(m.generate(request("a")).unwrap()).await.unwrap();
    assert!(!t3.is_empty());
    assert_eq!(t1.unwrap(), t3);
    assert_eq!(t2.unwrap(), t3);
    assert_eq!(loaded(&m), ["a"]);

    // The copy under another id is another instance with the same weights.
    assert_eq!(
        text_of(m.generate(request("b")).unwrap()).await.unwrap(),
        t3
    );
    assert_eq!(loaded(&m), ["a", "b"]);
    assert!(m.loaded().unwrap().iter().all(|l| l.expires_at.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_models_unload_after_keep_alive() {
    let Some((m, _dir, _)) = manager(KeepAlive::For(Duration::from_millis(400)), 3) else {
        return;
    };
    text_of(m.generate(request("a")).unwrap()).await.unwrap();
    let l = m.loaded().unwrap();
    assert_eq!(l.len(), 1);
    assert!(l[0].expires_at.is_some());
    wait_until("a unloads", || loaded(&m).is_empty()).await;
    // And comes back on the next request.
    text_of(m.generate(request("a")).unwrap()).await.unwrap();
    assert_eq!(loaded(&m), ["a"]);

    // A per-model keep-alive overrides the default.
    m.set_keep_alive("a", KeepAlive::Forever);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(loaded(&m), ["a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_recently_used_idle_model_makes_room() {
    let Some((m, _dir, _)) = manager(KeepAlive::Forever, 2) else {
        return;
    };
    for id in ["a", "b"] {
        text_of(m.generate(request(id)).unwrap()).await.unwrap();
    }
    text_of(m.generate(request("a")).unwrap()).await.unwrap();
    text_of(m.generate(request("c")).unwrap()).await.unwrap();
    assert_eq!(loaded(&m), ["a", "c"], "b was the least recently used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_load_unload_and_unknown_models() {
    let Some((m, dir, catalog)) = manager(KeepAlive::Forever, 3) else {
        return;
    };
    m.load("c", None).unwrap().await.unwrap().unwrap();
    assert_eq!(loaded(&m), ["c"]);
    m.unload("c").unwrap();
    assert!(loaded(&m).is_empty());

    assert!(
        matches!(m.generate(request("nope")), Err(BackendError::ModelNotFound(id)) if id == "nope")
    );
    assert!(matches!(
        m.load("nope", None),
        Err(BackendError::ModelNotFound(_))
    ));
    assert!(matches!(
        m.unload("nope"),
        Err(BackendError::ModelNotFound(_))
    ));

    // A model added to the catalog later is served without a restart.
    let d = dir.path().join("d.gguf");
    std::fs::copy(stories().unwrap(), &d).unwrap();
    catalog.lock().unwrap().push(("d".into(), d));
    assert!(!text_of(m.generate(request("d")).unwrap())
        .await
        .unwrap()
        .is_empty());
    assert!(m.models().iter().any(|c| c.id == "d"));

    // A corrupt file is a clear error in the stream, and the manager keeps serving.
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"GGUF not really").unwrap();
    catalog.lock().unwrap().push(("bad".into(), bad));
    let err = text_of(m.generate(request("bad")).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackendError::Internal(ref e) if e.contains("bad")),
        "{err:?}"
    );
    assert!(!text_of(m.generate(request("a")).unwrap())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_during_the_load_is_harmless_and_sync_calls_load_too() {
    let Some((m, _dir, _)) = manager(KeepAlive::Forever, 3) else {
        return;
    };
    drop(m.generate(request("a")).unwrap());
    wait_until("a loads anyway", || loaded(&m) == ["a"]).await;
    let s = m.stats().unwrap();
    assert_eq!((s.running, s.queued), (0, 0));
    // tokenize on a model that is not loaded loads it on the spot.
    let ids = tokio::task::block_in_place(|| m.tokenize("b", "Once upon a time")).unwrap();
    assert!(ids.len() > 2);
    assert_eq!(loaded(&m), ["a", "b"]);
}
