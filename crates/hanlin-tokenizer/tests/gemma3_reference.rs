//! Gemma 3's tokenizer against llama.cpp on the real model (testdata/gemma3_tokens.json,
//! written by scripts/ref/tokenizer_gemma3.py): ids, detokenized text, per-token pieces,
//! special ids and the end-of-generation set must all be identical.
//!
//! The model comes from `HANLIN_GEMMA3_GGUF` or the model store; without it the test is
//! skipped (fails with `HANLIN_REQUIRE_MODELS=1`).

// Helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use hanlin_tokenizer::Tokenizer;
use serde_json::Value;

fn reference() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/gemma3_tokens.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn load() -> Option<Tokenizer> {
    let Some(path) = common::gemma3_gguf() else {
        common::missing(
            "Gemma 3 270M GGUF",
            "set HANLIN_GEMMA3_GGUF or pull the model into the store",
        );
        return None;
    };
    let gguf = hanlin_gguf::GgufFile::open(&path).unwrap();
    Some(Tokenizer::from_gguf(&gguf).unwrap())
}

#[test]
fn gemma3_matches_llama_cpp() {
    let Some(tok) = load() else { return };
    let r = reference();
    let opt = |k: &str| r[k].as_u64().map(|x| x as u32);
    assert_eq!(tok.n_vocab() as u64, r["n_vocab"].as_u64().unwrap());
    assert_eq!(tok.bos_id(), opt("bos"));
    assert_eq!(tok.eos_id(), opt("eos"));
    assert_eq!(tok.eot_id(), opt("eot"));
    assert_eq!(tok.add_bos(), r["add_bos"].as_bool().unwrap());
    assert_eq!(tok.add_eos(), r["add_eos"].as_bool().unwrap());
    let eog: Vec<u32> = tok.eog_ids().iter().copied().collect();
    assert_eq!(eog, ids(&r["eog"]));

    let cases = r["cases"].as_array().unwrap();
    let mut ok = 0;
    let mut report = String::new();
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let add = c["add_special"].as_bool().unwrap();
        let parse = c["parse_special"].as_bool().unwrap();
        let want = ids(&c["ids"]);
        let got = tok.encode(text, add, parse).unwrap();
        let pieces: Vec<String> = want
            .iter()
            .map(|&id| hex(&tok.token_to_piece(id, false)))
            .collect();
        let want_pieces: Vec<String> = c["pieces_hex"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        let checks = [
            (got == want, format!("ids {got:?} != {want:?}")),
            (
                tok.decode(&want, false) == c["decoded"].as_str().unwrap(),
                format!("decode {:?}", tok.decode(&want, false)),
            ),
            (
                tok.decode(&want, true) == c["decoded_special"].as_str().unwrap(),
                format!("decode special {:?}", tok.decode(&want, true)),
            ),
            (pieces == want_pieces, format!("pieces {pieces:?}")),
        ];
        let failed: Vec<_> = checks.iter().filter(|(pass, _)| !pass).collect();
        if failed.is_empty() {
            ok += 1;
        } else {
            report += &format!("{text:?} add={add} parse={parse}:\n");
            for (_, msg) in failed {
                report += &format!("  {msg}\n");
            }
        }
    }
    eprintln!("gemma3 reference: {ok}/{} cases identical", cases.len());
    assert!(cases.len() >= 120);
    assert_eq!(ok, cases.len(), "\n{report}");
}

/// Streaming the reference ids gives the concatenated pieces, never half a character.
#[test]
fn gemma3_stream_decoding_is_utf8_safe() {
    let Some(tok) = load() else { return };
    let r = reference();
    let mut held_back = 0;
    for c in r["cases"].as_array().unwrap() {
        let want = ids(&c["ids"]);
        let mut all = Vec::new();
        for p in c["pieces_hex"].as_array().unwrap() {
            let p = p.as_str().unwrap();
            all.extend(
                (0..p.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&p[i..i + 2], 16).unwrap()),
            );
        }
        let expected = String::from_utf8(all).unwrap();
        let mut stream = tok.stream_decoder(false);
        let mut text = String::new();
        for &id in &want {
            let piece = tok.token_to_piece(id, false);
            let out = stream.push(id);
            if out.is_empty() && !piece.is_empty() {
                held_back += 1;
            }
            assert!(
                !out.contains('\u{FFFD}'),
                "{:?}: emitted a broken character",
                c["text"]
            );
            text += &out;
        }
        assert_eq!(stream.pending_len(), 0);
        text += &stream.finish();
        assert_eq!(text, expected, "{:?}", c["text"]);
    }
    // The reference has characters spelled with byte tokens (rare CJK, emoji).
    assert!(held_back > 0, "no case split a character across tokens");
}
