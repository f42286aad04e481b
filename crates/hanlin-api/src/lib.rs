//! OpenAI/Ollama wire types, validation and the InferenceBackend trait.

pub mod backend;

pub use backend::{
    generation_channel, BackendError, CancelToken, FinishReason, GenerationEvent,
    GenerationRequest, GenerationSink, GenerationStream, InferenceBackend, ModelCard, PromptInput,
    SamplingOptions, TokenLogprob, Usage,
};
