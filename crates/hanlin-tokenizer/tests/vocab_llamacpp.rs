//! Every vocabulary in ../shared/testdata/vocab against llama.cpp itself
//! (testdata/vocab_llamacpp.json, written by scripts/ref/tokenizer_vocabs.py): all four
//! (add_special, parse_special) settings on strings that embed each vocabulary's own
//! special-token texts, detokenization with and without specials, special ids and the
//! end-of-generation set. Covers the load-only vocabularies (Unigram included) too.

// Helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use hanlin_tokenizer::Tokenizer;
use serde_json::Value;

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn every_vocabulary_matches_llama_cpp() {
    let Some(dir) = common::testdata() else {
        return;
    };
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/vocab_llamacpp.json");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut vocabs, mut vocabs_ok, mut cases_n, mut cases_ok) = (0, 0, 0, 0);
    let mut report = String::new();
    for (name, want) in r["vocabs"].as_object().unwrap() {
        vocabs += 1;
        let gguf =
            hanlin_gguf::GgufFile::open(dir.join(format!("vocab/ggml-vocab-{name}.gguf"))).unwrap();
        let tok = Tokenizer::from_gguf(&gguf).unwrap_or_else(|e| panic!("{name}: {e}"));
        let opt = |k: &str| want[k].as_u64().map(|x| x as u32);
        let mut bad = Vec::new();
        if tok.n_vocab() as u64 != want["n_vocab"].as_u64().unwrap() {
            bad.push(format!("n_vocab {}", tok.n_vocab()));
        }
        let specials = (
            tok.bos_id(),
            tok.eos_id(),
            tok.eot_id(),
            tok.add_bos(),
            tok.add_eos(),
        );
        let want_specials = (
            opt("bos"),
            opt("eos"),
            opt("eot"),
            want["add_bos"].as_bool().unwrap(),
            want["add_eos"].as_bool().unwrap(),
        );
        if specials != want_specials {
            bad.push(format!(
                "bos/eos/eot/add_bos/add_eos {specials:?} != {want_specials:?}"
            ));
        }
        let eog: Vec<u32> = tok.eog_ids().iter().copied().collect();
        if eog != ids(&want["eog"]) {
            bad.push(format!("eog {eog:?} != {:?}", ids(&want["eog"])));
        }
        for c in want["cases"].as_array().unwrap() {
            cases_n += 1;
            let text = c["text"].as_str().unwrap();
            let add = c["add_special"].as_bool().unwrap();
            let parse = c["parse_special"].as_bool().unwrap();
            let want_ids = ids(&c["ids"]);
            let got = tok.encode(text, add, parse).unwrap();
            let dec = tok.decode(&want_ids, false);
            let dec_special = tok.decode(&want_ids, true);
            let mut case_ok = true;
            if got != want_ids {
                bad.push(format!(
                    "{text:?} add={add} parse={parse}: {got:?} != {want_ids:?}"
                ));
                case_ok = false;
            }
            if dec != c["decoded"].as_str().unwrap() {
                bad.push(format!("{text:?} decode: {dec:?} != {:?}", c["decoded"]));
                case_ok = false;
            }
            if dec_special != c["decoded_special"].as_str().unwrap() {
                bad.push(format!(
                    "{text:?} decode special: {dec_special:?} != {:?}",
                    c["decoded_special"]
                ));
                case_ok = false;
            }
            cases_ok += usize::from(case_ok);
        }
        if bad.is_empty() {
            vocabs_ok += 1;
        } else {
            report += &format!("{name}: {} problems\n", bad.len());
            for b in bad.iter().take(4) {
                report += &format!("  {b}\n");
            }
        }
    }
    eprintln!("llama.cpp vocab reference: {vocabs_ok}/{vocabs} vocabularies, {cases_ok}/{cases_n} cases identical");
    assert!(vocabs >= 17);
    assert_eq!((vocabs_ok, cases_ok), (vocabs, cases_n), "\n{report}");
}
