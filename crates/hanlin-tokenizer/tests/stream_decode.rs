//! Streaming detokenization on vocabularies that spell characters over several tokens:
//! SentencePiece byte fallback (`<0xF0>` ...), GPT-2 byte-level BPE and Gemma 4's BPE.
//! Text must come out whole — never half a character — and add up to the input.

// Helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use hanlin_tokenizer::Tokenizer;

const TEXTS: &[&str] = &[
    "🦙 llamas 🚀 rockets 😶\u{200d}🌫️ and 👨\u{200d}👩\u{200d}👧",
    "大模型是实现通用人工智能的重要路径",
    "𓀀𐍈𝔘 rare scripts, Ünïcödé, ½ ¾, ஸ்ரீ",
];

fn load(name: &str) -> Option<Tokenizer> {
    let dir = common::testdata()?;
    let gguf =
        hanlin_gguf::GgufFile::open(dir.join(format!("vocab/ggml-vocab-{name}.gguf"))).unwrap();
    Some(Tokenizer::from_gguf(&gguf).unwrap())
}

/// Streams `text`'s ids; returns the text and how many tokens were held back.
fn stream(tok: &Tokenizer, text: &str) -> (String, usize) {
    let ids = tok.encode(text, false, false).unwrap();
    let mut s = tok.stream_decoder(false);
    let mut out = String::new();
    let mut held = 0;
    for &id in &ids {
        let piece = tok.token_to_piece(id, false);
        let chunk = s.push(id);
        assert!(
            !chunk.contains('\u{FFFD}'),
            "{text:?}: broken character after {id}"
        );
        if chunk.is_empty() && !piece.is_empty() {
            held += 1;
        }
        out += &chunk;
    }
    assert_eq!(s.pending_len(), 0, "{text:?}: bytes left over");
    out += &s.finish();
    (out, held)
}

#[test]
fn byte_level_and_byte_fallback_stream_whole_characters() {
    for (name, prefix) in [
        ("gpt-2", ""),
        ("qwen2", ""),
        ("llama-bpe", ""),
        ("llama-spm", " "),
        ("gemma-4", ""),
    ] {
        let Some(tok) = load(name) else { return };
        let mut held = 0;
        for text in TEXTS {
            let (out, h) = stream(&tok, text);
            // Lossless vocabularies give the input back (SentencePiece with its prefix space).
            assert_eq!(out, format!("{prefix}{text}"), "{name}");
            held += h;
        }
        assert!(held > 0, "{name}: no character was split across tokens");
    }
}

#[test]
fn finish_flushes_an_unfinished_character() {
    let Some(tok) = load("gpt-2") else { return };
    // "🦙" is four bytes spread over byte-level tokens; stop after the first one.
    let ids = tok.encode("🦙", false, false).unwrap();
    assert!(ids.len() > 1);
    let mut s = tok.stream_decoder(false);
    assert_eq!(s.push(ids[0]), "");
    assert!(s.pending_len() > 0);
    assert_eq!(s.finish(), "\u{FFFD}");
    assert_eq!(s.pending_len(), 0);
}

#[test]
fn control_tokens_stream_only_when_rendered() {
    let Some(tok) = load("llama-bpe") else { return };
    let ids = tok
        .encode("<|begin_of_text|>Hi<|eot_id|>", false, true)
        .unwrap();
    let plain: String = {
        let mut s = tok.stream_decoder(false);
        ids.iter().map(|&id| s.push(id)).collect()
    };
    let shown: String = {
        let mut s = tok.stream_decoder(true);
        ids.iter().map(|&id| s.push(id)).collect()
    };
    assert_eq!(plain, "Hi");
    assert_eq!(shown, "<|begin_of_text|>Hi<|eot_id|>");
    let eot = *ids.last().unwrap();
    assert!(tok.is_eog(eot));
    assert_eq!(tok.eot_id(), Some(eot));
    assert_eq!(tok.token_id("<|eot_id|>"), Some(eot));
    assert_eq!(tok.token_text(eot), Some("<|eot_id|>"));
    assert_eq!(
        tok.token_kind(eot),
        Some(hanlin_tokenizer::TokenKind::Control)
    );
}
