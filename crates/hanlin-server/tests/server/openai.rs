//! `/v1` success paths and response shapes.

use serde_json::{json, Value};

use super::{app, assert_openai_error, chat_body, get, post};

#[tokio::test]
async fn chat_completion_shape() {
    let (app, fake) = app();
    let r = post(&app, "/v1/chat/completions", chat_body("hello world")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert!(
        v["id"].as_str().is_some_and(|s| s.starts_with("chatcmpl-")),
        "{v}"
    );
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_u64().is_some_and(|t| t > 1_600_000_000));
    assert_eq!(v["model"], "fake");
    assert!(v["system_fingerprint"]
        .as_str()
        .is_some_and(|s| s.starts_with("fp_")));
    assert_eq!(
        v["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": "hello world", "refusal": null},
                "logprobs": null, "finish_reason": "stop"}])
    );
    // "user: hello world\n" is 18 bytes, plus BOS.
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 19, "completion_tokens": 2, "total_tokens": 21,
               "prompt_tokens_details": {"cached_tokens": 0}})
    );
    assert_eq!(fake.started(), 1);
}

#[tokio::test]
async fn chat_parameters_reach_the_backend() {
    let (app, fake) = app();
    let mut body = chat_body("a b c d");
    body["temperature"] = json!(0.25);
    body["max_completion_tokens"] = json!(2);
    body["stop"] = json!("zz");
    body["seed"] = json!(42);
    body["top_k"] = json!(5);
    let r = post(&app, "/v1/chat/completions", body).await;
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "length", "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "a b");
    let req = fake.last_request().expect("a request");
    assert_eq!(req.sampling.temperature, 0.25);
    assert_eq!(req.sampling.seed, Some(42));
    assert_eq!(req.sampling.top_k, 5);
    assert_eq!(req.max_tokens, Some(2));
    assert_eq!(req.stop, vec!["zz".to_string()]);
}

