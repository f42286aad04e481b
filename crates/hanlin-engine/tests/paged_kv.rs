//! The paged KV cache on stories260K: requests running side by side share a prompt's blocks
//! and produce what a cold run produces, a pool smaller than the demand makes requests wait
//! instead of failing, and every block goes back when requests finish or are cancelled.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hanlin_api::{
    BackendError, GenerationEvent, GenerationRequest, GenerationStream, InferenceBackend,
    PromptInput, SamplingOptions,
};
use hanlin_engine::{LocalBackend, LocalOptions};

const STORY: &str = "Once upon a time, there was a little girl named Lily. She loved to play \
    outside in the park with her friends. One day, she saw a big red ball under a tree and \
    she wanted to play with it. Her mom said";

fn backend(opts: LocalOptions) -> Option<LocalBackend> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/models/stories260K/stories260K-f32.gguf");
    if !path.is_file() {
        assert!(
            std::env::var("HANLIN_REQUIRE_MODELS").as_deref() != Ok("1"),
            "stories260K missing"
        );
        eprintln!("skipping: stories260K not found");
        return None;
    }
    Some(LocalBackend::start(vec![("stories".into(), path)], opts).unwrap())
}

fn opts(parallel: usize, n_ctx: usize, kv_tokens: Option<usize>) -> LocalOptions {
    LocalOptions {
        n_ctx,
        threads: Some(1),
        parallel,
        queue_depth: 16,
        kv_tokens,
        kv_block: 16,
        ..Default::default()
    }
}

fn request(prompt: &str, max_tokens: usize) -> GenerationRequest {
    GenerationRequest {
        model: "stories".into(),
        input: PromptInput::Text(prompt.into()),
        max_tokens: Some(max_tokens),
        sampling: SamplingOptions {
            temperature: 0.0,
            seed: Some(1),
            // No end-of-text: every request runs to `max_tokens`.
            logit_bias: vec![(2, -1000.0)],
            ..Default::default()
        },
        stop: vec![],
        logprobs: None,
        constraint: None,
    }
}

/// Waits for the `Started` event; returns (prompt_tokens, cached_tokens).
fn started(s: &mut GenerationStream) -> (usize, usize) {
    match s.events.blocking_recv().unwrap().unwrap() {
        GenerationEvent::Started {
            prompt_tokens,
            cached_tokens,
        } => (prompt_tokens, cached_tokens),
        other => panic!("expected Started, got {other:?}"),
    }
}

/// The rest of the stream: (text, cached_tokens in usage).
fn rest(s: &mut GenerationStream) -> (String, usize) {
    let mut text = String::new();
    while let Some(ev) = s.events.blocking_recv() {
        match ev.unwrap() {
            GenerationEvent::Started { .. } => {}
            GenerationEvent::Delta { text: t, .. } => text.push_str(&t),
            GenerationEvent::Finished { usage, .. } => return (text, usage.cached_tokens),
        }
    }
    panic!("stream ended without Finished");
}

/// Runs one request alone: (text, cached_tokens).
fn run(b: &LocalBackend, prompt: &str, max_tokens: usize) -> (String, usize) {
    let mut s = b.generate(request(prompt, max_tokens)).unwrap();
    let (_, cached) = started(&mut s);
    let (text, cached2) = rest(&mut s);
    assert_eq!(cached, cached2);
    (text, cached)
}

