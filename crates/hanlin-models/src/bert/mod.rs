//! BERT encoders for sentence embeddings (all-MiniLM-L6-v2 and relatives).
//!
//! A [`BertModel`] loads from a GGUF file with llama.cpp's `bert` names and keys, or straight
//! from a Hugging Face checkpoint directory (`config.json` + `model.safetensors`, with
//! sentence-transformers' pooling files when present); both end in the same weights, and
//! [`write_gguf`] converts the one into the other. The forward is post-LayerNorm BERT with
//! erf GELU and absolute positions, token type 0 throughout; sentence vectors are mean- or
//! CLS-pooled and optionally L2-normalised, as the checkpoint says.

mod config;
mod convert;
mod error;
mod forward;
mod safetensors;
mod weights;

use std::path::Path;

use hanlin_gguf::GgufFile;
use hanlin_kernels::ThreadPool;

pub use config::{BertConfig, Pooling};
pub use convert::{write_gguf, write_gguf_with, GgufWeightType};
pub use error::{BertError, Result};
pub use forward::{erf, gelu_erf};
pub use weights::hf_name;

use crate::error::ModelError;
use crate::weights::Weight;
use forward::Encoder;
use weights::{weight_from_shape, BertWeights, Loader};

/// Most tokens [`BertModel::embed_batch`] packs into one forward (bounds scratch memory).
const MAX_BATCH_TOKENS: usize = 2048;

/// Where the weight bytes live.
enum Store {
    /// A memory-mapped GGUF file.
    Gguf(GgufFile),
    /// A safetensors file read into memory.
    Bytes(Vec<u8>),
}

impl Store {
    fn bytes(&self) -> &[u8] {
        match self {
            Store::Gguf(f) => f.as_bytes(),
            Store::Bytes(b) => b,
        }
    }
}

/// A BERT encoder that turns token ids into sentence embeddings.
pub struct BertModel {
    config: BertConfig,
    store: Store,
    weights: BertWeights,
    pool: ThreadPool,
}

impl std::fmt::Debug for BertModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertModel")
            .field("config", &self.config)
            .finish()
    }
}

fn default_pool() -> ThreadPool {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    ThreadPool::new(threads)
}

