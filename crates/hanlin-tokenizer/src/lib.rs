//! Tokenizers (SPM, BPE, WordPiece) from GGUF or tokenizer.json, detokenizer, chat templates.

pub mod template;
