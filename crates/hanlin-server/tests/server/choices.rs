//! `n > 1`: several choices per request — shapes, index order, usage sums, seed derivation,
//! cancellation and errors. A wrapper around the fake backend tags every token with its
//! request's seed, so that each choice's text shows which seed produced it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hanlin_api::choices::choice_seed;
use hanlin_api::{
    generation_channel, BackendError, GenerationEvent, GenerationRequest, GenerationStream,
    InferenceBackend, ModelCard, ModelDetails,
};
use hanlin_server::{router, AppState, ServerConfig};
use hanlin_test_support::fake_backend::{FakeBackend, FakeConfig};
use serde_json::{json, Value};

use super::{app_with, assert_openai_error, chat_body, post};

/// The fake backend, with every delta suffixed by `@seed` and every request recorded.
#[derive(Clone)]
struct SeedTagged {
    fake: FakeBackend,
    seen: Arc<Mutex<Vec<GenerationRequest>>>,
}

impl SeedTagged {
    fn seeds(&self) -> Vec<Option<u64>> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|r| r.sampling.seed)
            .collect()
    }
}

impl InferenceBackend for SeedTagged {
    fn models(&self) -> Vec<ModelCard> {
        self.fake.models()
    }

    fn generate(&self, req: GenerationRequest) -> Result<GenerationStream, BackendError> {
        let tag = req
            .sampling
            .seed
            .map_or_else(|| "@none".to_string(), |s| format!("@{s}"));
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(req.clone());
        let mut inner = self.fake.generate(req)?;
        let (sink, outer) = generation_channel(4);
        tokio::spawn(async move {
            loop {
                let ev = tokio::select! {
                    ev = inner.events.recv() => ev,
                    () = sink.events.closed() => break,
                };
                let Some(ev) = ev else { break };
                let ev = match ev {
                    Ok(GenerationEvent::Delta { text, logprob }) => Ok(GenerationEvent::Delta {
                        text: format!("{text}{tag}"),
                        logprob,
                    }),
                    other => other,
                };
                if sink.events.send(ev).await.is_err() {
                    break;
                }
            }
        });
        Ok(outer)
    }

    fn tokenize(&self, model: &str, text: &str) -> Result<Vec<u32>, BackendError> {
        self.fake.tokenize(model, text)
    }

    fn detokenize(&self, model: &str, tokens: &[u32]) -> Result<String, BackendError> {
        self.fake.detokenize(model, tokens)
    }

    fn model_details(&self, model: &str) -> Option<ModelDetails> {
        self.fake.model_details(model)
    }
}

fn tagged(cfg: FakeConfig) -> (axum::Router, SeedTagged) {
    let b = SeedTagged {
        fake: FakeBackend::new(cfg),
        seen: Arc::default(),
    };
    let state = AppState::new(Arc::new(b.clone()), ServerConfig::default());
    (router(state), b)
}

/// `"hello world"` as the tagged backend echoes it for `seed`.
fn tagged_text(seed: u64) -> String {
    format!("hello@{seed} world@{seed}")
}

#[tokio::test]
async fn chat_n_choices_shape_usage_and_seeds() {
    let (app, backend) = tagged(FakeConfig::default());
    let mut body = chat_body("hello world");
    body["n"] = json!(3);
    body["seed"] = json!(42);
    body["temperature"] = json!(1.0);
    let r = post(&app, "/v1/chat/completions", body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let choices = v["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 3, "{v}");
    let seeds: Vec<u64> = (0..3).map(|i| choice_seed(42, i)).collect();
    assert_eq!(seeds[0], 42, "choice 0 keeps the request's seed");
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i, "{v}");
        assert_eq!(c["finish_reason"], "stop");
        assert_eq!(c["logprobs"], Value::Null);
        assert_eq!(c["message"]["role"], "assistant");
        assert_eq!(c["message"]["content"], tagged_text(seeds[i]), "{v}");
    }
    // The prompt is counted once, completion tokens over all choices.
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 19, "completion_tokens": 6, "total_tokens": 25,
               "prompt_tokens_details": {"cached_tokens": 0}})
    );
    assert_eq!(backend.fake.started(), 3);
    let mut sorted = backend.seeds();
    sorted.sort_unstable();
    let mut want: Vec<Option<u64>> = seeds.iter().copied().map(Some).collect();
    want.sort_unstable();
    assert_eq!(sorted, want);
    // The same request again gives the same choices.
    let again = post(&app, "/v1/chat/completions", body).await.json();
    assert_eq!(again["choices"], v["choices"]);
}

