//! Validation tests: accepted shapes and one rejected case per field.

use super::*;
use serde_json::json;

fn chat_err(body: Value) -> ApiError {
    chat_request(&body).expect_err("should be rejected")
}

fn base() -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
}

fn with(key: &str, v: Value) -> Value {
    let mut b = base();
    b[key] = v;
    b
}

#[test]
fn minimal_chat_defaults() {
    let r = chat_request(&base()).unwrap();
    assert_eq!(r.generation.model, "m");
    assert_eq!(r.generation.sampling, SamplingOptions::default());
    assert_eq!(r.generation.max_tokens, None);
    assert_eq!(r.generation.logprobs, None);
    assert!(!r.stream && !r.include_usage);
    assert_eq!(r.n, 1);
}

#[test]
fn n_choices_in_range() {
    assert_eq!(chat_request(&with("n", json!(3))).unwrap().n, 3);
    assert_eq!(chat_request(&with("n", json!(16))).unwrap().n, 16);
    let c = |extra: Value| {
        let mut b = json!({"model": "m", "prompt": "x"});
        if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        completion_request(&b)
    };
    assert_eq!(c(json!({"n": 4})).unwrap().n, 4);
    assert_eq!(c(json!({"n": 4, "best_of": 4})).unwrap().n, 4);
    assert_eq!(c(json!({"best_of": 1})).unwrap().n, 1);
    for (bad, param) in [
        (json!({"n": 17}), "n"),
        (json!({"n": 0}), "n"),
        (json!({"n": 1.5}), "n"),
        (json!({"n": 2, "best_of": 1}), "best_of"),
        (json!({"n": 2, "best_of": 3}), "best_of"),
    ] {
        let e = c(bad.clone()).unwrap_err();
        assert_eq!(e.param.as_deref(), Some(param), "{bad}");
    }
}

