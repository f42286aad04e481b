//! Grammar-constrained decoding on stories260K (a model that knows nothing of JSON, so every
//! valid output is the grammar's doing): JSON schemas, regexes, Lark tool grammars, and the
//! errors for grammars that cannot be enforced.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use hanlin_api::{
    BackendError, Constraint, FinishReason, GenerationEvent, GenerationRequest, InferenceBackend,
    OutputConstraint, PromptInput, SamplingOptions,
};
use hanlin_engine::{LocalBackend, LocalOptions};
use serde_json::{json, Value};

fn backend() -> Option<LocalBackend> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/models/stories260K/stories260K-f32.gguf");
    if !path.is_file() {
        eprintln!("skipping: stories260K not found");
        return None;
    }
    let opts = LocalOptions {
        n_ctx: 512,
        threads: Some(1),
        parallel: 4,
        queue_depth: 16,
        ..Default::default()
    };
    Some(LocalBackend::start(vec![("stories".into(), path)], opts).unwrap())
}

fn request(kind: OutputConstraint, seed: u64, max_tokens: usize) -> GenerationRequest {
    GenerationRequest {
        model: "stories".into(),
        input: PromptInput::Text("Once upon a time".into()),
        max_tokens: Some(max_tokens),
        sampling: SamplingOptions {
            temperature: 1.0,
            seed: Some(seed),
            ..Default::default()
        },
        stop: vec![],
        logprobs: None,
        constraint: Some(Constraint {
            kind,
            param: "response_format.json_schema.schema".into(),
        }),
    }
}

fn run(b: &LocalBackend, req: GenerationRequest) -> (String, FinishReason) {
    let mut s = b.generate(req).unwrap();
    let mut text = String::new();
    while let Some(ev) = s.events.blocking_recv() {
        match ev.unwrap() {
            GenerationEvent::Delta { text: t, .. } => text.push_str(&t),
            GenerationEvent::Finished { finish_reason, .. } => return (text, finish_reason),
            GenerationEvent::Started { .. } => {}
        }
    }
    panic!("no Finished");
}

#[test]
fn json_schema_output_parses_and_holds_every_bound() {
    let Some(b) = backend() else { return };
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "age": {"type": "integer", "minimum": 3, "maximum": 90},
            "mood": {"enum": ["happy", "sad"]},
            "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]{1,4}$"}, "minItems": 1, "maxItems": 3},
        },
        "required": ["name", "age", "mood", "tags"],
        "additionalProperties": false,
    });
    for seed in 1..=6 {
        let (text, finish) = run(
            &b,
            request(OutputConstraint::JsonSchema(schema.clone()), seed, 200),
        );
        assert_eq!(finish, FinishReason::Stop, "seed {seed}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(v["name"].as_str().unwrap().chars().count() <= 12, "{text}");
        assert!((3..=90).contains(&v["age"].as_i64().unwrap()), "{text}");
        assert!(
            ["happy", "sad"].contains(&v["mood"].as_str().unwrap()),
            "{text}"
        );
        let tags = v["tags"].as_array().unwrap();
        assert!((1..=3).contains(&tags.len()), "{text}");
        for t in tags {
            let t = t.as_str().unwrap();
            assert!(
                (1..=4).contains(&t.len()) && t.bytes().all(|c| c.is_ascii_lowercase()),
                "{text}"
            );
        }
        assert_eq!(v.as_object().unwrap().len(), 4, "{text}");
    }
}

#[test]
fn regex_and_json_object() {
    let Some(b) = backend() else { return };
    for seed in 1..=4 {
        let (text, _) = run(
            &b,
            request(
                OutputConstraint::Regex("[0-9]{3}-[0-9]{4}".into()),
                seed,
                20,
            ),
        );
        let ok = text.len() == 8
            && text.bytes().enumerate().all(|(i, c)| {
                if i == 3 {
                    c == b'-'
                } else {
                    c.is_ascii_digit()
                }
            });
        assert!(ok, "{text:?}");
        let (text, finish) = run(&b, request(OutputConstraint::JsonObject, seed, 300));
        if finish == FinishReason::Stop {
            assert!(
                serde_json::from_str::<Value>(&text).unwrap().is_object(),
                "{text}"
            );
        } else {
            assert!(text.starts_with('{'), "{text}");
        }
    }
}

