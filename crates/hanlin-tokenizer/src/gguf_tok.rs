//! Encoding and decoding with a GGUF vocabulary (llama.cpp `llama_vocab::impl::tokenize`,
//! `token_to_piece` and `detokenize`).

use hanlin_gguf::GgufFile;

use crate::error::TokenizerError;
use crate::special::{Fragment, SpecialTokens};
use crate::unicode::char_to_byte;
use crate::vocab::{attr, Vocab, VocabKind};
use crate::{bpe, spm, wpm};

/// A GGUF vocabulary with its special-token partitioner and rendered pieces.
#[derive(Debug)]
pub(crate) struct GgufTokenizer {
    pub vocab: Vocab,
    special: SpecialTokens,
    /// Every token's piece as rendered with specials shown, back to back.
    piece_bytes: Vec<u8>,
    /// `piece_bytes[piece_offs[i]..piece_offs[i + 1]]` is token `i`'s piece.
    piece_offs: Vec<usize>,
}

const ESCAPED_SPACE: &str = "\u{2581}";

impl GgufTokenizer {
    pub(crate) fn from_gguf(g: &GgufFile) -> Result<Self, TokenizerError> {
        let vocab = Vocab::from_gguf(g)?;
        let special = SpecialTokens::new(&vocab)?;
        let mut piece_bytes = Vec::new();
        let mut piece_offs = Vec::with_capacity(vocab.n_tokens() + 1);
        for id in 0..vocab.n_tokens() as u32 {
            piece_offs.push(piece_bytes.len());
            render_piece(&vocab, id, &mut piece_bytes);
        }
        piece_offs.push(piece_bytes.len());
        Ok(GgufTokenizer {
            vocab,
            special,
            piece_bytes,
            piece_offs,
        })
    }

