//! Tokenizers (SPM, BPE, WordPiece, Unigram) from GGUF or tokenizer.json, a streaming
//! UTF-8-safe detokenizer, and chat templates.
//!
//! [`Tokenizer::from_gguf`] reproduces what llama.cpp builds from a GGUF file's
//! `tokenizer.ggml.*` metadata, token for token: SentencePiece (`llama`), byte-level BPE
//! (`gpt2`, with the pre-tokenizer named by `tokenizer.ggml.pre`), SentencePiece-style BPE
//! (`gemma4`), WordPiece (`bert`) and Unigram (`t5`). It is checked against llama.cpp's
//! own vocabulary test vectors and against llama.cpp run on a real model.

mod bpe;
mod error;
mod gguf_tok;
#[cfg(feature = "hf")]
mod hf;
mod pre;
mod special;
mod split;
mod spm;
mod stream;
pub mod template;
mod text_index;
mod tokenizer;
mod ugm;
mod unicode;
mod vocab;
mod wpm;

pub use error::TokenizerError;
pub use stream::StreamDecoder;
pub use tokenizer::{TokenKind, Tokenizer};
pub use vocab::VocabKind;
