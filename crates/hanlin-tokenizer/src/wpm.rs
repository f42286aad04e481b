//! BERT WordPiece as llama.cpp runs it (`llm_tokenizer_wpm`).
//!
//! GGUF BERT vocabularies store word-initial pieces with a `▁` prefix and continuation
//! pieces bare (the converter rewrites `##x` to `x` and `x` to `▁x`), so each word is
//! looked up as `▁word`, greedily longest piece first.

use crate::unicode::{nfd_first, to_lower, CptFlags};
use crate::vocab::Vocab;

/// Tokenizes one raw-text fragment, appending ids to `out`.
pub(crate) fn tokenize(v: &Vocab, text: &str, out: &mut Vec<u32>) {
    for word in preprocess(v, text) {
        let word1 = format!("\u{2581}{word}");
        let b = word1.as_bytes();
        let n = b.len();
        let start_len = out.len();
        let mut i = 0;
        while i < n {
            let mut matched = false;
            let mut j = n.min(i + v.max_token_len + 1);
            while j > i {
                let id = std::str::from_utf8(&b[i..j])
                    .ok()
                    .and_then(|s| v.text_to_token(s));
                if let Some(id) = id {
                    out.push(id);
                    matched = true;
                    i = j;
                    break;
                }
                j -= 1;
            }
            if !matched {
                out.truncate(start_len);
                break;
            }
        }
        if out.len() == start_len {
            out.extend(v.unk);
        }
    }
}

/// Lower-cases, strips accents, drops control characters and splits at whitespace,
/// punctuation, ASCII symbols and CJK ideographs (each of those a word of its own).
fn preprocess(v: &Vocab, text: &str) -> Vec<String> {
    let mut words: Vec<String> = vec![String::new()];
    for c in text.chars() {
        let c = if v.strip_accents { nfd_first(c) } else { c };
        let flags = CptFlags::of(c);
        if flags.is_whitespace() {
            if !words.last().is_some_and(String::is_empty) {
                words.push(String::new());
            }
            continue;
        }
        if c == '\0' || c == '\u{FFFD}' || flags.is_control() {
            continue;
        }
        if v.strip_accents && flags.is_accent_mark() {
            continue;
        }
        let own_word =
            flags.is_punctuation() || ((c as u32) < 0x7F && flags.is_symbol()) || is_chinese(c);
        let c = if v.lowercase { to_lower(c) } else { c };
        if own_word {
            if !words.last().is_some_and(String::is_empty) {
                words.push(String::new());
            }
            if let Some(last) = words.last_mut() {
                last.push(c);
            }
            words.push(String::new());
        } else if let Some(last) = words.last_mut() {
            last.push(c);
        }
    }
    if words.last().is_some_and(String::is_empty) {
        words.pop();
    }
    words
}

/// CJK ideograph blocks as BERT's `_is_chinese_char` (and llama.cpp) list them.
fn is_chinese(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B920..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}