#[tokio::test]
async fn one_choice_is_unchanged_and_unseeded_choices_differ() {
    let (app, backend) = tagged(FakeConfig::default());
    let r = post(&app, "/v1/chat/completions", chat_body("hello world")).await;
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "hello@none world@none"
    );
    assert_eq!(backend.seeds(), [None]);
    let mut body = chat_body("hello world");
    body["n"] = json!(2);
    let v = post(&app, "/v1/chat/completions", body).await.json();
    let (a, b) = (
        &v["choices"][0]["message"]["content"],
        &v["choices"][1]["message"]["content"],
    );
    assert_ne!(a, b, "{v}");
    assert!(backend.seeds()[1..].iter().all(Option::is_some));
}

#[tokio::test]
async fn completions_n_with_echo_and_logprobs() {
    let (app, fake) = app_with(FakeConfig::default(), ServerConfig::default());
    let body = json!({"model": "fake", "prompt": "a b", "n": 2, "best_of": 2, "echo": true,
        "logprobs": 1, "max_tokens": 5});
    let r = post(&app, "/v1/completions", body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let choices = v["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 2, "{v}");
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert_eq!(c["text"], "a ba b", "{v}");
        assert_eq!(c["finish_reason"], "stop");
        assert_eq!(c["logprobs"]["tokens"], json!(["a", " b"]));
        assert_eq!(c["logprobs"]["text_offset"], json!([3, 4]));
    }
    // "a b" is 3 bytes + BOS; two tokens per choice.
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert_eq!(v["usage"]["total_tokens"], 8);
    assert_eq!(fake.started(), 2);
}

/// The JSON chunks of an SSE body, checking that it ends with exactly one `[DONE]`.
fn chunks(r: &super::Resp) -> Vec<Value> {
    let data = r.sse_data();
    assert_eq!(
        data.last().map(String::as_str),
        Some("[DONE]"),
        "{}",
        r.body
    );
    assert_eq!(data.iter().filter(|d| *d == "[DONE]").count(), 1);
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("JSON chunk"))
        .collect()
}

#[tokio::test]
async fn chat_stream_n_choices_interleave_and_finish_each() {
    let (app, _) = tagged(FakeConfig {
        token_delay: Duration::from_millis(15),
        ..FakeConfig::default()
    });
    let mut body = chat_body("one two three four");
    body["n"] = json!(3);
    body["seed"] = json!(7);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = post(&app, "/v1/chat/completions", body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let chunks = chunks(&r);
    let (last, body_chunks) = chunks.split_last().expect("chunks");
    // One usage chunk at the end: no choices, prompt once, completion summed.
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 26);
    assert_eq!(last["usage"]["completion_tokens"], 12);
    let mut texts = vec![String::new(); 3];
    let mut finished = [false; 3];
    let mut order = Vec::new();
    for c in body_chunks {
        assert_eq!(c["usage"], Value::Null, "{c}");
        let choices = c["choices"].as_array().expect("choices");
        assert_eq!(choices.len(), 1, "one choice per chunk: {c}");
        let ch = &choices[0];
        let i = ch["index"].as_u64().expect("index") as usize;
        assert!(!finished[i], "chunk after choice {i} finished: {c}");
        order.push(i);
        if let Some(t) = ch["delta"]["content"].as_str() {
            texts[i].push_str(t);
        }
        if let Some(reason) = ch["finish_reason"].as_str() {
            assert_eq!(reason, "stop");
            finished[i] = true;
        }
    }
    assert_eq!(finished, [true; 3]);
    for (i, t) in texts.iter().enumerate() {
        let s = choice_seed(7, i);
        assert_eq!(
            *t,
            format!("one@{s} two@{s} three@{s} four@{s}"),
            "choice {i}"
        );
    }
    // Each choice opens with its role chunk, and tokens arrive interleaved, not choice by
    // choice.
    assert_eq!(order[..3], [0, 1, 2]);
    assert!(
        order.windows(2).any(|w| w[1] < w[0]),
        "not interleaved: {order:?}"
    );
}

