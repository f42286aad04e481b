//! Opens every GGUF file in ../shared/testdata (skipped when that folder is absent).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

fn testdata() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared/testdata not found");
        None
    }
}

#[test]
fn opens_all_vocab_files() {
    let Some(dir) = testdata() else { return };
    let mut n = 0;
    for entry in std::fs::read_dir(dir.join("vocab")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "gguf") {
            let f = hanlin_gguf::GgufFile::open(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            assert!(
                f.get_str("tokenizer.ggml.model").unwrap().is_some(),
                "{path:?}"
            );
            n += 1;
        }
    }
    assert!(n >= 17, "only {n} vocab files");
}

#[test]
fn aquila_is_version_2() {
    let Some(dir) = testdata() else { return };
    let f = hanlin_gguf::GgufFile::open(dir.join("vocab/ggml-vocab-aquila.gguf")).unwrap();
    assert_eq!(f.version(), 2);
}

#[test]
fn stories_tensors() {
    let Some(dir) = testdata() else { return };
    let f =
        hanlin_gguf::GgufFile::open(dir.join("models/stories260K/stories260K-f32.gguf")).unwrap();
    assert_eq!(f.get_str("general.architecture").unwrap(), Some("llama"));
    let t = f.require_tensor("token_embd.weight").unwrap();
    assert_eq!(t.dims, vec![64, 512]);
    assert_eq!(f.tensor_data(t).len(), 64 * 512 * 4);
}