#[test]
fn tool_grammars_compile_and_parse_back() {
    let Some(b) = backend() else { return };
    let body = json!({"tools": [{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"enum": ["Paris", "Oslo"]}}, "required": ["city"], "additionalProperties": false}}}],
        "tool_choice": "required", "parallel_tool_calls": false});
    let f = hanlin_api::validate::Fields::new(body.as_object().unwrap(), "");
    let spec = hanlin_api::tools::tool_spec(&f).unwrap().unwrap();
    for format in [
        hanlin_api::tools::ToolFormat::Generic,
        hanlin_api::tools::ToolFormat::Llama3,
        hanlin_api::tools::ToolFormat::Mistral,
    ] {
        let (text, finish) = run(
            &b,
            request(OutputConstraint::Lark(spec.grammar(format)), 7, 120),
        );
        assert_eq!(finish, FinishReason::Stop, "{text}");
        let (_, calls) = hanlin_api::tools::parse_tool_calls(format, &text);
        assert_eq!(calls.len(), 1, "{format:?}: {text}");
        assert_eq!(calls[0].name, "get_weather");
        let args: Value = serde_json::from_str(&calls[0].arguments).unwrap();
        assert!(
            ["Paris", "Oslo"].contains(&args["city"].as_str().unwrap()),
            "{text}"
        );
    }
    // `auto`: free text or calls; the grammar (with its negated lexeme) must compile.
    let mut auto = spec.clone();
    auto.choice = hanlin_api::tools::ToolChoice::Auto;
    let grammar = auto.grammar(hanlin_api::tools::ToolFormat::Generic);
    let (text, _) = run(&b, request(OutputConstraint::Lark(grammar), 3, 30));
    assert!(!text.is_empty());
}

#[test]
fn grammars_that_cannot_be_enforced_are_400s_naming_the_field() {
    let Some(b) = backend() else { return };
    let err = |kind| match b.generate(request(kind, 1, 8)) {
        Err(BackendError::InvalidRequest { param, message }) => (param.unwrap(), message),
        Err(e) => panic!("wrong error {e:?}"),
        Ok(_) => panic!("accepted"),
    };
    let (param, msg) = err(OutputConstraint::JsonSchema(
        json!({"type": "array", "uniqueItems": true}),
    ));
    assert_eq!(
        param, "response_format.json_schema.schema.uniqueItems",
        "{msg}"
    );
    let (param, _) = err(OutputConstraint::Lark("start: (".into()));
    assert_eq!(param, "response_format.json_schema.schema");
    let (_, msg) = err(OutputConstraint::Regex("[".into()));
    assert!(!msg.is_empty());
}

#[test]
fn constrained_sampling_is_seed_deterministic_across_batches() {
    let Some(b) = backend() else { return };
    let schema = json!({"type": "object", "properties": {"a": {"type": "string", "maxLength": 20}}, "required": ["a"]});
    let alone = run(
        &b,
        request(OutputConstraint::JsonSchema(schema.clone()), 11, 60),
    );
    let streams: Vec<_> = (0..4)
        .map(|i| {
            b.generate(request(
                OutputConstraint::JsonSchema(schema.clone()),
                11 + i,
                60,
            ))
            .unwrap()
        })
        .collect();
    let mut first = String::new();
    for (i, mut s) in streams.into_iter().enumerate() {
        while let Some(ev) = s.events.blocking_recv() {
            if let (0, GenerationEvent::Delta { text, .. }) = (i, ev.unwrap()) {
                first.push_str(&text);
            }
        }
    }
    assert_eq!(first, alone.0);
}

