//! `hanlin generate` with an output constraint, on a random-weight model: whatever the weights,
//! the output must follow the schema / regex / grammar; unenforceable schemas and conflicting
//! flags fail before any model is loaded.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A synthetic llama-shaped model with the stories260K vocabulary (byte tokens included, so any
/// JSON can be spelled), written to `dir`.
fn synthetic_model(dir: &Path) -> Option<PathBuf> {
    let vocab = hanlin_test_support::stories_vocab()?;
    let shape = hanlin_test_support::shapes().into_iter().next()?;
    let path = dir.join("synthetic-llama-f16.gguf");
    std::fs::write(&path, hanlin_test_support::synthetic_f16(&shape, &vocab, 7)).unwrap();
    Some(path)
}

fn generate(model: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hanlin"))
        .args(["generate", "--prompt", "Once upon a time", "--json"])
        .args([
            "--threads",
            "1",
            "--ctx",
            "256",
            "--max-tokens",
            "64",
            "--seed",
            "3",
        ])
        .arg("--model")
        .arg(model)
        .args(extra)
        .env("HANLIN_HOME", model.parent().unwrap())
        .output()
        .unwrap()
}

/// The generated text of a successful `--json` run.
fn text(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(v["finish_reason"], "stop", "{v}");
    v["text"].as_str().unwrap().to_string()
}

const SCHEMA: &str = r#"{"type": "object",
    "properties": {"ok": {"type": "boolean"}, "color": {"enum": ["red", "green"]}},
    "required": ["ok", "color"], "additionalProperties": false}"#;

/// Checks `v` against [`SCHEMA`] by hand (the schema is small enough to spell out).
fn valid(v: &Value) -> bool {
    let Some(obj) = v.as_object() else {
        return false;
    };
    obj.len() == 2
        && obj.get("ok").is_some_and(Value::is_boolean)
        && obj
            .get("color")
            .and_then(Value::as_str)
            .is_some_and(|c| c == "red" || c == "green")
}

#[test]
fn json_schema_output_parses_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let Some(model) = synthetic_model(dir.path()) else {
        return;
    };
    // Inline, and from a file.
    let file = dir.path().join("schema.json");
    std::fs::write(&file, SCHEMA).unwrap();
    for arg in [SCHEMA.to_string(), file.display().to_string()] {
        let out = text(&generate(&model, &["--json-schema", &arg]));
        let v: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: not JSON: {out:?}"));
        assert!(valid(&v), "{v}");
    }
}

#[test]
fn regex_and_grammar_outputs_match() {
    let dir = tempfile::tempdir().unwrap();
    let Some(model) = synthetic_model(dir.path()) else {
        return;
    };
    let out = text(&generate(&model, &["--regex", "[ab]{3}-[0-9]"]));
    let b = out.as_bytes();
    assert!(
        b.len() == 5
            && b[..3].iter().all(|c| *c == b'a' || *c == b'b')
            && b[3] == b'-'
            && b[4].is_ascii_digit(),
        "{out:?}"
    );
    let lark = dir.path().join("yesno.lark");
    std::fs::write(&lark, "start: \"yes\" | \"no\"\n").unwrap();
    let out = text(&generate(&model, &["--grammar", lark.to_str().unwrap()]));
    assert!(out == "yes" || out == "no", "{out:?}");
}

#[test]
fn unenforceable_schema_and_conflicting_flags_fail() {
    let dir = tempfile::tempdir().unwrap();
    // No model is needed: these fail before loading one.
    let model = dir.path().join("absent.gguf");
    let out = generate(
        &model,
        &[
            "--json-schema",
            r#"{"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": true}}}"#,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("uniqueItems") && stderr.contains("--json-schema.properties.tags"),
        "{stderr}"
    );
    let out = generate(&model, &["--format", "json", "--regex", "x"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be used with"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = generate(&model, &["--json-schema", "{not json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not JSON"));
}

#[test]
fn chat_replies_follow_the_json_schema() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let Some(model) = synthetic_model(dir.path()) else {
        return;
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_hanlin"))
        .args([
            "chat",
            "--threads",
            "1",
            "--ctx",
            "256",
            "--max-tokens",
            "64",
        ])
        .args(["--seed", "5", "--json-schema", SCHEMA, "--model"])
        .arg(&model)
        .env("HANLIN_HOME", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Hello\nAgain\n/exit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each reply follows a `>>> ` prompt on its own line.
    let replies: Vec<&str> = stdout
        .split(">>> ")
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    assert_eq!(replies.len(), 2, "{stdout}");
    for r in replies {
        let v: Value = serde_json::from_str(r).unwrap_or_else(|e| panic!("{e}: {r:?}"));
        assert!(valid(&v), "{v}");
    }
}