#[tokio::test]
async fn chat_stream_without_usage() {
    let (app, _) = app();
    let mut body = chat_body("hello world");
    body["stream"] = json!(true);
    let r = post(&app, "/v1/chat/completions", body).await;
    assert_eq!(r.status, 200);
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("json chunk"))
        .collect();
    assert_eq!(chunks.len(), 4, "{chunks:?}");
    let id = chunks[0]["id"].clone();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], id, "one id per response");
        assert!(c.get("usage").is_none(), "no usage key unless asked: {c}");
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(
        chunks[1]["choices"][0]["delta"],
        json!({"content": "hello"})
    );
    assert_eq!(
        chunks[2]["choices"][0]["delta"],
        json!({"content": " world"})
    );
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], Value::Null);
    assert_eq!(chunks[3]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn chat_stream_with_usage_ends_with_usage_only_chunk() {
    let (app, _) = app();
    let mut body = chat_body("one two three");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let data = post(&app, "/v1/chat/completions", body).await.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("json chunk"))
        .collect();
    let (last, rest) = chunks.split_last().expect("chunks");
    for c in rest {
        assert_eq!(c["usage"], Value::Null, "{c}");
        assert_eq!(c["choices"].as_array().map(Vec::len), Some(1));
    }
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 3);
    assert_eq!(last["usage"]["prompt_tokens"], 21);
    assert_eq!(last["usage"]["total_tokens"], 24);
    assert_eq!(last["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
}

#[tokio::test]
async fn chat_logprobs_plain_and_streamed() {
    let (app, _) = app();
    let mut body = chat_body("hi there");
    body["logprobs"] = json!(true);
    body["top_logprobs"] = json!(2);
    let v = post(&app, "/v1/chat/completions", body.clone())
        .await
        .json();
    let content = &v["choices"][0]["logprobs"]["content"];
    assert_eq!(content.as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(content[1]["token"], " there");
    assert_eq!(content[1]["bytes"], json!(b" there".to_vec()));
    assert_eq!(content[1]["top_logprobs"].as_array().map(Vec::len), Some(2));
    assert!(content[0]["logprob"].as_f64().is_some_and(|x| x < 0.0));
    body["stream"] = json!(true);
    let data = post(&app, "/v1/chat/completions", body).await.sse_data();
    let delta: Value = serde_json::from_str(&data[1]).expect("chunk");
    assert_eq!(delta["choices"][0]["logprobs"]["content"][0]["token"], "hi");
}

#[tokio::test]
async fn repeated_prompt_reports_cached_tokens() {
    let (app, _) = app();
    let first = post(&app, "/v1/chat/completions", chat_body("same prompt"))
        .await
        .json();
    assert_eq!(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    let second = post(&app, "/v1/chat/completions", chat_body("same prompt"))
        .await
        .json();
    assert!(
        second["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64() > Some(0),
        "{second}"
    );
}

#[tokio::test]
async fn text_completion_shape_echo_and_logprobs() {
    let (app, _) = app();
    let r = post(
        &app,
        "/v1/completions",
        json!({"model": "fake", "prompt": "once upon"}),
    )
    .await;
    let v = r.json();
    assert!(
        v["id"].as_str().is_some_and(|s| s.starts_with("cmpl-")),
        "{v}"
    );
    assert_eq!(v["object"], "text_completion");
    assert_eq!(
        v["choices"],
        json!([{"text": "once upon", "index": 0, "logprobs": null, "finish_reason": "stop"}])
    );
    assert_eq!(v["usage"]["prompt_tokens"], 10);
    let v = post(
        &app,
        "/v1/completions",
        json!({"model": "fake", "prompt": "ab cd", "echo": true, "logprobs": 1}),
    )
    .await
    .json();
    let c = &v["choices"][0];
    assert_eq!(c["text"], "ab cdab cd");
    assert_eq!(c["logprobs"]["tokens"], json!(["ab", " cd"]));
    assert_eq!(c["logprobs"]["text_offset"], json!([5, 7]));
    assert_eq!(c["logprobs"]["top_logprobs"][0], json!({"ab": -0.25}));
    // Token ids (the fake's are bytes after a BOS) are echoed as text.
    let v = post(
        &app,
        "/v1/completions",
        json!({"model": "fake", "prompt": [104, 105], "echo": true}),
    )
    .await
    .json();
    assert_eq!(v["choices"][0]["text"], "hihi");
}

#[tokio::test]
async fn text_completion_stream_with_usage() {
    let (app, _) = app();
    let body = json!({"model": "fake", "prompt": "x y", "stream": true,
                      "stream_options": {"include_usage": true}, "max_tokens": 1});
    let data = post(&app, "/v1/completions", body).await.sse_data();
    let texts: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk"))
        .collect();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert_eq!(texts[0]["object"], "text_completion");
    assert_eq!(texts[0]["choices"][0]["text"], "x");
    assert_eq!(texts[1]["choices"][0]["finish_reason"], "length");
    assert_eq!(texts[2]["choices"], json!([]));
    assert_eq!(texts[2]["usage"]["completion_tokens"], 1);
}

#[tokio::test]
async fn models_list_and_retrieve() {
    let cfg = hanlin_test_support::fake_backend::FakeConfig {
        models: vec!["fake".into(), "org/model:q8".into()],
        ..Default::default()
    };
    let (app, _) = super::app_with(cfg, Default::default());
    let v = get(&app, "/v1/models").await.json();
    assert_eq!(v["object"], "list");
    assert_eq!(
        v["data"][1],
        json!({"id": "org/model:q8", "object": "model", "created": 1_700_000_000u64, "owned_by": "hanlin"})
    );
    let r = get(&app, "/v1/models/org/model:q8").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["id"], "org/model:q8");
    let r = get(&app, "/v1/models/nope").await;
    assert_openai_error(&r, 404, Some("model"), Some("model_not_found"));
}

#[tokio::test]
async fn tokenize_round_trip() {
    let (app, _) = app();
    let v = post(
        &app,
        "/v1/tokenize",
        json!({"model": "fake", "prompt": "hi"}),
    )
    .await
    .json();
    assert_eq!(
        v,
        json!({"count": 3, "max_model_len": 512, "tokens": [256, 104, 105]})
    );
    let v = post(
        &app,
        "/v1/detokenize",
        json!({"model": "fake", "tokens": [104, 105]}),
    )
    .await
    .json();
    assert_eq!(v, json!({"prompt": "hi"}));
    let r = post(
        &app,
        "/v1/detokenize",
        json!({"model": "fake", "tokens": [999]}),
    )
    .await;
    assert_openai_error(&r, 400, Some("tokens"), None);
    let r = post(
        &app,
        "/v1/detokenize",
        json!({"model": "fake", "tokens": [-1]}),
    )
    .await;
    assert_openai_error(&r, 400, Some("tokens.[0]"), None);
    let r = post(&app, "/v1/tokenize", json!({"model": "x", "prompt": "hi"})).await;
    assert_openai_error(&r, 404, Some("model"), Some("model_not_found"));
}

#[tokio::test]
async fn embeddings_float_and_base64() {
    let (app, _) = app();
    let v = post(
        &app,
        "/v1/embeddings",
        json!({"model": "fake", "input": ["a", "bc"]}),
    )
    .await
    .json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][1]["object"], "embedding");
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][1]["embedding"][0], 3.0);
    assert_eq!(v["usage"], json!({"prompt_tokens": 5, "total_tokens": 5}));
    let v = post(
        &app,
        "/v1/embeddings",
        json!({"model": "fake", "input": "a", "encoding_format": "base64"}),
    )
    .await
    .json();
    // [2.0, 62.0, 1.0, -0.5] as little-endian f32.
    assert_eq!(v["data"][0]["embedding"], "AAAAQAAAeEIAAIA/AAAAvw==");
}