    pub(crate) fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let v = &self.vocab;
        let frags = self.special.partition(v, text, parse_special);
        let mut out = Vec::new();
        match v.kind {
            VocabKind::Spm => {
                if add_special && v.add_bos {
                    out.extend(v.bos);
                }
                // A space is prefixed to the first text and to text after a special token.
                let mut prev_special = true;
                for f in frags {
                    match f {
                        Fragment::Text(s, e) => {
                            let mut t = String::with_capacity(e - s + 1);
                            if v.add_space_prefix && prev_special {
                                t.push(' ');
                            }
                            t.push_str(&text[s..e]);
                            spm::tokenize(v, &t.replace(' ', ESCAPED_SPACE), &mut out);
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
                if add_special && v.add_eos {
                    out.extend(v.eos);
                }
            }
            VocabKind::Bpe => {
                if add_special && v.add_bos {
                    out.extend(v.bos);
                }
                for f in frags {
                    match f {
                        Fragment::Text(s, e) if v.escape_whitespaces => {
                            bpe::tokenize(v, &text[s..e].replace(' ', ESCAPED_SPACE), &mut out)?
                        }
                        Fragment::Text(s, e) => bpe::tokenize(v, &text[s..e], &mut out)?,
                        Fragment::Token(id) => out.push(id),
                    }
                }
                if add_special && v.add_eos {
                    out.extend(v.eos);
                }
            }
            VocabKind::Wpm => {
                if add_special {
                    out.extend(v.bos);
                }
                for f in frags {
                    match f {
                        Fragment::Text(s, e) => wpm::tokenize(v, &text[s..e], &mut out),
                        Fragment::Token(id) => out.push(id),
                    }
                }
                if add_special {
                    out.extend(v.sep);
                }
            }
            VocabKind::Ugm => {
                let ugm = v.ugm.as_ref().ok_or_else(|| {
                    TokenizerError::Unsupported("Unigram vocabulary without tables".to_string())
                })?;
                if add_special && v.add_bos {
                    out.extend(v.bos);
                }
                for f in frags {
                    match f {
                        Fragment::Text(s, e) => ugm.tokenize(v, &text[s..e], &mut out)?,
                        Fragment::Token(id) => out.push(id),
                    }
                }
                if add_special && v.add_eos {
                    out.extend(v.eos);
                }
            }
            VocabKind::HfJson => {
                return Err(TokenizerError::Unsupported(
                    "a GGUF vocabulary cannot be of kind HfJson".to_string(),
                ))
            }
        }
        Ok(out)
    }

    /// The bytes a token stands for; control and unknown tokens only when `special`.
    pub(crate) fn token_to_piece(&self, id: u32, special: bool) -> &[u8] {
        let i = id as usize;
        if i >= self.vocab.n_tokens() {
            return &[];
        }
        if !special && self.vocab.attr(id) & (attr::UNKNOWN | attr::CONTROL) != 0 {
            return &[];
        }
        &self.piece_bytes[self.piece_offs[i]..self.piece_offs[i + 1]]
    }

    /// llama.cpp `llama_detokenize(remove_special = false, unparse_special = special)`.
    pub(crate) fn decode_bytes(&self, ids: &[u32], special: bool) -> Vec<u8> {
        let v = &self.vocab;
        let mut text = Vec::new();
        // SentencePiece adds a space before the text; the first piece drops one.
        let mut remove_space = v.add_space_prefix;
        for &id in ids {
            let mut piece = self.token_to_piece(id, special);
            if remove_space {
                if let Some(rest) = piece.strip_prefix(b" ") {
                    piece = rest;
                }
            }
            remove_space = false;
            text.extend_from_slice(piece);
        }
        if v.clean_spaces {
            clean_up_spaces(&mut text);
        }
        text
    }
}

/// A token's piece with specials shown (llama.cpp `token_to_piece(special = true)`).
fn render_piece(v: &Vocab, id: u32, out: &mut Vec<u8>) {
    let t = &v.tokens[id as usize];
    let a = t.attr;
    if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
        out.extend_from_slice(t.text.as_bytes());
    } else if a & attr::NORMAL != 0 {
        let byte_level = v.kind == VocabKind::Bpe && !v.escape_whitespaces;
        if byte_level {
            decode_byte_level(&t.text, out);
        } else {
            out.extend_from_slice(t.text.replace(ESCAPED_SPACE, " ").as_bytes());
        }
    } else if a & attr::BYTE != 0 {
        out.extend(v.token_to_byte(id));
    }
}

/// GPT-2 byte-level text back to bytes; chars outside the table are kept in llama.cpp's
/// `[UNK_BYTE_0x..]` form.
fn decode_byte_level(text: &str, out: &mut Vec<u8>) {
    for c in text.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
}

/// llama.cpp's `clean_spaces` passes (Hugging Face `clean_up_tokenization_spaces`).
fn clean_up_spaces(text: &mut Vec<u8>) {
    // " ?", " !", " .", " ," lose the space.
    let src = std::mem::take(text);
    for (i, &x) in src.iter().enumerate() {
        if i > 0 && src[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            text.pop();
        }
        text.push(x);
    }
    // " ' " becomes "'"; the dropped right space reads as NUL afterwards, as in llama.cpp.
    let mut src = std::mem::take(text);
    let mut i = 0;
    while i < src.len() {
        let x = src[i];
        if i > 0 && x == b'\'' && i + 1 < src.len() && src[i - 1] == b' ' && src[i + 1] == b' ' {
            text.pop();
            text.push(x);
            src[i + 1] = 0;
            i += 2;
            continue;
        }
        text.push(x);
        i += 1;
    }
    // " 's", " 'm", " 're", " 've" lose the space.
    let src = std::mem::take(text);
    for (i, &x) in src.iter().enumerate() {
        if i > 0 && src[i - 1] == b' ' && x == b'\'' && i + 1 < src.len() {
            let x1 = src[i + 1];
            let x2 = src.get(i + 2).copied();
            let drop = matches!(x1, b's' | b'm')
                || (i + 2 < src.len()
                    && matches!((x1, x2), (b'r', Some(b'e')) | (b'v', Some(b'e'))));
            if drop {
                text.pop();
            }
        }
        text.push(x);
    }
}

#[cfg(test)]
mod tests {
    use super::clean_up_spaces;

    fn clean(s: &str) -> String {
        let mut b = s.as_bytes().to_vec();
        clean_up_spaces(&mut b);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn cleans_like_llama_cpp() {
        assert_eq!(clean("Hello , world !"), "Hello, world!");
        assert_eq!(clean("a ' b"), "a'b");
        assert_eq!(clean("I 'm sure you 're right"), "I'm sure you're right");
        assert_eq!(clean("don 't"), "don 't");
    }
}
