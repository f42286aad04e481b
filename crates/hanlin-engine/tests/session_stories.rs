//! The generation loop on the real stories260K model: greedy ids match the recorded reference,
//! stop strings cut the text, a follow-up prompt reuses the cached prefix, seeds reproduce.

#![allow(clippy::unwrap_used)]

use std::ops::ControlFlow;
use std::path::PathBuf;

use hanlin_engine::{FinishReason, GenerateParams, SamplingParams, Session};
use hanlin_models::Model;
use hanlin_tokenizer::Tokenizer;

fn load() -> Option<(Model, Tokenizer, serde_json::Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata");
    if !dir.is_dir() {
        eprintln!("skipping: ../shared/testdata not found");
        return None;
    }
    let model = Model::load(dir.join("models/stories260K/stories260K-f32.gguf")).unwrap();
    let tok = Tokenizer::from_gguf(model.gguf()).unwrap();
    let reference = serde_json::from_slice(
        &std::fs::read(dir.join("reference/stories260K_greedy.json")).unwrap(),
    )
    .unwrap();
    Some((model, tok, reference))
}

fn greedy(n: usize) -> GenerateParams {
    GenerateParams {
        max_tokens: n,
        sampling: SamplingParams::greedy(),
        ..Default::default()
    }
}

#[test]
fn greedy_generation_matches_reference_and_streams_the_same_text() {
    let Some((model, tok, reference)) = load() else {
        return;
    };
    let run = &reference["runs"][3]; // "Lily and Tom", 64 steps
    let prompt: Vec<u32> = run["prompt_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    let ids: Vec<u32> = run["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(
        tok.encode(run["prompt"].as_str().unwrap(), true, false)
            .unwrap(),
        prompt
    );
    let mut session = Session::new(&model, &tok, 256);
    let mut streamed = String::new();
    let out = session
        .generate(&prompt, &greedy(ids.len() - prompt.len()), |t| {
            streamed.push_str(t);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(out.tokens, ids[prompt.len()..]);
    assert_eq!(out.finish, FinishReason::Length);
    assert_eq!(streamed, out.text);
    let expected_text = run["text"].as_str().unwrap();
    assert!(
        expected_text.ends_with(out.text.as_str()),
        "{:?} vs {expected_text:?}",
        out.text
    );
}

#[test]
fn stop_string_cuts_text_and_prefix_is_reused() {
    let Some((model, tok, _)) = load() else {
        return;
    };
    let prompt = tok.encode("Lily and Tom", true, false).unwrap();
    let mut session = Session::new(&model, &tok, 256);
    let params = GenerateParams {
        stop: vec!["park".into()],
        ..greedy(64)
    };
    let out = session
        .generate(&prompt, &params, |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(out.finish, FinishReason::Stop);
    assert_eq!(out.text, " were playing in the ");
    // A follow-up prompt that extends the conversation (prompt + what was generated) only
    // runs the tokens not already in the cache.
    let longer = tok
        .encode("Lily and Tom were playing", true, false)
        .unwrap();
    let out = session
        .generate(&longer, &greedy(4), |_| ControlFlow::Continue(()))
        .unwrap();
    assert!(
        out.timings.cached_tokens > prompt.len(),
        "{:?}",
        out.timings
    );
    assert_eq!(
        out.timings.prompt_tokens + out.timings.cached_tokens,
        longer.len()
    );
}

#[test]
fn same_seed_same_tokens_and_cancel_stops() {
    let Some((model, tok, _)) = load() else {
        return;
    };
    let prompt = tok.encode("Once upon a time", true, false).unwrap();
    let params = GenerateParams {
        max_tokens: 40,
        sampling: SamplingParams {
            temperature: 1.0,
            seed: 1234,
            ..Default::default()
        },
        ..Default::default()
    };
    let run = |p: &GenerateParams| {
        let mut s = Session::new(&model, &tok, 128);
        s.generate(&prompt, p, |_| ControlFlow::Continue(()))
            .unwrap()
            .tokens
    };
    assert_eq!(run(&params), run(&params));
    let other = GenerateParams {
        sampling: SamplingParams {
            seed: 99,
            ..params.sampling.clone()
        },
        ..params.clone()
    };
    assert_ne!(run(&params), run(&other));
    let mut s = Session::new(&model, &tok, 128);
    let mut n = 0;
    let out = s
        .generate(&prompt, &params, |_| {
            n += 1;
            if n == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(out.finish, FinishReason::Cancelled);
    assert!(out.tokens.len() <= 4);
}

#[test]
fn prompt_longer_than_context_is_an_error() {
    let Some((model, tok, _)) = load() else {
        return;
    };
    let prompt = vec![1u32; 40];
    let mut s = Session::new(&model, &tok, 32);
    let err = s
        .generate(&prompt, &greedy(4), |_| ControlFlow::Continue(()))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("40 tokens") && err.to_string().contains("32"),
        "{err}"
    );
}