#[tokio::test]
async fn completions_stream_n_choices() {
    let (app, _) = app_with(FakeConfig::default(), ServerConfig::default());
    let body = json!({"model": "fake", "prompt": "x y", "n": 2, "stream": true,
        "stream_options": {"include_usage": true}});
    let r = post(&app, "/v1/completions", body).await;
    let chunks = chunks(&r);
    let (last, rest) = chunks.split_last().expect("chunks");
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 4);
    assert_eq!(last["usage"]["prompt_tokens"], 4);
    for i in 0..2 {
        let mine: Vec<&Value> = rest
            .iter()
            .map(|c| &c["choices"][0])
            .filter(|c| c["index"] == i)
            .collect();
        let text: String = mine.iter().filter_map(|c| c["text"].as_str()).collect();
        assert_eq!(text, "x y");
        let finishes: Vec<&Value> = mine
            .iter()
            .map(|c| &c["finish_reason"])
            .filter(|f| !f.is_null())
            .collect();
        assert_eq!(finishes, [&json!("stop")], "choice {i}");
    }
}

#[tokio::test]
async fn tool_calls_in_every_choice() {
    let script = [
        "<tool_call>\n{\"name\": \"get_weather\", ",
        "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
    ];
    let cfg = FakeConfig {
        script: Some(script.iter().map(|w| w.to_string()).collect()),
        ..FakeConfig::default()
    };
    let (app, _) = app_with(cfg, ServerConfig::default());
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let body = json!({"model": "fake", "messages": [{"role": "user", "content": "Weather?"}],
        "tools": tools, "tool_choice": "required", "n": 2});
    let v = post(&app, "/v1/chat/completions", body.clone())
        .await
        .json();
    for i in 0..2 {
        let c = &v["choices"][i];
        assert_eq!(c["finish_reason"], "tool_calls", "{v}");
        assert_eq!(
            c["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
    }
    let mut body = body;
    body["stream"] = json!(true);
    let r = post(&app, "/v1/chat/completions", body).await;
    let chunks = chunks(&r);
    for i in 0..2 {
        let mine: Vec<&Value> = chunks
            .iter()
            .map(|c| &c["choices"][0])
            .filter(|c| c["index"] == i)
            .collect();
        assert!(
            mine.iter()
                .any(|c| c["delta"]["tool_calls"][0]["function"]["name"] == "get_weather"),
            "choice {i}: {}",
            r.body
        );
        assert_eq!(
            mine.last().map(|c| &c["finish_reason"]),
            Some(&json!("tool_calls"))
        );
    }
}

#[tokio::test]
async fn n_out_of_range_names_the_param() {
    let (app, fake) = app_with(FakeConfig::default(), ServerConfig::default());
    for n in [json!(0), json!(17), json!(-2), json!("3"), json!(2.5)] {
        let mut b = chat_body("x");
        b["n"] = n;
        let r = post(&app, "/v1/chat/completions", b).await;
        assert_openai_error(&r, 400, Some("n"), None);
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
        let r = post(
            &app,
            "/v1/completions",
            json!({"model": "fake", "prompt": "x", "n": 17}),
        )
        .await;
        assert_openai_error(&r, 400, Some("n"), None);
    }
    let r = post(
        &app,
        "/v1/completions",
        json!({"model": "fake", "prompt": "x", "n": 3, "best_of": 2}),
    )
    .await;
    assert_openai_error(&r, 400, Some("best_of"), None);
    assert_eq!(fake.started(), 0);
}

#[tokio::test]
async fn a_refused_choice_refuses_the_request_and_frees_the_others() {
    let cfg = FakeConfig {
        max_active: Some(2),
        start_delay: Duration::from_millis(20),
        ..FakeConfig::default()
    };
    let (app, fake) = app_with(cfg, ServerConfig::default());
    let mut b = chat_body("x");
    b["n"] = json!(3);
    let r = post(&app, "/v1/chat/completions", b).await;
    assert_eq!(r.status, 429, "{}", r.body);
    for _ in 0..200 {
        if fake.active() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(fake.active(), 0);
}

#[tokio::test]
async fn a_choice_failing_midway_ends_the_response_like_one_choice() {
    let cfg = FakeConfig {
        fail_after: Some((1, BackendError::Internal("boom".into()))),
        ..FakeConfig::default()
    };
    let (app, fake) = app_with(cfg, ServerConfig::default());
    let mut b = chat_body("a b c");
    b["n"] = json!(2);
    let r = post(&app, "/v1/chat/completions", b.clone()).await;
    assert_eq!(r.status, 500, "{}", r.body);
    b["stream"] = json!(true);
    let r = post(&app, "/v1/chat/completions", b).await;
    let data = r.sse_data();
    assert!(!data.iter().any(|d| d == "[DONE]"), "{}", r.body);
    let last: Value = serde_json::from_str(data.last().expect("data")).expect("JSON");
    assert!(last["error"]["message"].is_string(), "{last}");
    for _ in 0..200 {
        if fake.active() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(fake.active(), 0);
}