impl BertModel {
    /// Loads a GGUF file (arch `bert`) or, when `path` is a directory, a Hugging Face
    /// checkpoint.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.is_dir() {
            Self::from_hf_dir(path)
        } else {
            Self::load_gguf(path)
        }
    }

    /// Loads a GGUF file with llama.cpp's BERT tensor names and `bert.*` keys.
    pub fn load_gguf(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_gguf(GgufFile::open(path)?)
    }

    /// Builds the encoder over an opened GGUF file.
    pub fn from_gguf(file: GgufFile) -> Result<Self> {
        let rows_of = |name: &str| -> Result<usize> {
            let t = file
                .tensor(name)
                .ok_or_else(|| ModelError::MissingTensor(name.into()))?;
            Ok(t.rows_cols().0 as usize)
        };
        let config = BertConfig::from_gguf(
            &file,
            rows_of("token_embd.weight")?,
            rows_of("token_types.weight")?,
        )?;
        let find = |name: &str| -> Result<Option<Weight>> {
            let Some(t) = file.tensor(name) else {
                return Ok(None);
            };
            let (rows, cols) = t.rows_cols();
            Ok(Some(Weight {
                name: t.name.clone(),
                ty: t.ggml_type,
                rows: rows as usize,
                cols: cols as usize,
                row_bytes: cols as usize / t.ggml_type.block_size() * t.ggml_type.type_size(),
                start: t.start as usize,
                packed: None,
            }))
        };
        let weights = Loader {
            bytes: file.as_bytes(),
            find,
            cfg: &config,
        }
        .load()?;
        Ok(BertModel {
            config,
            store: Store::Gguf(file),
            weights,
            pool: default_pool(),
        })
    }

    /// Loads a Hugging Face BERT checkpoint directory: `config.json`, `model.safetensors`
    /// and, if present, sentence-transformers' `modules.json` and pooling config.
    pub fn from_hf_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let config = BertConfig::from_hf_dir(dir)?;
        let path = dir.join("model.safetensors");
        let ps = path.display().to_string();
        let bytes = std::fs::read(&path).map_err(|source| BertError::Io {
            path: ps.clone(),
            source,
        })?;
        let tensors = safetensors::parse(&bytes, &ps)?;
        let find = |name: &str| -> Result<Option<Weight>> {
            let Some(hf) = hf_name(name) else {
                return Ok(None);
            };
            // Task-head checkpoints (BertForMaskedLM …) prefix the encoder with `bert.`.
            let Some(t) = tensors
                .iter()
                .find(|t| t.name == hf || t.name.strip_prefix("bert.") == Some(hf.as_str()))
            else {
                return Ok(None);
            };
            let ty = t.ggml_type().ok_or_else(|| BertError::Config {
                path: ps.clone(),
                key: t.name.clone(),
                why: format!("dtype {} is not F32, F16 or BF16", t.dtype),
            })?;
            weight_from_shape(&t.name, ty, &t.shape, t.start).map(Some)
        };
        let weights = Loader {
            bytes: &bytes,
            find,
            cfg: &config,
        }
        .load()?;
        Ok(BertModel {
            config,
            store: Store::Bytes(bytes),
            weights,
            pool: default_pool(),
        })
    }

    /// Hyperparameters, pooling and normalisation.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The longest sequence (in tokens, `[CLS]` and `[SEP]` included) the model accepts.
    pub fn max_tokens(&self) -> usize {
        self.config.n_ctx
    }

    /// Output dimension of [`embed`](Self::embed).
    pub fn dim(&self) -> usize {
        self.config.n_embd
    }

    /// Overrides the pooling mode the checkpoint asked for.
    pub fn set_pooling(&mut self, pooling: Pooling) {
        self.config.pooling = pooling;
    }

    /// Turns L2 normalisation of sentence vectors on or off.
    pub fn set_normalize(&mut self, normalize: bool) {
        self.config.normalize = normalize;
    }

    /// Sets how many threads the forward uses.
    pub fn set_threads(&mut self, n: usize) {
        if n.max(1) != self.pool.threads() {
            self.pool = ThreadPool::new(n.max(1));
        }
    }

    /// Threads the forward uses.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// The sentence embedding of one tokenized text (ids with `[CLS]` … `[SEP]`).
    pub fn embed(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let mut out = self.embed_batch(&[ids])?;
        out.pop()
            .ok_or_else(|| BertError::Unsupported("empty batch result".into()))
    }

    /// Sentence embeddings of several tokenized texts, in order; each is computed exactly as
    /// [`embed`](Self::embed) would.
    pub fn embed_batch<S: AsRef<[u32]>>(&self, seqs: &[S]) -> Result<Vec<Vec<f32>>> {
        for (index, s) in seqs.iter().enumerate() {
            self.check(index, s.as_ref())?;
        }
        let mut out = Vec::with_capacity(seqs.len());
        let mut start = 0;
        while start < seqs.len() {
            // Greedy groups up to MAX_BATCH_TOKENS; a longer sequence runs alone.
            let mut end = start + 1;
            let mut tokens = seqs[start].as_ref().len();
            while end < seqs.len() && tokens + seqs[end].as_ref().len() <= MAX_BATCH_TOKENS {
                tokens += seqs[end].as_ref().len();
                end += 1;
            }
            let group: Vec<&[u32]> = seqs[start..end].iter().map(AsRef::as_ref).collect();
            self.embed_group(&group, &mut out)?;
            start = end;
        }
        Ok(out)
    }

    fn check(&self, index: usize, ids: &[u32]) -> Result<()> {
        if ids.is_empty() {
            return Err(BertError::Empty { index });
        }
        if ids.len() > self.config.n_ctx {
            return Err(BertError::TooLong {
                index,
                len: ids.len(),
                max: self.config.n_ctx,
            });
        }
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.config.n_vocab) {
            return Err(ModelError::BadToken {
                id,
                n_vocab: self.config.n_vocab,
            }
            .into());
        }
        Ok(())
    }

    fn embed_group(&self, group: &[&[u32]], out: &mut Vec<Vec<f32>>) -> Result<()> {
        let hidden = Encoder {
            cfg: &self.config,
            w: &self.weights,
            bytes: self.store.bytes(),
            pool: &self.pool,
        }
        .forward(group)?;
        let d = self.config.n_embd;
        let mut row = 0;
        for s in group {
            let h = &hidden[row * d..(row + s.len()) * d];
            row += s.len();
            let mut v: Vec<f32> = match self.config.pooling {
                Pooling::Cls => h[..d].to_vec(),
                Pooling::Mean => {
                    let mut acc = vec![0f64; d];
                    for tok in h.chunks_exact(d) {
                        for (a, &x) in acc.iter_mut().zip(tok) {
                            *a += f64::from(x);
                        }
                    }
                    acc.iter().map(|&a| (a / s.len() as f64) as f32).collect()
                }
            };
            if self.config.normalize {
                l2_normalize(&mut v);
            }
            out.push(v);
        }
        Ok(())
    }
}

/// Scales `v` to unit length (sentence-transformers' `Normalize`: divides by max(‖v‖, 1e-12)).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let inv = 1.0 / norm.max(1e-12);
    for x in v {
        *x = (f64::from(*x) * inv) as f32;
    }
}
