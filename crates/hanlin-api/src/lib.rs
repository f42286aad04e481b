//! OpenAI/Ollama wire types, validation and the InferenceBackend trait.

pub mod backend;
pub mod choices;
pub mod error;
pub mod ollama;
pub mod openai;
pub mod structured;
pub mod tools;
pub mod validate;

pub use backend::{
    generation_channel, BackendError, BackendStats, CancelToken, Constraint, EmbeddingJob,
    EmbeddingOutput, FinishReason, GenerationEvent, GenerationRequest, GenerationSink,
    GenerationStream, InferenceBackend, KeepAlive, LoadJob, LoadedModel, ModelCard, ModelDetails,
    OutputConstraint, PromptInput, SamplingOptions, TokenLogprob, Usage,
};
pub use error::{ApiError, ErrorKind};
