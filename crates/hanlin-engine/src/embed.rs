//! Embedding models (BERT family) served by the local backend, each on its own thread.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};

use hanlin_api::{
    BackendError, EmbeddingJob, EmbeddingOutput, ModelCard, ModelDetails, PromptInput,
};
use hanlin_gguf::GgufFile;
use hanlin_models::bert::BertModel;
use hanlin_tokenizer::Tokenizer;

use crate::error::{EngineError, Result};

struct Job {
    inputs: Vec<Vec<u32>>,
    reply: tokio::sync::oneshot::Sender<std::result::Result<EmbeddingOutput, BackendError>>,
}

/// A loaded embedding model.
pub(crate) struct Encoder {
    pub(crate) card: ModelCard,
    pub(crate) details: ModelDetails,
    tokenizer: Tokenizer,
    max_tokens: usize,
    tx: SyncSender<Job>,
}

impl Encoder {
    /// Loads a BERT GGUF and starts its worker thread.
    pub(crate) fn start(
        id: &str,
        path: &Path,
        file: GgufFile,
        threads: Option<usize>,
        queue: usize,
    ) -> Result<Self> {
        let details = crate::details::model_details(&file, path);
        let tokenizer = Tokenizer::from_gguf(&file)?;
        let mut model =
            BertModel::from_gguf(file).map_err(|e| EngineError::Embedding(e.to_string()))?;
        if let Some(n) = threads {
            model.set_threads(n);
        }
        let max_tokens = model.max_tokens();
        let (tx, rx) = mpsc::sync_channel(queue.max(1));
        std::thread::Builder::new()
            .name(format!("hanlin-embed-{id}"))
            .spawn(move || run(model, rx))
            .map_err(|e| EngineError::Thread(e.to_string()))?;
        let card = ModelCard {
            id: id.to_string(),
            created: crate::local::now_s(),
            owned_by: "hanlin".into(),
            context_length: max_tokens,
        };
        Ok(Encoder {
            card,
            details,
            tokenizer,
            max_tokens,
            tx,
        })
    }

    /// Tokenizes and enqueues `inputs`.
    pub(crate) fn embed(
        &self,
        inputs: Vec<PromptInput>,
    ) -> std::result::Result<EmbeddingJob, BackendError> {
        let bad = |i: usize, m: String| BackendError::InvalidRequest {
            param: Some(format!("input.[{i}]")),
            message: m,
        };
        let mut ids = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.into_iter().enumerate() {
            let t = match input {
                PromptInput::Text(t) => self
                    .tokenizer
                    .encode(&t, true, false)
                    .map_err(|e| bad(i, e.to_string()))?,
                PromptInput::Tokens(t) => t,
                PromptInput::Chat { .. } => {
                    return Err(bad(i, "chat messages cannot be embedded".into()))
                }
            };
            if t.len() > self.max_tokens {
                return Err(BackendError::ContextLengthExceeded {
                    n_ctx: self.max_tokens,
                    needed: t.len(),
                });
            }
            ids.push(t);
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        match self.tx.try_send(Job { inputs: ids, reply }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(BackendError::Overloaded { retry_after_s: 1 }),
            Err(TrySendError::Disconnected(_)) => Err(BackendError::Internal(
                "the embedding thread stopped".into(),
            )),
        }
    }
}

fn run(model: BertModel, rx: Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        if job.reply.is_closed() {
            continue;
        }
        let prompt_tokens = job.inputs.iter().map(Vec::len).sum();
        let out = model
            .embed_batch(&job.inputs)
            .map(|embeddings| EmbeddingOutput {
                embeddings,
                prompt_tokens,
            })
            .map_err(|e| BackendError::InvalidRequest {
                param: Some("input".into()),
                message: e.to_string(),
            });
        let _ = job.reply.send(out);
    }
}