#[test]
fn every_field_is_carried() {
    let body = json!({
        "model": "m",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "content": "42", "tool_call_id": "c1"}
        ],
        "max_tokens": 5, "max_completion_tokens": 7, "temperature": 0.5, "top_p": 0.9,
        "n": 1, "stop": ["x", "y"], "seed": -1, "presence_penalty": 1.5,
        "frequency_penalty": -0.5, "logit_bias": {"12": -100, "7": 3.5},
        "logprobs": true, "top_logprobs": 3, "user": "u1", "stream": true,
        "stream_options": {"include_usage": true}, "top_k": 40, "min_p": 0.05,
        "repetition_penalty": 1.1
    });
    let r = chat_request(&body).unwrap();
    let g = &r.generation;
    assert_eq!(g.max_tokens, Some(7));
    assert_eq!(g.stop, vec!["x", "y"]);
    assert_eq!(g.logprobs, Some(3));
    let s = &g.sampling;
    assert_eq!(
        (s.temperature, s.top_p, s.top_k, s.min_p),
        (0.5, 0.9, 40, 0.05)
    );
    assert_eq!(
        (
            s.presence_penalty,
            s.frequency_penalty,
            s.repetition_penalty
        ),
        (1.5, -0.5, 1.1)
    );
    assert_eq!(s.seed, Some(u64::MAX));
    assert_eq!(s.logit_bias, vec![(12, -100.0), (7, 3.5)]);
    assert!(r.stream && r.include_usage);
    assert_eq!(r.user.as_deref(), Some("u1"));
    let PromptInput::Chat { messages, tools } = &g.input else {
        panic!("not chat")
    };
    assert!(tools.is_none());
    assert_eq!(
        messages[0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(messages[1]["content"], "a\nb");
    assert_eq!(messages[2]["content"], "");
    assert_eq!(messages[3]["tool_call_id"], "c1");
}

#[test]
fn errors_name_the_field() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({"messages": []}), "model"),
        (json!({"model": 3, "messages": []}), "model"),
        (json!({"model": "m"}), "messages"),
        (json!({"model": "m", "messages": "hi"}), "messages"),
        (json!({"model": "m", "messages": []}), "messages"),
        (json!({"model": "m", "messages": [1]}), "messages.[0]"),
        (
            json!({"model": "m", "messages": [{"content": "x"}]}),
            "messages.[0].role",
        ),
        (
            json!({"model": "m", "messages": [{"role": "king", "content": "x"}]}),
            "messages.[0].role",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user"}]}),
            "messages.[0].content",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": 5}]}),
            "messages.[0].content",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}),
            "messages.[0].content.[0].type",
        ),
        (
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
            "messages.[0].tool_call_id",
        ),
        (with("temperature", json!(2.5)), "temperature"),
        (with("temperature", json!(-0.1)), "temperature"),
        (with("temperature", json!("hot")), "temperature"),
        (with("top_p", json!(0)), "top_p"),
        (with("top_p", json!(1.01)), "top_p"),
        (with("n", json!(17)), "n"),
        (with("n", json!(0)), "n"),
        (with("n", json!(-1)), "n"),
        (with("n", json!("2")), "n"),
        (with("stop", json!(["a", "b", "c", "d", "e"])), "stop"),
        (with("stop", json!([1])), "stop.[0]"),
        (with("stop", json!("")), "stop"),
        (with("seed", json!("1")), "seed"),
        (with("presence_penalty", json!(2.1)), "presence_penalty"),
        (with("frequency_penalty", json!(-3)), "frequency_penalty"),
        (with("logit_bias", json!({"abc": 1})), "logit_bias"),
        (with("logit_bias", json!({"5": 101})), "logit_bias.5"),
        (with("logit_bias", json!([1])), "logit_bias"),
        (with("top_logprobs", json!(2)), "top_logprobs"),
        (with("max_tokens", json!(0)), "max_tokens"),
        (with("max_tokens", json!(1.5)), "max_tokens"),
        (
            with("max_completion_tokens", json!(-1)),
            "max_completion_tokens",
        ),
        (with("stream", json!("yes")), "stream"),
        (
            with("stream_options", json!({"include_usage": true})),
            "stream_options",
        ),
        (with("top_k", json!(-1)), "top_k"),
        (with("min_p", json!(1.5)), "min_p"),
        (with("repetition_penalty", json!(0)), "repetition_penalty"),
        (with("user", json!(1)), "user"),
        (
            with("response_format", json!({"type": "yaml"})),
            "response_format.type",
        ),
        (
            with(
                "response_format",
                json!({"type": "json_schema", "json_schema": {"name": "t", "schema": {"type": "array", "uniqueItems": true}}}),
            ),
            "response_format.json_schema.schema.uniqueItems",
        ),
        (
            with("tools", json!([{"type": "function", "function": {}}])),
            "tools.[0].function.name",
        ),
        (with("tool_choice", json!("required")), "tool_choice"),
        (with("tool_choice", json!("sometimes")), "tool_choice"),
    ];
    for (body, param) in cases {
        let e = chat_err(body.clone());
        assert_eq!(e.status(), 400, "{body}");
        assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
    }
}

#[test]
fn top_logprobs_needs_logprobs_and_range() {
    let mut b = with("logprobs", json!(true));
    b["top_logprobs"] = json!(21);
    assert_eq!(chat_err(b).param.as_deref(), Some("top_logprobs"));
    let mut b = with("logprobs", json!(true));
    b["top_logprobs"] = json!(20);
    assert_eq!(chat_request(&b).unwrap().generation.logprobs, Some(20));
    let b = with("logprobs", json!(false));
    assert_eq!(chat_request(&b).unwrap().generation.logprobs, None);
}

#[test]
fn nulls_are_absent_and_integral_decimals_are_integers() {
    let mut b = with("temperature", Value::Null);
    b["max_tokens"] = json!(12.0);
    b["stop"] = Value::Null;
    let r = chat_request(&b).unwrap();
    assert_eq!(r.generation.sampling.temperature, 1.0);
    assert_eq!(r.generation.max_tokens, Some(12));
}

