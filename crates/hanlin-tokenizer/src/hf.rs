//! Hugging Face `tokenizer.json` through the `tokenizers` crate (embedding models and
//! anything shipped without GGUF metadata).

use std::collections::BTreeSet;
use std::path::Path;

use tokenizers::decoders::DecoderWrapper;

use crate::error::TokenizerError;
use crate::unicode::char_to_byte;

/// How single-token pieces are spelled, read off the tokenizer's decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PieceStyle {
    /// GPT-2 byte-level chars.
    ByteLevel,
    /// BERT: `##` continues a word, anything else starts one after a space.
    WordPiece,
    /// SentencePiece: `▁` is a space, `<0xXX>` a byte.
    Metaspace,
}

/// A `tokenizer.json` tokenizer with padding and truncation switched off.
pub(crate) struct HfTokenizer {
    /// Encodes with added special tokens recognised in the text.
    parse: tokenizers::Tokenizer,
    /// The same, with special-token texts treated as plain text.
    plain: tokenizers::Tokenizer,
    texts: Vec<String>,
    special: Vec<bool>,
    eog: BTreeSet<u32>,
    style: PieceStyle,
}

impl std::fmt::Debug for HfTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfTokenizer")
            .field("n_vocab", &self.texts.len())
            .field("style", &self.style)
            .finish_non_exhaustive()
    }
}

fn hf_err(context: &str, e: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::HfJson {
        context: context.to_string(),
        msg: e.to_string(),
    }
}

impl HfTokenizer {
    pub(crate) fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        let ctx = path.display().to_string();
        if !path.is_file() {
            return Err(TokenizerError::Io {
                path: ctx,
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let mut parse = tokenizers::Tokenizer::from_file(path).map_err(|e| hf_err(&ctx, e))?;
        // Packaged tokenizers often pad/truncate to a fixed length for batching; ids for
        // one text must not depend on that.
        parse.with_padding(None);
        parse.with_truncation(None).map_err(|e| hf_err(&ctx, e))?;
        let mut plain = parse.clone();
        plain.set_encode_special_tokens(true);

        let n = parse.get_vocab_size(true);
        let mut texts = vec![String::new(); n];
        for (text, id) in parse.get_vocab(true) {
            if let Some(slot) = texts.get_mut(id as usize) {
                *slot = text;
            }
        }
        let mut special = vec![false; n];
        let mut eog = BTreeSet::new();
        for (id, tok) in parse.get_added_tokens_decoder() {
            if let Some(s) = special.get_mut(id as usize) {
                *s = tok.special;
            }
            if crate::special::is_eog_text(&tok.content) {
                eog.insert(id);
            }
        }
        let style = match parse.get_decoder() {
            Some(DecoderWrapper::ByteLevel(_)) => PieceStyle::ByteLevel,
            Some(DecoderWrapper::WordPiece(_)) => PieceStyle::WordPiece,
            _ => PieceStyle::Metaspace,
        };
        Ok(HfTokenizer {
            parse,
            plain,
            texts,
            special,
            eog,
            style,
        })
    }

    pub(crate) fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let tok = if parse_special {
            &self.parse
        } else {
            &self.plain
        };
        let enc = tok
            .encode(text, add_special)
            .map_err(|e| hf_err("encode", e))?;
        Ok(enc.get_ids().to_vec())
    }

    pub(crate) fn decode(&self, ids: &[u32], render_special: bool) -> String {
        // Out-of-range ids make the crate fail; drop them like unknown pieces.
        let ids: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&id| (id as usize) < self.texts.len())
            .collect();
        self.parse.decode(&ids, !render_special).unwrap_or_default()
    }

    pub(crate) fn token_to_piece(&self, id: u32, render_special: bool) -> Vec<u8> {
        let Some(text) = self.texts.get(id as usize) else {
            return Vec::new();
        };
        if self.special[id as usize] {
            return if render_special {
                text.as_bytes().to_vec()
            } else {
                Vec::new()
            };
        }
        match self.style {
            PieceStyle::ByteLevel => text
                .chars()
                .map(|c| char_to_byte(c).unwrap_or(b'?'))
                .collect(),
            PieceStyle::WordPiece => match text.strip_prefix("##") {
                Some(rest) => rest.as_bytes().to_vec(),
                None => format!(" {text}").into_bytes(),
            },
            PieceStyle::Metaspace => {
                let byte = text
                    .strip_prefix("<0x")
                    .and_then(|h| h.strip_suffix('>'))
                    .filter(|h| h.len() == 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match byte {
                    Some(b) => vec![b],
                    None => text.replace('\u{2581}', " ").into_bytes(),
                }
            }
        }
    }

    pub(crate) fn n_vocab(&self) -> usize {
        self.texts.len()
    }
    pub(crate) fn token_text(&self, id: u32) -> Option<&str> {
        self.texts.get(id as usize).map(String::as_str)
    }
    pub(crate) fn token_id(&self, text: &str) -> Option<u32> {
        self.parse.token_to_id(text)
    }
    pub(crate) fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }
    pub(crate) fn eog(&self) -> &BTreeSet<u32> {
        &self.eog
    }
}
