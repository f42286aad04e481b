//! Errors from loading, converting or running a BERT encoder.

use crate::error::ModelError;

/// What can go wrong with a BERT encoder, from reading files to embedding ids.
#[derive(Debug, thiserror::Error)]
pub enum BertError {
    /// A problem shared with the decoder models (missing tensor, wrong shape, bad token …).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The GGUF file is unreadable or malformed.
    #[error(transparent)]
    Gguf(#[from] hanlin_gguf::GgufError),
    /// A file of a Hugging Face checkpoint could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A JSON file of a Hugging Face checkpoint is not valid JSON.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file.
        path: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A Hugging Face file parses but says something impossible or is missing a field.
    #[error("{path}: {key}: {why}")]
    Config {
        /// The file.
        path: String,
        /// The field (or tensor) at fault.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// A checkpoint asks for a feature this encoder does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A sequence has more tokens than the position-embedding table.
    #[error("sequence {index} has {len} tokens, more than the model's {max} positions")]
    TooLong {
        /// Which sequence of the batch.
        index: usize,
        /// Its length.
        len: usize,
        /// Positions the model has.
        max: usize,
    },
    /// A sequence has no tokens at all (even an empty text gives `[CLS] [SEP]`).
    #[error("sequence {index} is empty: an embedding needs at least one token")]
    Empty {
        /// Which sequence of the batch.
        index: usize,
    },
}

/// Result alias for the BERT encoder.
pub type Result<T> = std::result::Result<T, BertError>;
