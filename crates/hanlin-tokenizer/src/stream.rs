//! Incremental detokenization that never splits a UTF-8 character.
//!
//! Byte-fallback and byte-level vocabularies spell one character over several tokens
//! (an emoji is often four `<0xXX>` tokens). Streaming each token's piece as it comes
//! would send broken text to the client, so bytes are held back until they complete a
//! character.

use crate::Tokenizer;

/// Turns generated ids into text one token at a time, emitting only whole characters.
///
/// Each piece is rendered like [`Tokenizer::token_to_piece`] (no space clean-up, no
/// SentencePiece leading-space removal: generated text continues a prompt).
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    tokenizer: Tokenizer,
    render_special: bool,
    pending: Vec<u8>,
}

impl StreamDecoder {
    /// A decoder for `tokenizer`; control tokens are shown when `render_special`.
    pub fn new(tokenizer: &Tokenizer, render_special: bool) -> Self {
        StreamDecoder {
            tokenizer: tokenizer.clone(),
            render_special,
            pending: Vec::new(),
        }
    }

    /// Adds one token; returns the text that is now complete (possibly empty).
    pub fn push(&mut self, id: u32) -> String {
        let mut out = String::new();
        self.push_into(id, &mut out);
        out
    }

    /// Adds one token and appends the text that is now complete to `out` (the generation
    /// loop's form: no allocation per token once `out` has grown).
    pub fn push_into(&mut self, id: u32, out: &mut String) {
        self.tokenizer
            .append_piece(id, self.render_special, &mut self.pending);
        self.take_complete(out);
    }

    /// Flushes what is held back; an unfinished character becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }

    /// Bytes held back because they do not yet form a whole character.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn take_complete(&mut self, out: &mut String) {
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    // `valid_up_to` bytes are valid UTF-8 by the error's contract.
                    out.push_str(&String::from_utf8_lossy(&self.pending[start..valid]));
                    match e.error_len() {
                        // Truncated character: wait for more bytes.
                        None => {
                            start = valid;
                            break;
                        }
                        // Bytes that can never become valid: replace and go on.
                        Some(n) => {
                            out.push('\u{FFFD}');
                            start = valid + n;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
    }
}
