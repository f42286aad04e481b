//! `hanlin inspect` on the real stories260K GGUF from ../shared/testdata and on a corrupted
//! copy of it (skipped when the shared folder is absent).

use std::path::PathBuf;
use std::process::{Command, Output};

fn stories() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/models/stories260K/stories260K-f32.gguf");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipping: {} not found", p.display());
        None
    }
}

fn hanlin(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hanlin"))
        .arg("inspect")
        .args(args)
        .output()
        .expect("run hanlin")
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("UTF-8 output")
}

#[test]
fn prints_header_metadata_tensors_and_summary() {
    let Some(path) = stories() else { return };
    let out = hanlin(&[path.as_os_str()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    for needle in [
        "GGUF version  3",
        "alignment     32",
        "metadata (24 keys)",
        "general.architecture",
        "= \"llama\"",
        "llama.attention.layer_norm_rms_epsilon",
        "1e-5",
        "tokenizer.ggml.add_bos_token",
        "tensors (47)",
        "token_embd.weight",
        "64 × 512",
        "32,768",
        "131,072",
    ] {
        assert!(
            stdout.contains(needle),
            "output lacks {needle:?}:\n{stdout}"
        );
    }
    // The 512-entry vocab is abbreviated to its first items plus a count.
    let tokens = stdout
        .lines()
        .find(|l| l.contains("tokenizer.ggml.tokens"))
        .unwrap();
    assert!(
        tokens.contains("[str]") && tokens.contains("512"),
        "{tokens}"
    );
    assert!(tokens.contains("\"<unk>\", \"<s>\", \"</s>\""), "{tokens}");
    assert!(tokens.contains("… (504 more)"), "{tokens}");
    // Summary: every tensor is F32, so params × 4 = bytes.
    let summary = &stdout[stdout.find("\nsummary").unwrap()..];
    assert!(summary.contains("tensors       47"), "{summary}");
    let params_line = summary.lines().find(|l| l.contains("parameters")).unwrap();
    let params: u64 = params_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap();
    let bytes_line = summary
        .lines()
        .find(|l| l.contains("tensor bytes"))
        .unwrap();
    let bytes: u64 = bytes_line
        .split_whitespace()
        .nth(2)
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap();
    assert_eq!(bytes, params * 4);
    assert!(
        summary.contains("F32") && summary.contains("100.0%"),
        "{summary}"
    );
}

#[test]
fn full_prints_every_item() {
    let Some(path) = stories() else { return };
    let out = hanlin(&[path.as_os_str(), "--full".as_ref()]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    let tokens = stdout
        .lines()
        .find(|l| l.contains("tokenizer.ggml.tokens"))
        .unwrap();
    assert!(!tokens.contains("more)"), "{tokens}");
    assert!(tokens.matches("\", \"").count() >= 511, "{tokens}");
}

#[test]
fn json_has_the_same_facts() {
    let Some(path) = stories() else { return };
    let out = hanlin(&[path.as_os_str(), "--json".as_ref()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["version"], 3);
    assert_eq!(doc["alignment"], 32);
    let meta = doc["metadata"].as_array().unwrap();
    assert_eq!(meta.len(), 24);
    let arch = meta
        .iter()
        .find(|m| m["key"] == "general.architecture")
        .unwrap();
    assert_eq!(arch["value"], "llama");
    assert_eq!(arch["type"], "str");
    let toks = meta
        .iter()
        .find(|m| m["key"] == "tokenizer.ggml.tokens")
        .unwrap();
    assert_eq!(toks["count"], 512);
    assert_eq!(toks["element_type"], "str");
    assert_eq!(toks["truncated"], true);
    assert_eq!(toks["value"][0], "<unk>");
    let tensors = doc["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 47);
    let embd = &tensors[0];
    assert_eq!(embd["name"], "token_embd.weight");
    assert_eq!(embd["type"], "F32");
    assert_eq!(embd["shape"], serde_json::json!([64, 512]));
    assert_eq!(embd["n_elements"], 32768);
    assert_eq!(embd["n_bytes"], 131072);
    let n_params: u64 = tensors
        .iter()
        .map(|t| t["n_elements"].as_u64().unwrap())
        .sum();
    assert_eq!(doc["summary"]["n_params"], n_params);
    assert_eq!(doc["summary"]["n_bytes"], n_params * 4);
    assert_eq!(doc["summary"]["by_type"][0]["type"], "F32");
    assert_eq!(doc["summary"]["by_type"][0]["n_tensors"], 47);

    let full = hanlin(&[path.as_os_str(), "--json".as_ref(), "--full".as_ref()]);
    let doc: serde_json::Value = serde_json::from_slice(&full.stdout).unwrap();
    let toks = doc["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "tokenizer.ggml.tokens")
        .cloned();
    assert_eq!(toks.unwrap()["value"].as_array().unwrap().len(), 512);
}

#[test]
fn corrupt_files_fail_with_the_reason() {
    let Some(path) = stories() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(&path).unwrap();

    // Cut off the last tensor's data.
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let out = hanlin(&[cut.as_os_str()]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("error: cannot inspect"), "{stderr}");
    assert!(stderr.contains("cut.gguf"), "{stderr}");
    assert!(stderr.contains("past the end of the file"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing printed for a bad file");

    // Not a GGUF file at all.
    let mut bad = bytes.clone();
    bad[..4].copy_from_slice(b"GGML");
    let bad_path = dir.path().join("bad.gguf");
    std::fs::write(&bad_path, &bad).unwrap();
    let out = hanlin(&[bad_path.as_os_str(), "--json".as_ref()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a GGUF file"),
        "{}",
        text(&out.stderr)
    );

    let out = hanlin(&[dir.path().join("missing.gguf").as_os_str()]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("missing.gguf"));
}
