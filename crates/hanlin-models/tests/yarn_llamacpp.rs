//! YaRN RoPE scaling against llama.cpp: the synthetic qwen2 model with `rope.scaling.type =
//! yarn` (factor 4, original context 4096), 160 positions. Reference logits:
//! testdata/yarn_llamacpp.json from scripts/ref/yarn_llamacpp.py. The same weights without the
//! YaRN keys must disagree, so the test fails if the scaling were ignored.

#![allow(clippy::unwrap_used)]

use hanlin_test_support::cosine;

use hanlin_gguf::GgufFile;
use hanlin_models::{Logits, Model, ReferenceModel};

/// (min cosine, max |Δ|) of `model`'s logits against the recorded rows.
fn compare(
    model: &Model,
    tokens: &[u32],
    rows: &serde_json::Map<String, serde_json::Value>,
) -> (f64, f32) {
    let n_vocab = model.config.n_vocab;
    let mut kv = model.kv_cache(256);
    let mut s = model.scratch(64);
    let ours = model
        .forward(tokens, &mut kv, &mut s, Logits::All)
        .unwrap()
        .to_vec();
    let (mut min_cos, mut max_diff) = (1f64, 0f32);
    for (p, row) in rows {
        let p: usize = p.parse().unwrap();
        let theirs: Vec<f32> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let mine = &ours[p * n_vocab..(p + 1) * n_vocab];
        min_cos = min_cos.min(cosine(mine, &theirs));
        max_diff = mine
            .iter()
            .zip(&theirs)
            .fold(max_diff, |d, (a, b)| d.max((a - b).abs()));
    }
    (min_cos, max_diff)
}

#[test]
fn yarn_matches_llama_cpp() {
    let Some(vocab) = hanlin_test_support::stories_vocab() else {
        return;
    };
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../testdata/yarn_llamacpp.json")).unwrap();
    let tokens: Vec<u32> = reference["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    let rows = reference["logits"].as_object().unwrap();
    let shape = hanlin_test_support::shapes()
        .into_iter()
        .find(|s| s.arch == "qwen2")
        .unwrap();
    let plain =
        GgufFile::from_bytes(hanlin_test_support::synthetic_f16(&shape, &vocab, 42)).unwrap();
    let yarn_bytes =
        hanlin_test_support::with_metadata(&plain, &hanlin_test_support::yarn_keys("qwen2"));
    assert_eq!(
        hanlin_test_support::sha256_hex(&yarn_bytes),
        reference["sha256"],
        "the YaRN model drifted from the one llama.cpp ran"
    );

    let yarn = Model::from_gguf(GgufFile::from_bytes(yarn_bytes.clone()).unwrap()).unwrap();
    let (cos, diff) = compare(&yarn, &tokens, rows);
    eprintln!("qwen2 F16 YaRN vs llama.cpp: min cosine {cos:.6}, max |Δ| {diff:.4}");
    assert!(
        cos >= 0.9999,
        "YaRN logits disagree with llama.cpp: cosine {cos}"
    );

    // The reference forward agrees too.
    let mut oracle = ReferenceModel::load(&GgufFile::from_bytes(yarn_bytes).unwrap()).unwrap();
    let n_vocab = yarn.config.n_vocab;
    let mut kv = yarn.kv_cache(256);
    let mut s = yarn.scratch(64);
    let fast = yarn
        .forward(&tokens, &mut kv, &mut s, Logits::All)
        .unwrap()
        .to_vec();
    for (p, &t) in tokens.iter().enumerate() {
        let r = oracle.step(t);
        let c = cosine(&fast[p * n_vocab..(p + 1) * n_vocab], &r);
        assert!(c >= 0.999, "position {p}: fast vs reference cosine {c}");
    }

    // Without the YaRN keys the far positions come out clearly different.
    let (cos_plain, diff_plain) = compare(&Model::from_gguf(plain).unwrap(), &tokens, rows);
    eprintln!("same weights without YaRN vs llama.cpp's YaRN: min cosine {cos_plain:.6}, max |Δ| {diff_plain:.4}");
    assert!(
        diff_plain > 20.0 * diff.max(1e-3),
        "YaRN made no difference: {diff_plain} vs {diff}"
    );
}
