//! Unit tests for the chat-template environment; expected strings are what jinja2 3.1
//! with transformers' settings produces for the same source.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;

use super::*;

fn special() -> SpecialTokens {
    SpecialTokens {
        bos_token: "<bos>".into(),
        eos_token: "<eos>".into(),
    }
}

fn render_src(source: &str, req: &RenderRequest) -> Result<String, TemplateError> {
    ChatTemplate::new(source, special())?.render(req)
}

fn render_ok(source: &str) -> String {
    render_src(source, &RenderRequest::default()).unwrap()
}

fn conversation() -> Vec<serde_json::Value> {
    vec![
        json!({"role": "system", "content": "You are terse."}),
        json!({"role": "user", "content": "  Hi there  "}),
        json!({"role": "assistant", "content": "Hello."}),
    ]
}

#[test]
fn raise_exception_becomes_raised_error() {
    let err = render_src(
        "before{{ raise_exception('No system role, ' + 'sorry') }}after",
        &RenderRequest::default(),
    )
    .unwrap_err();
    match &err {
        TemplateError::Raised(msg) => assert_eq!(msg, "No system role, sorry"),
        other => panic!("expected Raised, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "chat template rejected the conversation: No system role, sorry"
    );
}

#[test]
fn raise_exception_inside_macro_and_loop() {
    let src = "{% macro check(m) %}{% if m.role == 'tool' %}{{ raise_exception('no tools: ' ~ m.name) }}{% endif %}{% endmacro %}\
               {% for m in messages %}{{ check(m) }}{% endfor %}";
    let req = RenderRequest::new(vec![
        json!({"role": "tool", "name": "calc", "content": "1"}),
    ]);
    match render_src(src, &req) {
        Err(TemplateError::Raised(msg)) => assert_eq!(msg, "no tools: calc"),
        other => panic!("expected Raised, got {other:?}"),
    }
}

#[test]
fn strftime_now_formats_the_request_instant() {
    let req = RenderRequest {
        // 2024-07-26T13:25:09Z
        now: Some(UNIX_EPOCH + Duration::from_secs(1_722_000_309)),
        ..RenderRequest::default()
    };
    let out = render_src(
        "{% if strftime_now is defined %}{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%dT%H:%M:%S') }}{% endif %}",
        &req,
    )
    .unwrap();
    assert_eq!(out, "26 Jul 2024|2024-07-26T13:25:09");
}

#[test]
fn strftime_now_defaults_to_the_clock() {
    let out = render_ok("{{ strftime_now('%Y') }}");
    let year: i64 = out.parse().unwrap();
    assert!((2024..3000).contains(&year), "implausible year {out}");
}

#[test]
fn gemma_fallback_matches_gemma3_official_format() {
    let tmpl = ChatTemplate::for_model(None, "gemma3", special()).unwrap();
    let mut req = RenderRequest::new(conversation());
    assert_eq!(
        tmpl.render(&req).unwrap(),
        "<bos><start_of_turn>user\nYou are terse.\n\nHi there<end_of_turn>\n\
         <start_of_turn>model\nHello.<end_of_turn>\n"
    );
    req.add_generation_prompt = true;
    req.messages.push(json!({"role": "user", "content": "Bye"}));
    assert_eq!(
        tmpl.render(&req).unwrap(),
        "<bos><start_of_turn>user\nYou are terse.\n\nHi there<end_of_turn>\n\
         <start_of_turn>model\nHello.<end_of_turn>\n\
         <start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
    );
}

#[test]
fn gemma_fallback_without_system_and_with_parts() {
    let tmpl = ChatTemplate::for_model(Some("   "), "Gemma2", special()).unwrap();
    let mut req = RenderRequest::new(vec![json!({"role": "user", "content": [
        {"type": "image"},
        {"type": "text", "text": " Describe. "}
    ]})]);
    req.add_generation_prompt = true;
    assert_eq!(
        tmpl.render(&req).unwrap(),
        "<bos><start_of_turn>user\n<start_of_image>Describe.<end_of_turn>\n<start_of_turn>model\n"
    );
    let bad = RenderRequest::new(vec![
        json!({"role": "user", "content": "a"}),
        json!({"role": "user", "content": "b"}),
    ]);
    assert!(matches!(tmpl.render(&bad), Err(TemplateError::Raised(m)) if m.contains("alternate")));
}

#[test]
fn chatml_fallback_for_other_architectures() {
    let tmpl = ChatTemplate::for_model(None, "llama", special()).unwrap();
    let mut req = RenderRequest::new(conversation());
    req.add_generation_prompt = true;
    assert_eq!(
        tmpl.render(&req).unwrap(),
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\n  Hi there  <|im_end|>\n\
         <|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>assistant\n"
    );
    let req = RenderRequest::new(vec![
        json!({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"type": "function", "function": {"name": "f", "arguments": {"x": 1}}},
            {"type": "function", "function": {"name": "g", "arguments": "{\"y\":2}"}}
        ]}),
    ]);
    assert_eq!(
        tmpl.render(&req).unwrap(),
        "<|im_start|>user\nab<|im_end|>\n<|im_start|>assistant\n\
         <tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>\n\
         <tool_call>\n{\"name\": \"g\", \"arguments\": {\"y\":2}}\n</tool_call><|im_end|>\n"
    );
    assert_eq!(builtin_template("qwen2"), builtin::CHATML);
    assert_eq!(builtin_template("gemma"), builtin::GEMMA);
}

