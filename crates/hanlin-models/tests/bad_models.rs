//! Broken model files give a clear error naming the problem, never a panic.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use hanlin_gguf::{GgufFile, GgufWriter, Value};
use hanlin_models::Model;

fn stories() -> Option<GgufFile> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/models/stories260K/stories260K-f32.gguf");
    if !p.is_file() {
        eprintln!("skipping: ../shared/testdata not found");
        return None;
    }
    Some(GgufFile::open(p).unwrap())
}

/// Rebuilds `f`, letting `edit` change metadata and decide each tensor's fate.
fn rebuild(
    f: &GgufFile,
    meta: impl Fn(&str, &Value) -> Option<Value>,
    tensor: impl Fn(&str, &[u64]) -> Option<Vec<u64>>,
) -> String {
    let mut w = GgufWriter::new();
    for (k, v) in f.metadata() {
        if let Some(v) = meta(k, v) {
            w.set(k, v);
        }
    }
    for t in f.tensors() {
        if let Some(dims) = tensor(&t.name, &t.dims) {
            let n: u64 = dims.iter().product();
            let mut data = f.tensor_data(t).to_vec();
            data.resize(n as usize * 4, 0);
            w.add_tensor(&t.name, &dims, t.ggml_type, data).unwrap();
        }
    }
    let bytes = w.to_bytes().unwrap();
    match Model::from_gguf(GgufFile::from_bytes(bytes).unwrap()) {
        Ok(_) => "loaded".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_architecture() {
    let Some(f) = stories() else { return };
    let err = rebuild(
        &f,
        |k, v| {
            Some(if k == "general.architecture" {
                Value::String("mamba9".into())
            } else {
                v.clone()
            })
        },
        |_, d| Some(d.to_vec()),
    );
    assert!(
        err.contains("unknown architecture") && err.contains("mamba9"),
        "{err}"
    );
}

#[test]
fn missing_tensor() {
    let Some(f) = stories() else { return };
    let err = rebuild(
        &f,
        |_, v| Some(v.clone()),
        |n, d| (n != "blk.3.ffn_up.weight").then(|| d.to_vec()),
    );
    assert!(
        err.contains("missing tensor") && err.contains("blk.3.ffn_up.weight"),
        "{err}"
    );
}

#[test]
fn wrong_shape() {
    let Some(f) = stories() else { return };
    let err = rebuild(
        &f,
        |_, v| Some(v.clone()),
        |n, d| {
            Some(if n == "blk.1.attn_k.weight" {
                vec![64, 48]
            } else {
                d.to_vec()
            })
        },
    );
    assert!(
        err.contains("blk.1.attn_k.weight") && err.contains("shape"),
        "{err}"
    );
}

#[test]
fn missing_hyperparameter_and_bad_head_counts() {
    let Some(f) = stories() else { return };
    let err = rebuild(
        &f,
        |k, v| (k != "llama.block_count").then(|| v.clone()),
        |_, d| Some(d.to_vec()),
    );
    assert!(err.contains("llama.block_count"), "{err}");
    let err = rebuild(
        &f,
        |k, v| {
            Some(if k == "llama.attention.head_count_kv" {
                Value::U32(3)
            } else {
                v.clone()
            })
        },
        |_, d| Some(d.to_vec()),
    );
    assert!(err.contains("head_count_kv"), "{err}");
}

#[test]
fn intact_copy_loads() {
    let Some(f) = stories() else { return };
    assert_eq!(
        rebuild(&f, |_, v| Some(v.clone()), |_, d| Some(d.to_vec())),
        "loaded"
    );
}