#[test]
fn open_ended_json_closes_before_max_tokens() {
    // Nothing bounds these strings or the array, and stories260K writes text forever: without
    // budget-aware closing every run ends mid-string at max_tokens, unparsable.
    let Some(b) = backend() else { return };
    let schema = json!({
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "notes": {"type": "array", "items": {"type": "object", "properties": {
                "text": {"type": "string"}, "n": {"type": "integer"}},
                "required": ["text"]}},
        },
        "required": ["title", "notes"],
    });
    let mut steered = 0;
    for (seed, max_tokens) in (1..=24).map(|s| (s, 26 + 6 * s as usize)) {
        let (text, finish) = run(
            &b,
            request(
                OutputConstraint::JsonSchema(schema.clone()),
                seed,
                max_tokens,
            ),
        );
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("seed {seed}, {max_tokens} tokens: {e}: {text}"));
        assert!(v["title"].is_string(), "{text}");
        for n in v["notes"].as_array().unwrap() {
            assert!(n["text"].is_string(), "{text}");
        }
        // Steered to a close by the budget: complete, but reported as cut by max_tokens.
        steered += usize::from(finish == FinishReason::Length);
    }
    assert!(steered >= 12, "only {steered} of 24 runs needed steering");
    // A free-form JSON object too.
    for seed in 1..=4 {
        let (text, _) = run(&b, request(OutputConstraint::JsonObject, seed, 16));
        assert!(
            serde_json::from_str::<Value>(&text).is_ok_and(|v| v.is_object()),
            "seed {seed}: {text}"
        );
    }
}

/// Runs `schema` for 24 seeds with budgets from `min_tokens` up; every output must parse and
/// pass `check`, and at least half must have been closed early (finish "length"), or the
/// budgets did not exercise closing.
fn closes_validly(
    what: &str,
    b: &LocalBackend,
    schema: &Value,
    min_tokens: usize,
    check: impl Fn(&Value) -> bool,
) {
    let mut steered = 0;
    for (seed, max_tokens) in (1..=24).map(|s| (s, min_tokens + 2 * s as usize)) {
        let (text, finish) = run(
            b,
            request(
                OutputConstraint::JsonSchema(schema.clone()),
                seed,
                max_tokens,
            ),
        );
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("seed {seed}, {max_tokens} tokens: {e}: {text}"));
        assert!(check(&v), "seed {seed}, {max_tokens} tokens: {text}");
        steered += usize::from(finish == FinishReason::Length);
    }
    assert!(
        steered >= 12,
        "only {steered} of 24 {what} runs needed steering"
    );
}

// The grammar allows no closing quote until these strings match, and stories260K never writes
// an address, the pattern or 20 characters before its budget runs out: without a searched
// completion every run is cut mid-string at max_tokens.

#[test]
fn closing_completes_an_email_the_model_never_finishes() {
    let Some(b) = backend() else { return };
    let email = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 8},
            "email": {"type": "string", "format": "email"},
        },
        "required": ["name", "email"],
        "additionalProperties": false,
    });
    closes_validly("email", &b, &email, 34, |v| {
        let e = v["email"].as_str().unwrap_or("");
        let (local, domain) = e.split_once('@').unwrap_or(("", ""));
        v["name"].as_str().is_some_and(|n| n.chars().count() <= 8)
            && !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
    });
}

#[test]
fn closing_completes_a_pattern_string() {
    let Some(b) = backend() else { return };
    let re = regex::Regex::new("^[A-Z]{3}-[0-9]{3,6}$").unwrap();
    let pattern = json!({
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": re.as_str()}, "n": {"type": "integer"}},
        "required": ["code", "n"],
    });
    closes_validly("pattern", &b, &pattern, 34, |v| {
        // `-0` is a JSON integer too (serde_json reads it as a float to keep the sign).
        let whole = v["n"].as_f64().is_some_and(|n| n.fract() == 0.0);
        v["code"].as_str().is_some_and(|c| re.is_match(c)) && whole
    });
}

#[test]
fn closing_completes_a_min_length_string() {
    let Some(b) = backend() else { return };
    let long = json!({
        "type": "object",
        "properties": {"story": {"type": "string", "minLength": 20}, "tags": {"type": "array", "items": {"type": "string", "minLength": 2}}},
        "required": ["story", "tags"],
    });
    closes_validly("min-length", &b, &long, 40, |v| {
        v["story"].as_str().is_some_and(|s| s.chars().count() >= 20)
            && v["tags"].as_array().is_some_and(|t| {
                t.iter()
                    .all(|x| x.as_str().is_some_and(|s| s.chars().count() >= 2))
            })
    });
}