#[test]
fn for_model_prefers_the_gguf_template() {
    let tmpl = ChatTemplate::for_model(Some("{{ bos_token }}X"), "gemma3", special()).unwrap();
    assert_eq!(tmpl.render(&RenderRequest::default()).unwrap(), "<bos>X");
    assert!(matches!(
        ChatTemplate::for_model(Some("{% if %}"), "gemma3", special()),
        Err(TemplateError::Syntax { .. })
    ));
}

#[test]
fn malformed_template_reports_the_line() {
    let src = "{{ bos_token }}\n{% for m in messages %}\n{{ m.content }\n{% endfor %}\n";
    let err = ChatTemplate::new(src, special()).unwrap_err();
    match &err {
        TemplateError::Syntax { line, message } => {
            assert_eq!(*line, Some(3));
            assert!(message.contains("syntax error"), "{message}");
        }
        other => panic!("expected Syntax, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.starts_with("chat template syntax error at line 3: "),
        "{text}"
    );

    let err = ChatTemplate::new("{% for m in messages %}{{ m }}", special()).unwrap_err();
    assert!(matches!(err, TemplateError::Syntax { .. }), "{err}");
}

#[test]
fn render_errors_report_the_line() {
    let err = render_src("ok\n{{ 1 + 'a' }}", &RenderRequest::default()).unwrap_err();
    match err {
        TemplateError::Render { line, .. } => assert_eq!(line, Some(2)),
        other => panic!("expected Render, got {other:?}"),
    }
}

#[test]
fn tojson_is_python_json_dumps() {
    let mut req = RenderRequest::default();
    req.extra.insert(
        "x".into(),
        json!({"name": "天气", "args": [1, 2.5, true, null, "a\"b\n"], "empty": {}}),
    );
    let out = render_src("{{ x | tojson }}", &req).unwrap();
    assert_eq!(
        out,
        r#"{"name": "天气", "args": [1, 2.5, true, null, "a\"b\n"], "empty": {}}"#
    );
    let out = render_src("{{ x.args | tojson(indent=2) }}", &req).unwrap();
    assert_eq!(out, "[\n  1,\n  2.5,\n  true,\n  null,\n  \"a\\\"b\\n\"\n]");
    let out = render_src(
        "{{ x | tojson(ensure_ascii=true, separators=(',', ':'), sort_keys=true) }}",
        &req,
    )
    .unwrap();
    assert_eq!(
        out,
        r#"{"args":[1,2.5,true,null,"a\"b\n"],"empty":{},"name":"\u5929\u6c14"}"#
    );
    // No HTML escaping, unlike jinja2's and minijinja's stock tojson.
    assert_eq!(render_ok("{{ '<a&b>' | tojson }}"), r#""<a&b>""#);
}

#[test]
fn values_print_like_python() {
    assert_eq!(
        render_ok("{{ none }}|{{ true }}|{{ false }}|{{ 1.0 }}|{{ 1e16 }}|{{ [1, 'a', none] }}|{{ {'k': true} }}|{{ undefined_var }}|"),
        "None|True|False|1.0|1e+16|[1, 'a', None]|{'k': True}||"
    );
    assert_eq!(render_ok("{{ [none, true] | join(',') }}"), "None,True");
    assert_eq!(render_ok("{{ none | string }}"), "None");
}

#[test]
fn python_methods_and_filters() {
    assert_eq!(
        render_ok("{{ '  a b  '.strip() }}|{{ 'xxaxx'.lstrip('x') }}|{{ 'a\\n'.rstrip() }}"),
        "a b|axx|a"
    );
    assert_eq!(
        render_ok("{{ 'a</think>b</think>c'.split('</think>')[-1] }}"),
        "c"
    );
    assert_eq!(render_ok("{{ ' a  b '.split() | length }}"), "2");
    assert_eq!(
        render_ok("{{ 'hello'.startswith('he') }} {{ 'hello'.endswith(('x', 'lo')) }}"),
        "True True"
    );
    assert_eq!(render_ok("{{ '\u{1f} x ' | trim }}"), "x");
    let mut req = RenderRequest::default();
    req.extra.insert("d".into(), json!({"b": 1, "a": 2}));
    assert_eq!(
        render_src(
            "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{{ d.get('zz', 'dflt') }}|{{ d.get('zz') }}",
            &req
        )
        .unwrap(),
        "b=1;a=2;dflt|None"
    );
    assert_eq!(
        render_src("{% for k, v in d | items %}{{ k }}{% endfor %}|{% for k, v in d | dictsort %}{{ k }}{% endfor %}", &req).unwrap(),
        "ba|ab"
    );
}

#[test]
fn jinja_features_used_by_chat_templates() {
    let req = RenderRequest::new(vec![
        json!({"role": "user", "content": "1"}),
        json!({"role": "assistant", "content": "2"}),
        json!({"role": "user", "content": "3"}),
    ]);
    let src = "{%- set ns = namespace(last=-1) %}\n\
               {%- for m in messages[::-1] %}\n\
               {%- if ns.last == -1 and m.role == 'user' %}{% set ns.last = messages|length - 1 - loop.index0 %}{% endif %}\n\
               {%- endfor %}\n\
               last={{ ns.last }}\n\
               {% for m in messages %}\n\
               {% if m.role == 'assistant' %}{% continue %}{% endif %}\n\
               {% if loop.index > 2 %}{% break %}{% endif %}\n\
               [{{ m.content }}]\n\
               {% endfor %}\n";
    assert_eq!(render_src(src, &req).unwrap(), "last=2\n[1]\n");
}

#[test]
fn trim_and_lstrip_blocks_like_transformers() {
    // lstrip_blocks removes the indentation before a block tag; trim_blocks the newline
    // after it; a trailing newline at the end of the source is dropped.
    let src = "<s>\n    {% if true %}\n    body\n    {% endif %}\n</s>\n";
    assert_eq!(render_ok(src), "<s>\n    body\n</s>");
}

#[test]
fn undefined_is_lenient_like_jinja2() {
    let req = RenderRequest::new(vec![json!({"role": "user", "content": "x"})]);
    let src = "[{{ messages[0].missing }}]{% if messages[0].tool_calls %}T{% else %}F{% endif %}\
               {% if messages[0].missing is defined %}D{% else %}U{% endif %}\
               {% for x in nothing %}{{ x }}{% endfor %}";
    assert_eq!(render_src(src, &req).unwrap(), "[]FU");
}

#[test]
fn type_tests_follow_jinja2() {
    let out = render_ok(
        "{{ 'a' is sequence }}{{ {} is sequence }}{{ 1 is sequence }}|\
         {{ 'a' is iterable }}{{ none is iterable }}|\
         {{ true is number }}{{ true is boolean }}{{ {} is mapping }}{{ [] is mapping }}",
    );
    assert_eq!(out, "TrueTrueFalse|TrueFalse|TrueTrueTrueFalse");
}

#[test]
fn generation_blocks_render_their_body() {
    let src = "{% for m in messages %}{% if m.role == 'assistant' %}\n{% generation %}\n{{ m.content }}\n{% endgeneration %}\n{% endif %}{% endfor %}";
    let req = RenderRequest::new(conversation());
    assert_eq!(render_src(src, &req).unwrap(), "Hello.\n");
}

#[test]
fn reserved_variables_cannot_be_overridden() {
    let mut req = RenderRequest::default();
    req.extra.insert("bos_token".into(), json!("x"));
    let err = render_src("{{ bos_token }}", &req).unwrap_err();
    assert!(
        matches!(&err, TemplateError::ReservedVariable(k) if k == "bos_token"),
        "{err}"
    );
}

#[test]
fn extra_variables_and_tools_reach_the_template() {
    let mut req = RenderRequest::default();
    req.extra.insert("enable_thinking".into(), json!(false));
    let src = "{{ enable_thinking is defined and enable_thinking is false }}|{{ tools is none }}|{{ documents is defined }}";
    assert_eq!(render_src(src, &req).unwrap(), "True|True|True");
    req.tools = Some(vec![json!({"type": "function"})]);
    assert_eq!(render_src("{{ tools | length }}", &req).unwrap(), "1");
}

#[test]
fn chat_template_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ChatTemplate>();
}
