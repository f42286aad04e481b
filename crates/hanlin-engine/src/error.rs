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
