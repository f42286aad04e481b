//! Sequences, KV cache, sampler chain and generation loop.

mod constraint;
mod details;
mod embed;
mod error;
mod kvpool;
mod local;
mod manager;
pub mod rng;
pub mod sampler;
mod scheduler;
mod session;
pub mod stop;

pub use error::{EngineError, Result};
pub use local::{LocalBackend, LocalOptions};
pub use manager::{ManagerOptions, ModelManager, ModelSource};
pub use sampler::{Sampler, SamplingParams};
pub use session::{FinishReason, GenerateParams, Output, Session, Timings};
