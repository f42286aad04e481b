//! The public [`Tokenizer`]: one type over GGUF vocabularies and `tokenizer.json`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use hanlin_gguf::GgufFile;

use crate::error::TokenizerError;
use crate::gguf_tok::GgufTokenizer;
use crate::stream::StreamDecoder;
use crate::vocab::{attr, VocabKind};

/// What kind of entry a token is (GGUF `tokenizer.ggml.token_type`, as llama.cpp
/// adjusts it at load time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Ordinary text.
    Normal,
    /// The unknown token.
    Unknown,
    /// Control token (BOS, EOS, turn markers): not text, hidden unless asked for.
    Control,
    /// Added token matched before tokenizing, even in plain text (e.g. whitespace runs).
    UserDefined,
    /// Reserved, never produced.
    Unused,
    /// `<0xXX>` byte fallback.
    Byte,
}

#[derive(Debug)]
enum Backend {
    Gguf(Box<GgufTokenizer>),
    #[cfg(feature = "hf")]
    Hf(Box<crate::hf::HfTokenizer>),
}

/// A tokenizer built from a GGUF file's vocabulary or from a Hugging Face `tokenizer.json`.
///
/// Cloning is cheap (the tables are shared), so each request or stream can hold its own.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: Arc<Backend>,
}

impl Tokenizer {
    /// Builds the tokenizer llama.cpp would build from this file's `tokenizer.ggml.*` keys.
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer, TokenizerError> {
        Ok(Tokenizer {
            inner: Arc::new(Backend::Gguf(Box::new(GgufTokenizer::from_gguf(file)?))),
        })
    }

    /// Loads a Hugging Face `tokenizer.json` (padding and truncation are switched off).
    #[cfg(feature = "hf")]
    pub fn from_hf_json_file(path: impl AsRef<Path>) -> Result<Tokenizer, TokenizerError> {
        Ok(Tokenizer {
            inner: Arc::new(Backend::Hf(Box::new(crate::hf::HfTokenizer::from_file(
                path.as_ref(),
            )?))),
        })
    }

    /// Without the `hf` feature `tokenizer.json` cannot be read; always an error.
    #[cfg(not(feature = "hf"))]
    pub fn from_hf_json_file(path: impl AsRef<Path>) -> Result<Tokenizer, TokenizerError> {
        Err(TokenizerError::Unsupported(format!(
            "{}: hanlin-tokenizer was built without the `hf` feature",
            path.as_ref().display()
        )))
    }

