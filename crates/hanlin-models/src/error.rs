//! Errors from loading or running a model.

use hanlin_gguf::GgmlType;

/// What can go wrong turning a GGUF file into a runnable model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file itself is unreadable or malformed.
    #[error(transparent)]
    Gguf(#[from] hanlin_gguf::GgufError),
    /// `general.architecture` names something we cannot run.
    #[error("unknown architecture {0:?} (supported: llama, qwen2, qwen3, gemma3, bert)")]
    UnknownArchitecture(String),
    /// A hyperparameter the architecture needs is absent.
    #[error("missing metadata key {0:?}")]
    MissingKey(String),
    /// A hyperparameter has an impossible value.
    #[error("bad hyperparameter {key}: {why}")]
    BadHyperparameter {
        /// The key.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("missing tensor {0:?}")]
    MissingTensor(String),
    /// A tensor's shape differs from what the hyperparameters imply.
    #[error("tensor {name:?} has shape {found:?}, expected {expected:?}")]
    WrongShape {
        /// Tensor name.
        name: String,
        /// Shape in the file (ggml order).
        found: Vec<u64>,
        /// Shape implied by the hyperparameters.
        expected: Vec<u64>,
    },
    /// A tensor type the kernels cannot multiply.
    #[error("tensor {name:?}: type {ty} is not supported for {op}")]
    UnsupportedType {
        /// Tensor name.
        name: String,
        /// Its type.
        ty: GgmlType,
        /// The operation.
        op: &'static str,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {n_vocab}")]
    BadToken {
        /// The id.
        id: u32,
        /// Vocabulary size.
        n_vocab: usize,
    },
    /// The sequence does not fit in the KV cache.
    #[error("context full: {needed} positions needed, the context holds {n_ctx}")]
    ContextFull {
        /// Positions needed.
        needed: usize,
        /// Context size.
        n_ctx: usize,
    },
    /// Quantization kernel error.
    #[error("kernel error: {0}")]
    Kernel(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, ModelError>;
