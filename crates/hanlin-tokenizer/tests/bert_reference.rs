//! BERT WordPiece against sentence-transformers' input ids for all-MiniLM-L6-v2
//! (../shared/testdata/reference/embeddings.json): once through the model's own
//! tokenizer.json (fetched by scripts/fetch-assets.sh) and once through the bert-bge GGUF
//! vocabulary, which is the same uncased BERT vocabulary.

// Helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use hanlin_tokenizer::{Tokenizer, VocabKind};
use serde_json::Value;

/// `(sentence, input ids)` pairs from the reference.
fn reference() -> Option<Vec<(String, Vec<u32>)>> {
    let dir = common::testdata()?;
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reference/embeddings.json")).unwrap(),
    )
    .unwrap();
    let sentences = r["sentences"].as_array().unwrap();
    let ids = r["input_ids"].as_array().unwrap();
    Some(
        sentences
            .iter()
            .zip(ids)
            .map(|(s, ids)| {
                let ids = ids
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect();
                (s.as_str().unwrap().to_string(), ids)
            })
            .collect(),
    )
}

fn check(tok: &Tokenizer, cases: &[(String, Vec<u32>)], what: &str) {
    let mut ok = 0;
    for (text, want) in cases {
        let got = tok.encode(text, true, false).unwrap();
        if &got == want {
            ok += 1;
        } else {
            eprintln!("{what}: {text:?}\n  want {want:?}\n  got  {got:?}");
        }
    }
    eprintln!("{what}: {ok}/{} sentences identical", cases.len());
    assert_eq!(ok, cases.len());
}

#[cfg(feature = "hf")]
#[test]
fn minilm_tokenizer_json_matches_sentence_transformers() {
    let Some(cases) = reference() else { return };
    let Some(path) = common::minilm_tokenizer_json() else {
        common::missing(
            "all-MiniLM-L6-v2 tokenizer.json",
            "run scripts/fetch-assets.sh",
        );
        return;
    };
    let tok = Tokenizer::from_hf_json_file(&path).unwrap();
    assert_eq!(tok.kind(), VocabKind::HfJson);
    assert_eq!(tok.n_vocab(), 30522);
    check(&tok, &cases, "tokenizer.json");
    // Padding is off: a short text stays short.
    assert_eq!(tok.encode("hi", true, false).unwrap().len(), 3);
    // Special-token text: parsed only when asked.
    let parsed = tok.encode("[SEP]", false, true).unwrap();
    assert_eq!(parsed, vec![102]);
    assert_ne!(tok.encode("[SEP]", false, false).unwrap(), parsed);
    assert_eq!(tok.decode(&cases[0].1, false), cases[0].0.to_lowercase());
}

#[test]
fn bert_bge_gguf_matches_sentence_transformers() {
    let Some(cases) = reference() else { return };
    let Some(dir) = common::testdata() else {
        return;
    };
    let gguf = hanlin_gguf::GgufFile::open(dir.join("vocab/ggml-vocab-bert-bge.gguf")).unwrap();
    let tok = Tokenizer::from_gguf(&gguf).unwrap();
    assert_eq!(tok.kind(), VocabKind::Wpm);
    check(&tok, &cases, "bert-bge GGUF");
}