/// Polls until no running sequence holds a block (the engine releases them right after the
/// last event, on its own thread).
fn wait_for_empty_pool(b: &LocalBackend) {
    let t = Instant::now();
    loop {
        let s = b.stats().unwrap();
        if s.kv_cells_used == 0 && s.running == 0 {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "blocks still held: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn concurrent_requests_share_prompt_blocks_with_cold_run_output() {
    let first_prompt = format!("{STORY} no.");
    // Long enough after the fork that its last blocks are its own.
    let second_prompt = format!(
        "{STORY} yes, and then they went home to eat cake and drink milk. The sun was \
         shining and the birds were singing in the big green trees near the house."
    );
    let Some(cold) = backend(opts(2, 512, None)) else {
        return;
    };
    let (cold_first, c0) = run(&cold, &first_prompt, 300);
    assert_eq!(c0, 0);
    drop(cold);
    let cold = backend(opts(2, 512, None)).unwrap();
    let (cold_second, c1) = run(&cold, &second_prompt, 40);
    assert_eq!(c1, 0);
    drop(cold);

    let b = backend(opts(2, 512, None)).unwrap();
    let mut first = b.generate(request(&first_prompt, 300)).unwrap();
    // `Started` comes after the first's prompt ran, so its full blocks are in the cache.
    let (p_first, _) = started(&mut first);
    let mut second = b.generate(request(&second_prompt, 40)).unwrap();
    let (p_second, cached) = started(&mut second);
    // Both ran side by side: the first had not finished when the second started.
    let mut first_text = String::new();
    while let Ok(ev) = first.events.try_recv() {
        match ev.unwrap() {
            GenerationEvent::Delta { text, .. } => first_text.push_str(&text),
            other => panic!("the first request ended before the second started: {other:?}"),
        }
    }
    let ids = |t: &str| b.tokenize("stories", t).unwrap();
    let (a, c) = (ids(&first_prompt), ids(&second_prompt));
    assert_eq!((a.len(), c.len()), (p_first, p_second));
    let common = a.iter().zip(&c).take_while(|(x, y)| x == y).count();
    // Whole shared blocks, plus the matching part of the first's next block once it is full.
    assert!(
        cached >= 16 && (cached == common || (cached % 16 == 0 && cached < common)),
        "cached {cached}, common prefix {common}"
    );
    let (second_text, cached2) = rest(&mut second);
    assert_eq!(cached2, cached);
    assert_eq!(second_text, cold_second);
    let (tail, _) = rest(&mut first);
    first_text.push_str(&tail);
    assert_eq!(first_text, cold_first);
    wait_for_empty_pool(&b);

    // The same prompt again reuses everything but the last token, from the finished
    // request's cached blocks and its partial last block.
    let (again, cached) = run(&b, &second_prompt, 40);
    assert_eq!(again, cold_second);
    assert_eq!(cached, p_second - 1);
    wait_for_empty_pool(&b);
}

#[test]
fn a_small_pool_makes_requests_wait_not_fail() {
    // Room for one request at a time: 128 positions, four slots.
    let Some(b) = backend(opts(4, 128, Some(128))) else {
        return;
    };
    let prompts = [
        "Lily and Tom",
        "The cat sat",
        "One day, a little",
        "A big dog",
    ];
    let alone: Vec<String> = prompts.iter().map(|p| run(&b, p, 90).0).collect();
    let streams: Vec<_> = prompts
        .iter()
        .map(|p| b.generate(request(p, 90)).unwrap())
        .collect();
    let together: Vec<String> = streams.into_iter().map(|mut s| rest(&mut s).0).collect();
    assert_eq!(alone, together);
    wait_for_empty_pool(&b);
    let s = b.stats().unwrap();
    assert_eq!((s.kv_cells_total, s.queued), (128, 0));
    // What can never fit still gets the context-length error.
    let err = b.generate(request("Lily", 200)).unwrap_err();
    assert!(
        matches!(err, BackendError::ContextLengthExceeded { n_ctx: 128, .. }),
        "{err:?}"
    );
}

#[test]
fn cancelled_and_finished_requests_return_their_blocks() {
    let Some(b) = backend(opts(2, 256, None)) else {
        return;
    };
    let mut s = b.generate(request(STORY, 150)).unwrap();
    started(&mut s);
    drop(s);
    wait_for_empty_pool(&b);
    let (_, cached) = run(&b, STORY, 5);
    assert!(cached > 0, "a cancelled request's blocks stay cached");
    wait_for_empty_pool(&b);
    assert_eq!(b.stats().unwrap().kv_cells_total, 2 * 256);
}

#[test]
fn a_second_turn_may_use_the_whole_pool_when_its_prefix_ends_inside_a_shared_block() {
    // One slot whose pool is exactly its context. The second request shares the first's
    // prompt up to the middle of a full block (whose positions are copied) and asks for all
    // the room left: it needs every block of the pool, which must not count the copy's
    // source twice (it was refused as too long for the context).
    let Some(b) = backend(opts(1, 128, None)) else {
        return;
    };
    let first: Vec<u32> = (0..40).map(|i| 10 + (i * 7) % 200).collect();
    let mut req = request("", 20);
    req.input = PromptInput::Tokens(first.clone());
    let mut s = b.generate(req).unwrap();
    started(&mut s);
    rest(&mut s);
    wait_for_empty_pool(&b);
    // Shares tokens 0..24: block 0 whole, then 8 positions of full block 1.
    let mut second = first[..24].to_vec();
    second.extend((0..30).map(|i| 300 + i));
    let mut req = request("", 1);
    req.input = PromptInput::Tokens(second.clone());
    req.max_tokens = None;
    let mut s = b.generate(req).unwrap();
    let (p, cached) = started(&mut s);
    assert_eq!((p, cached), (second.len(), 24));
    let (text, _) = rest(&mut s);
    assert!(!text.is_empty());
}

#[test]
fn an_idle_engine_drops_its_prefix_cache_after_the_trim_time() {
    let mut o = opts(2, 256, None);
    o.kv_idle_trim = Some(Duration::from_millis(300));
    let Some(b) = backend(o) else {
        return;
    };
    let (first, c0) = run(&b, STORY, 8);
    assert_eq!(c0, 0);
    // At once: the prompt's blocks are still cached.
    let (again, c1) = run(&b, STORY, 8);
    assert!(c1 > 0, "no reuse right after the first run");
    assert_eq!(first, again);
    // After the idle time the cache (and its memory) is gone; outputs are unchanged.
    std::thread::sleep(Duration::from_millis(900));
    let (cold, c2) = run(&b, STORY, 8);
    assert_eq!(c2, 0, "the prefix cache survived the idle trim");
    assert_eq!(first, cold);
    wait_for_empty_pool(&b);
}