    /// Text to ids. `add_special` adds BOS/EOS as the model's metadata asks (CLS/SEP for
    /// BERT); `parse_special` turns control-token texts such as `<start_of_turn>` into
    /// their ids — without it they are tokenized as plain text. User-defined tokens are
    /// always matched, as in llama.cpp.
    pub fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        match &*self.inner {
            Backend::Gguf(t) => t.encode(text, add_special, parse_special),
            #[cfg(feature = "hf")]
            Backend::Hf(t) => t.encode(text, add_special, parse_special),
        }
    }

    /// Ids to text, as llama.cpp's `llama_detokenize` (SentencePiece leading space
    /// removed, BPE spacing cleaned up where the vocabulary asks for it). Control tokens
    /// appear only with `render_special`. Invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32], render_special: bool) -> String {
        match &*self.inner {
            Backend::Gguf(t) => {
                String::from_utf8_lossy(&t.decode_bytes(ids, render_special)).into_owned()
            }
            #[cfg(feature = "hf")]
            Backend::Hf(t) => t.decode(ids, render_special),
        }
    }

    /// The bytes one token stands for (may be part of a UTF-8 character); control and
    /// unknown tokens give nothing unless `render_special`. Unknown ids give nothing.
    pub fn token_to_piece(&self, id: u32, render_special: bool) -> Vec<u8> {
        match &*self.inner {
            Backend::Gguf(t) => t.token_to_piece(id, render_special).to_vec(),
            #[cfg(feature = "hf")]
            Backend::Hf(t) => t.token_to_piece(id, render_special),
        }
    }

    /// Appends the bytes of [`Tokenizer::token_to_piece`] to `out` (no allocation for GGUF
    /// vocabularies beyond `out`'s own growth).
    pub fn append_piece(&self, id: u32, render_special: bool, out: &mut Vec<u8>) {
        match &*self.inner {
            Backend::Gguf(t) => out.extend_from_slice(t.token_to_piece(id, render_special)),
            #[cfg(feature = "hf")]
            Backend::Hf(t) => out.extend_from_slice(&t.token_to_piece(id, render_special)),
        }
    }

    /// A streaming detokenizer over this tokenizer.
    pub fn stream_decoder(&self, render_special: bool) -> StreamDecoder {
        StreamDecoder::new(self, render_special)
    }

    /// Number of ids.
    pub fn n_vocab(&self) -> usize {
        match &*self.inner {
            Backend::Gguf(t) => t.vocab.n_tokens(),
            #[cfg(feature = "hf")]
            Backend::Hf(t) => t.n_vocab(),
        }
    }

    /// Which algorithm this tokenizer runs.
    pub fn kind(&self) -> VocabKind {
        match &*self.inner {
            Backend::Gguf(t) => t.vocab.kind,
            #[cfg(feature = "hf")]
            Backend::Hf(_) => VocabKind::HfJson,
        }
    }

    fn gguf(&self) -> Option<&GgufTokenizer> {
        match &*self.inner {
            Backend::Gguf(t) => Some(t),
            #[cfg(feature = "hf")]
            Backend::Hf(_) => None,
        }
    }

    /// Beginning-of-sequence id.
    pub fn bos_id(&self) -> Option<u32> {
        self.gguf().and_then(|t| t.vocab.bos)
    }

    /// End-of-sequence id.
    pub fn eos_id(&self) -> Option<u32> {
        self.gguf().and_then(|t| t.vocab.eos)
    }

    /// End-of-turn id (`<end_of_turn>`, `<|eot_id|>`, `<|im_end|>`, ...).
    pub fn eot_id(&self) -> Option<u32> {
        self.gguf().and_then(|t| t.vocab.eot)
    }

    /// Unknown-token id.
    pub fn unk_id(&self) -> Option<u32> {
        self.gguf().and_then(|t| t.vocab.unk)
    }

    /// Padding id.
    pub fn pad_id(&self) -> Option<u32> {
        self.gguf().and_then(|t| t.vocab.pad)
    }

    /// Separator id (BERT `[SEP]`).
    pub fn sep_id(&self) -> Option<u32> {
        self.gguf().and_then(|t| t.vocab.sep)
    }

    /// The ids that end generation: EOS, EOT, EOM and the texts llama.cpp recognises.
    pub fn eog_ids(&self) -> &BTreeSet<u32> {
        match &*self.inner {
            Backend::Gguf(t) => &t.vocab.eog,
            #[cfg(feature = "hf")]
            Backend::Hf(t) => t.eog(),
        }
    }

    /// Whether generating `id` ends generation.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog_ids().contains(&id)
    }

    /// The token's text as stored in the vocabulary (`▁` and byte-level chars included).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        match &*self.inner {
            Backend::Gguf(t) => t.vocab.tokens.get(id as usize).map(|d| d.text.as_str()),
            #[cfg(feature = "hf")]
            Backend::Hf(t) => t.token_text(id),
        }
    }

    /// The id whose stored text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        match &*self.inner {
            Backend::Gguf(t) => t.vocab.text_to_token(text),
            #[cfg(feature = "hf")]
            Backend::Hf(t) => t.token_id(text),
        }
    }

    /// What kind of entry `id` is.
    pub fn token_kind(&self, id: u32) -> Option<TokenKind> {
        match &*self.inner {
            Backend::Gguf(t) => {
                let a = t.vocab.tokens.get(id as usize)?.attr;
                Some(if a & attr::UNUSED != 0 {
                    TokenKind::Unused
                } else if a & attr::CONTROL != 0 {
                    TokenKind::Control
                } else if a & attr::UNKNOWN != 0 {
                    TokenKind::Unknown
                } else if a & attr::USER_DEFINED != 0 {
                    TokenKind::UserDefined
                } else if a & attr::BYTE != 0 {
                    TokenKind::Byte
                } else {
                    TokenKind::Normal
                })
            }
            #[cfg(feature = "hf")]
            Backend::Hf(t) => {
                t.token_text(id)?;
                Some(if t.is_special(id) {
                    TokenKind::Control
                } else {
                    TokenKind::Normal
                })
            }
        }
    }

    /// Whether `encode(.., add_special = true, ..)` starts with BOS.
    pub fn add_bos(&self) -> bool {
        self.gguf().is_some_and(|t| t.vocab.add_bos)
    }

    /// Whether `encode(.., add_special = true, ..)` ends with EOS.
    pub fn add_eos(&self) -> bool {
        self.gguf().is_some_and(|t| t.vocab.add_eos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shareable_across_threads() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Tokenizer>();
        check::<StreamDecoder>();
    }
}