#[test]
fn non_object_body() {
    let e = chat_request(&json!([1, 2])).unwrap_err();
    assert_eq!((e.status(), e.param.clone()), (400, None));
    assert!(e.message.contains("an array"), "{}", e.message);
}

#[test]
fn completion_prompts() {
    let ok = |p: Value| {
        completion_request(&json!({"model": "m", "prompt": p}))
            .unwrap()
            .generation
            .input
    };
    assert_eq!(ok(json!("hi")), PromptInput::Text("hi".into()));
    assert_eq!(ok(json!(["hi"])), PromptInput::Text("hi".into()));
    assert_eq!(ok(json!([1, 2, 3])), PromptInput::Tokens(vec![1, 2, 3]));
    assert_eq!(ok(json!([[4, 5]])), PromptInput::Tokens(vec![4, 5]));
    let err = |p: Value| {
        completion_request(&json!({"model": "m", "prompt": p}))
            .unwrap_err()
            .param
            .unwrap_or_default()
    };
    assert_eq!(err(json!(["a", "b"])), "prompt");
    assert_eq!(err(json!([])), "prompt");
    assert_eq!(err(json!([1, -2])), "prompt.[1]");
    assert_eq!(err(json!([[]])), "prompt.[0]");
    assert_eq!(err(json!(7)), "prompt");
    assert_eq!(err(json!([true])), "prompt.[0]");
}

#[test]
fn embedding_inputs() {
    let ok = |b: Value| embedding_request(&b).unwrap();
    let r = ok(json!({"model": "m", "input": "a"}));
    assert_eq!(
        (r.inputs, r.base64),
        (vec![PromptInput::Text("a".into())], false)
    );
    let r = ok(json!({"model": "m", "input": ["a", [1, 2]], "encoding_format": "base64"}));
    assert_eq!(
        r.inputs,
        vec![
            PromptInput::Text("a".into()),
            PromptInput::Tokens(vec![1, 2])
        ]
    );
    assert!(r.base64);
    assert_eq!(
        ok(json!({"model": "m", "input": [3]})).inputs,
        vec![PromptInput::Tokens(vec![3])]
    );
    for (body, param) in [
        (json!({"model": "m"}), "input"),
        (json!({"model": "m", "input": []}), "input"),
        (json!({"model": "m", "input": [true]}), "input.[0]"),
        (
            json!({"model": "m", "input": "a", "encoding_format": "hex"}),
            "encoding_format",
        ),
        (
            json!({"model": "m", "input": "a", "dimensions": 8}),
            "dimensions",
        ),
    ] {
        assert_eq!(
            embedding_request(&body).unwrap_err().param.as_deref(),
            Some(param),
            "{body}"
        );
    }
}

#[test]
fn completion_fields() {
    let r = completion_request(&json!({"model": "m", "prompt": "x"})).unwrap();
    assert_eq!(r.generation.max_tokens, Some(16), "OpenAI's default");
    assert!(!r.echo);
    let r = completion_request(
        &json!({"model": "m", "prompt": "x", "logprobs": 2, "echo": true, "max_tokens": 3}),
    )
    .unwrap();
    assert_eq!(
        (r.generation.logprobs, r.echo, r.generation.max_tokens),
        (Some(2), true, Some(3))
    );
    for (body, param) in [
        (json!({"model": "m"}), "prompt"),
        (
            json!({"model": "m", "prompt": "x", "logprobs": 6}),
            "logprobs",
        ),
        (
            json!({"model": "m", "prompt": "x", "best_of": 2}),
            "best_of",
        ),
        (
            json!({"model": "m", "prompt": "x", "n": 3, "best_of": 2}),
            "best_of",
        ),
        (
            json!({"model": "m", "prompt": "x", "suffix": "y"}),
            "suffix",
        ),
        (json!({"model": "m", "prompt": "x", "echo": 1}), "echo"),
    ] {
        let e = completion_request(&body).unwrap_err();
        assert_eq!(e.param.as_deref(), Some(param), "{body}");
    }
}
