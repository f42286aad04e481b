//! Engine errors.

/// What can go wrong while generating.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model failed.
    #[error(transparent)]
    Model(#[from] hanlin_models::ModelError),
    /// The tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] hanlin_tokenizer::TokenizerError),
    /// The model's chat template does not compile.
    #[error("chat template: {0}")]
    Template(String),
    /// An embedding model failed to load.
    #[error("embedding model: {0}")]
    Embedding(String),
    /// An engine thread could not be started.
    #[error("cannot start the engine thread: {0}")]
    Thread(String),
    /// Nothing to condition on.
    #[error("the prompt is empty")]
    EmptyPrompt,
    /// The prompt does not fit.
    #[error("the prompt has {tokens} tokens but the context holds {n_ctx}; use a larger --ctx or a shorter prompt")]
    PromptTooLong {
        /// Prompt tokens.
        tokens: usize,
        /// Context size.
        n_ctx: usize,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, EngineError>;
