//! `hanlin tokenize` against llama.cpp's own tokenizer test vectors.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

fn vocab_dir() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/vocab");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared/testdata not found");
        None
    }
}

fn tokenize(model: &PathBuf, extra: &[&str], text: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hanlin"))
        .arg("tokenize")
        .arg("--model")
        .arg(model)
        .args(extra)
        .arg("--")
        .arg(text)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn matches_vocab_vectors_without_specials() {
    let Some(dir) = vocab_dir() else { return };
    for name in ["llama-spm", "qwen2", "llama-bpe", "bert-bge"] {
        let model = dir.join(format!("ggml-vocab-{name}.gguf"));
        let inp = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.inp"))).unwrap();
        let out = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.out"))).unwrap();
        let texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
        // A few non-empty cases per vocabulary keep the test quick; the library test runs all.
        for (text, expected) in texts
            .iter()
            .zip(out.lines())
            .filter(|(t, _)| !t.is_empty())
            .take(6)
        {
            let (ok, stdout) = tokenize(&model, &["--no-special"], text);
            assert!(ok, "{name}: {text:?}");
            let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            let got: Vec<String> = v["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.to_string())
                .collect();
            let want: Vec<&str> = expected.split_whitespace().collect();
            assert_eq!(got, want, "{name}: {text:?}");
        }
    }
}

#[test]
fn adds_bos_by_default_and_parses_special_on_request() {
    let Some(dir) = vocab_dir() else { return };
    let model = dir.join("ggml-vocab-llama-spm.gguf");
    let (_, plain) = tokenize(&model, &[], "Hello");
    let (_, none) = tokenize(&model, &["--no-special"], "Hello");
    let plain: serde_json::Value = serde_json::from_str(&plain).unwrap();
    let none: serde_json::Value = serde_json::from_str(&none).unwrap();
    assert_eq!(plain["tokens"][0], 1, "llama-spm adds BOS = 1");
    assert_eq!(
        plain["tokens"].as_array().unwrap().len(),
        none["tokens"].as_array().unwrap().len() + 1
    );
    let (_, parsed) = tokenize(&model, &["--no-special", "--parse-special"], "</s>");
    let parsed: serde_json::Value = serde_json::from_str(&parsed).unwrap();
    assert_eq!(parsed["tokens"], serde_json::json!([2]));
}

#[test]
fn missing_model_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_hanlin"))
        .args(["tokenize", "--model", "/nonexistent/model.gguf", "hi"])
        .env(
            "HANLIN_HOME",
            std::env::temp_dir().join("hanlin-tokenize-test-home"),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("model.gguf") || err.contains("nonexistent"),
        "{err}"
    );
}
