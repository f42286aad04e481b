//! Golden test: real models' chat templates rendered by minijinja must equal, byte for
//! byte, what HF transformers (jinja2) rendered — `reference/chat_template_renders.json`
//! in the shared test data, 8 templates × 6 conversations, including the conversations a
//! template refuses with `raise_exception`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hanlin_tokenizer::template::{ChatTemplate, RenderRequest, SpecialTokens, TemplateError};
use serde_json::Value;

fn testdata() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata");
    dir.join("reference/chat_template_renders.json")
        .is_file()
        .then_some(dir)
}

/// The special tokens each model's tokenizer defines (its `tokenizer_config.json`),
/// which transformers passed to the template as `bos_token` / `eos_token`.
fn special_tokens(template: &str) -> SpecialTokens {
    let (bos, eos) = match template {
        "Qwen-Qwen2.5-7B-Instruct" | "Qwen-Qwen3-0.6B" => ("", "<|im_end|>"),
        "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B" => {
            ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>")
        }
        "google-gemma-2-2b-it" | "google-gemma-4-31B-it" => ("<bos>", "<eos>"),
        "meta-llama-Llama-3.1-8B-Instruct" | "meta-llama-Llama-3.2-3B-Instruct" => {
            ("<|begin_of_text|>", "<|eot_id|>")
        }
        "microsoft-Phi-3.5-mini-instruct" => ("<s>", "<|endoftext|>"),
        other => panic!("no special tokens known for template {other}"),
    };
    SpecialTokens {
        bos_token: bos.to_owned(),
        eos_token: eos.to_owned(),
    }
}

/// The reference was rendered on 2026-11-29 (Llama 3.2 prints `strftime_now("%d %b %Y")`),
/// so `strftime_now` is pinned to noon UTC that day.
fn reference_day() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_953_600)
}

fn request(case: &Value) -> RenderRequest {
    let messages = case["messages"].as_array().cloned().unwrap_or_default();
    let mut req = RenderRequest::new(messages);
    req.tools = case["tools"].as_array().cloned();
    req.add_generation_prompt = case["add_generation_prompt"].as_bool().unwrap_or(false);
    req.now = Some(reference_day());
    req
}

/// Shows where two renders first differ, with a little context.
fn first_difference(want: &str, got: &str) -> String {
    let at = want
        .char_indices()
        .zip(got.chars())
        .find(|((_, a), b)| a != b)
        .map(|((i, _), _)| i)
        .unwrap_or(want.len().min(got.len()));
    let from = want[..at]
        .char_indices()
        .rev()
        .nth(40)
        .map_or(0, |(i, _)| i);
    format!(
        "first difference at byte {at}:\n  want: {:?}\n  got:  {:?}",
        &want[from..],
        got.get(from..).unwrap_or(got)
    )
}

#[test]
fn renders_match_transformers() {
    let Some(dir) = testdata() else {
        eprintln!("skipping chat template golden test: ../shared/testdata is absent");
        return;
    };
    let text = std::fs::read_to_string(dir.join("reference/chat_template_renders.json")).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    let renders = reference["renders"].as_object().unwrap();

    let (mut total, mut identical, mut errors_expected, mut errors_matched) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for (name, by_case) in renders {
        let source = std::fs::read_to_string(dir.join(format!("templates/{name}.jinja"))).unwrap();
        let template = ChatTemplate::new(&source, special_tokens(name))
            .unwrap_or_else(|e| panic!("{name}: template does not compile: {e}"));
        for case in cases {
            let case_name = case["name"].as_str().unwrap();
            let expected = &by_case[case_name];
            total += 1;
            let got = template.render(&request(case));
            if expected["ok"].as_bool().unwrap() {
                let want = expected["text"].as_str().unwrap();
                match got {
                    Ok(got) if got == want => identical += 1,
                    Ok(got) => failures.push(format!(
                        "{name} / {case_name}: {}",
                        first_difference(want, &got)
                    )),
                    Err(e) => failures.push(format!("{name} / {case_name}: unexpected error: {e}")),
                }
            } else {
                errors_expected += 1;
                let want = expected["error"].as_str().unwrap();
                match got {
                    Err(TemplateError::Raised(msg)) if format!("TemplateError: {msg}") == want => {
                        errors_matched += 1
                    }
                    other => failures.push(format!(
                        "{name} / {case_name}: expected `{want}`, got {other:?}"
                    )),
                }
            }
        }
    }
    let renders_expected = total - errors_expected;
    eprintln!(
        "chat templates: {identical}/{renders_expected} renders identical, \
         {errors_matched}/{errors_expected} expected errors"
    );
    assert!(total > 0, "reference has no cases");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
