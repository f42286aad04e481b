use super::*;
use crate::backend::SamplingOptions;

fn spec(body: Value) -> Result<Option<ToolSpec>, ApiError> {
    let map = body.as_object().cloned().unwrap_or_default();
    tool_spec(&Fields::new(&map, ""))
}

fn weather() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

#[test]
fn choice_variants() {
    let s = spec(json!({"tools": weather()})).unwrap().unwrap();
    assert_eq!(s.choice, ToolChoice::Auto);
    assert_eq!(s.parallel, None);
    assert!(s.parallel_for(ToolFormat::Hermes));
    assert!(!s.parallel_for(ToolFormat::Generic));
    let s =
        spec(json!({"tools": weather(), "tool_choice": "required", "parallel_tool_calls": false}))
            .unwrap()
            .unwrap();
    assert_eq!(s.choice, ToolChoice::Required);
    assert_eq!(s.parallel, Some(false));
    assert!(!s.parallel_for(ToolFormat::Hermes));
    let s = spec(json!({"tools": weather(), "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}))
        .unwrap()
        .unwrap();
    assert_eq!(s.choice, ToolChoice::Named("get_weather".into()));
    assert!(spec(json!({"tools": weather(), "tool_choice": "none"}))
        .unwrap()
        .is_none());
}

#[test]
fn bad_choices_name_the_field() {
    let e = spec(json!({"tools": weather(), "tool_choice": {"type": "function", "function": {"name": "nope"}}}))
        .unwrap_err();
    assert_eq!(
        serde_json::to_value(e.openai_body()).unwrap()["error"]["param"],
        "tool_choice"
    );
    let e = spec(json!({"tool_choice": "required"})).unwrap_err();
    assert_eq!(e.status(), 400);
    let e = spec(
        json!({"tools": [{"type": "function", "function": {"name": "f",
        "parameters": {"type": "object", "not": {}}}}]}),
    )
    .unwrap_err();
    assert_eq!(
        serde_json::to_value(e.openai_body()).unwrap()["error"]["param"],
        "tools.[0].function.parameters.not"
    );
}

#[test]
fn formats_from_templates() {
    assert_eq!(ToolFormat::detect(None), ToolFormat::Generic);
    assert_eq!(
        ToolFormat::detect(Some("{% if tools %}<tool_call>{% endif %}")),
        ToolFormat::Hermes
    );
    assert_eq!(
        ToolFormat::detect(Some("[TOOL_CALLS] {{ x }}")),
        ToolFormat::Mistral
    );
    assert_eq!(
        ToolFormat::detect(Some("<|python_tag|>")),
        ToolFormat::Llama3
    );
    assert_eq!(
        ToolFormat::detect(Some("<start_of_turn>user")),
        ToolFormat::Generic
    );
}

#[test]
fn grammar_embeds_parameter_schema() {
    let s =
        spec(json!({"tools": weather(), "tool_choice": "required", "parallel_tool_calls": false}))
            .unwrap()
            .unwrap();
    let g = s.grammar(ToolFormat::Hermes);
    assert!(g.starts_with("start: calls\n"), "{g}");
    assert!(g.contains("\"<tool_call>\\n\" %json {"), "{g}");
    assert!(g.contains("\"const\":\"get_weather\""), "{g}");
    assert!(g.contains("\"required\":[\"city\"]"), "{g}");
    let auto = spec(json!({"tools": weather()}))
        .unwrap()
        .unwrap()
        .grammar(ToolFormat::Generic);
    assert!(
        auto.contains("TEXT: /(?s:.+)/ & ~/(?s:<tool_call>.*)/"),
        "{auto}"
    );
    let m = s.grammar(ToolFormat::Mistral);
    assert!(m.contains("\"[TOOL_CALLS]\" %json"), "{m}");
    assert!(m.contains("\"maxItems\":1"), "{m}");
}

#[test]
fn parses_each_format() {
    let (c, calls) = parse_tool_calls(
        ToolFormat::Hermes,
        "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>",
    );
    assert_eq!(c.as_deref(), Some("Let me check."));
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].arguments, "{\"city\":\"Oslo\"}");
    let (c, calls) = parse_tool_calls(
        ToolFormat::Llama3,
        "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}",
    );
    assert_eq!(c, None);
    assert_eq!(calls[0].name, "get_weather");
    let (_, calls) = parse_tool_calls(
        ToolFormat::Mistral,
        "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {}}, {\"name\": \"b\", \"arguments\": {\"x\": 1}}]",
    );
    assert_eq!(
        calls.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let (c, calls) = parse_tool_calls(ToolFormat::Hermes, "just text");
    assert_eq!((c.as_deref(), calls.len()), (Some("just text"), 0));
}

#[test]
fn stream_passes_text_and_holds_calls() {
    let mut s = ToolStream::new(ToolFormat::Generic);
    assert_eq!(s.push("<tool"), None);
    assert_eq!(s.push("_call>\n{\"name\": \"f\", "), None);
    assert_eq!(s.push("\"arguments\": {}}\n</tool_call>"), None);
    let (c, calls) = s.finish();
    assert_eq!((c, calls.len()), (None, 1));
    let mut s = ToolStream::new(ToolFormat::Generic);
    assert_eq!(s.push("<"), None);
    assert_eq!(s.push("b>hi"), Some("<b>hi".to_string()));
    assert_eq!(s.push(" there"), Some(" there".to_string()));
    assert_eq!(s.finish(), (None, Vec::new()));
}

#[test]
fn generic_rewrites_tool_turns() {
    let mut req = GenerationRequest {
        model: "m".into(),
        input: PromptInput::Chat {
            messages: vec![
                json!({"role": "user", "content": "Weather in Paris?"}),
                json!({"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}),
                json!({"role": "tool", "tool_call_id": "call_1", "content": "22 C"}),
            ],
            tools: Some(weather().as_array().cloned().unwrap_or_default()),
        },
        max_tokens: None,
        sampling: SamplingOptions::default(),
        stop: Vec::new(),
        logprobs: None,
        constraint: None,
    };
    let s = spec(json!({"tools": weather()})).unwrap();
    prepare_chat(&mut req, s.as_ref(), ToolFormat::Generic);
    let PromptInput::Chat { messages, tools } = &req.input else {
        panic!("not chat")
    };
    assert!(tools.is_none());
    let roles: Vec<&str> = messages.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert!(messages[2]["content"]
        .as_str()
        .unwrap_or("")
        .contains("\"city\":\"Paris\""));
    assert!(messages[3]["content"]
        .as_str()
        .unwrap_or("")
        .contains("<tool_response>\n22 C"));
    assert!(matches!(&req.constraint, Some(c) if c.param == "tools"));
}
