//! Errors from loading and running tokenizers.

/// Everything that can go wrong building or running a tokenizer; each variant says what.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A GGUF metadata value could not be read (wrong type and the like).
    #[error("GGUF metadata: {0}")]
    Gguf(#[from] hanlin_gguf::GgufError),
    /// A required GGUF key is absent.
    #[error("GGUF metadata has no {0:?}: not a model with a vocabulary")]
    MissingKey(&'static str),
    /// A GGUF key holds something that cannot be right.
    #[error("GGUF metadata {key:?}: {msg}")]
    BadMetadata {
        /// The key.
        key: &'static str,
        /// What is wrong with it.
        msg: String,
    },
    /// `tokenizer.ggml.model` names a tokenizer this crate does not implement.
    #[error("unknown tokenizer model {0:?} (tokenizer.ggml.model)")]
    UnknownModel(String),
    /// `tokenizer.ggml.pre` names a pre-tokenizer this crate does not implement.
    #[error("unknown pre-tokenizer {0:?} (tokenizer.ggml.pre)")]
    UnknownPre(String),
    /// Two ids share one token text.
    #[error("duplicate token in vocabulary: {text:?} has ids {first} and {second}")]
    DuplicateToken {
        /// The text.
        text: String,
        /// The first id.
        first: u32,
        /// The second id.
        second: u32,
    },
    /// A pre-tokenizer pattern failed to compile or ran into a matcher limit.
    #[error("pre-tokenizer pattern {pattern:?}: {msg}")]
    Pattern {
        /// The pattern as llama.cpp spells it.
        pattern: String,
        /// The regex engine's message.
        msg: String,
    },
    /// The vocabulary loads but this operation is not implemented for its kind.
    #[error("{0}")]
    Unsupported(String),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A Hugging Face `tokenizer.json` failed to load or to encode.
    #[error("tokenizer.json {context}: {msg}")]
    HfJson {
        /// File path or operation.
        context: String,
        /// The `tokenizers` crate's message.
        msg: String,
    },
}
