//! `hanlin bench --json` on a tiny real model: the report's fields exist and make sense.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

fn stories260k() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/models/stories260K/stories260K-f32.gguf");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared/testdata not found");
        None
    }
}

fn bench(model: &PathBuf, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hanlin"))
        .arg("bench")
        .arg("--model")
        .arg(model)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn json_report_has_positive_rates() {
    let Some(model) = stories260k() else { return };
    let out = bench(
        &model,
        &[
            "--prompt-tokens",
            "32",
            "--gen-tokens",
            "8",
            "--reps",
            "1",
            "--threads",
            "1",
            "--json",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "prompt_tokens_per_s",
        "prompt_tokens_per_s_min",
        "prompt_tokens_per_s_max",
        "gen_tokens_per_s",
        "gen_tokens_per_s_min",
        "gen_tokens_per_s_max",
        "file_size_bytes",
        "weight_bytes_per_token",
        "gen_gb_per_s",
        "gen_gflop_per_s",
        "bandwidth_gb_per_s",
        "roofline_fraction",
    ] {
        let x = v[key].as_f64();
        assert!(x.is_some_and(|x| x > 0.0), "{key}: {:?}", v[key]);
    }
    assert_eq!(v["threads"], 1);
    assert_eq!(v["prompt_tokens"], 32);
    assert_eq!(v["gen_tokens"], 8);
    assert!(!v["isa"].as_str().unwrap().is_empty());
    assert!(v["model_path"].as_str().unwrap().ends_with(".gguf"));
    let ids = v["prompt_token_ids"].as_array().unwrap();
    assert_eq!(ids.len(), 32);
    assert_eq!(ids[0], 1, "the prompt starts with BOS");
}

#[test]
fn human_table_and_bad_arguments() {
    let Some(model) = stories260k() else { return };
    let args = [
        "--prompt-tokens",
        "8",
        "--gen-tokens",
        "2",
        "--reps",
        "1",
        "--no-bandwidth",
    ];
    let out = bench(&model, &args);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pp8") && text.contains("tg2"), "{text}");

    let out = bench(&model, &["--prompt-tokens", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--prompt-tokens"));

    let out = bench(
        &model,
        &["--prompt-tokens", "8", "--gen-tokens", "8", "--ctx", "4"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ctx"));

    let out = bench(&model, &["--prompt-tokens", "100000", "--gen-tokens", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("context"));
}
