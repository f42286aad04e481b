//! BERT hyperparameters, read from GGUF metadata (llama.cpp's `bert.*` keys) or from a
//! Hugging Face `config.json` plus sentence-transformers' pooling files.

use std::path::Path;

use hanlin_gguf::GgufFile;

use super::error::{BertError, Result};
use crate::error::ModelError;

/// How token vectors become one sentence vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over the sequence's tokens (sentence-transformers' `pooling_mode_mean_tokens`).
    Mean,
    /// The first token's vector (`[CLS]`).
    Cls,
}

impl Pooling {
    /// llama.cpp's `bert.pooling_type` value (`enum llama_pooling_type`).
    pub fn llama_cpp_id(self) -> u32 {
        match self {
            Pooling::Mean => 1,
            Pooling::Cls => 2,
        }
    }

    fn from_llama_cpp_id(id: u64) -> Result<Self> {
        match id {
            1 => Ok(Pooling::Mean),
            2 => Ok(Pooling::Cls),
            // 0 none, 3 last, 4 rank: not sentence embeddings in the sense we serve.
            other => Err(BertError::Unsupported(format!(
                "bert.pooling_type {other} (supported: 1 mean, 2 cls)"
            ))),
        }
    }
}

/// Hyperparameters of a BERT encoder.
#[derive(Clone, Debug, PartialEq)]
pub struct BertConfig {
    /// Vocabulary size (rows of the token embedding).
    pub n_vocab: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Encoder blocks.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Feed-forward (intermediate) size.
    pub n_ff: usize,
    /// Positions in the absolute position-embedding table: the longest sequence.
    pub n_ctx: usize,
    /// Rows of the token-type table (only type 0 is used).
    pub n_token_types: usize,
    /// LayerNorm epsilon.
    pub eps: f32,
    /// Sentence pooling.
    pub pooling: Pooling,
    /// Whether sentence vectors are L2-normalised.
    pub normalize: bool,
}

impl BertConfig {
    /// Per-head dimension.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Checks the sizes are usable; `source` names where they came from.
    fn validate(&self, source: &str) -> Result<()> {
        let bad = |key: &str, why: String| {
            BertError::Model(ModelError::BadHyperparameter {
                key: format!("{source}: {key}"),
                why,
            })
        };
        for (key, v) in [
            ("embedding_length", self.n_embd),
            ("block_count", self.n_layer),
            ("head_count", self.n_head),
            ("feed_forward_length", self.n_ff),
            ("context_length", self.n_ctx),
        ] {
            if v == 0 {
                return Err(bad(key, "must be positive".into()));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(bad(
                "head_count",
                format!(
                    "{} heads do not divide the hidden size {}",
                    self.n_head, self.n_embd
                ),
            ));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(bad(
                "layer_norm_epsilon",
                format!("{} is not positive", self.eps),
            ));
        }
        Ok(())
    }

    /// Reads llama.cpp's `bert.*` keys; `n_vocab` and `n_token_types` come from the tensors.
    pub fn from_gguf(f: &GgufFile, n_vocab: usize, n_token_types: usize) -> Result<Self> {
        let arch = f
            .get_str("general.architecture")?
            .ok_or_else(|| ModelError::MissingKey("general.architecture".into()))?;
        if arch != "bert" {
            return Err(ModelError::UnknownArchitecture(format!(
                "{arch} (BertModel loads only arch \"bert\")"
            ))
            .into());
        }
        let req = |key: &str| -> Result<usize> {
            let v = f
                .get_u64(key)?
                .ok_or_else(|| ModelError::MissingKey(key.into()))?;
            usize::try_from(v).map_err(|_| {
                BertError::Model(ModelError::BadHyperparameter {
                    key: key.into(),
                    why: format!("{v} does not fit in memory"),
                })
            })
        };
        if f.get_bool("bert.attention.causal")? == Some(true) {
            return Err(BertError::Unsupported(
                "bert.attention.causal = true (BERT attends both ways)".into(),
            ));
        }
        let eps_key = "bert.attention.layer_norm_epsilon";
        let eps = f
            .get_f64(eps_key)?
            .ok_or_else(|| ModelError::MissingKey(eps_key.into()))? as f32;
        let pooling = match f.get_u64("bert.pooling_type")? {
            Some(id) => Pooling::from_llama_cpp_id(id)?,
            None => {
                tracing::warn!("GGUF has no bert.pooling_type: using mean pooling");
                Pooling::Mean
            }
        };
        let cfg = BertConfig {
            n_vocab,
            n_embd: req("bert.embedding_length")?,
            n_layer: req("bert.block_count")?,
            n_head: req("bert.attention.head_count")?,
            n_ff: req("bert.feed_forward_length")?,
            n_ctx: req("bert.context_length")?,
            n_token_types,
            eps,
            pooling,
            // GGUF has no key for it; llama.cpp normalises embeddings (L2) by default.
            normalize: true,
        };
        cfg.validate("gguf")?;
        Ok(cfg)
    }

    /// Reads `config.json` of a Hugging Face BERT checkpoint in `dir`, with pooling and
    /// normalisation from sentence-transformers' `modules.json` / `1_Pooling/config.json`
    /// when present (mean pooling, L2-normalised, otherwise).
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let ps = path.display().to_string();
        let c = read_json(&path)?;
        let bad = |key: &str, why: &str| BertError::Config {
            path: ps.clone(),
            key: key.into(),
            why: why.into(),
        };
        let num = |key: &str| -> Result<usize> {
            c.get(key)
                .and_then(|v| v.as_u64())
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| bad(key, "missing or not a non-negative integer"))
        };
        if let Some(t) = c.get("model_type").and_then(|v| v.as_str()) {
            if t != "bert" {
                return Err(BertError::Unsupported(format!(
                    "{ps}: model_type {t:?} (only \"bert\")"
                )));
            }
        }
        let act = c
            .get("hidden_act")
            .and_then(|v| v.as_str())
            .unwrap_or("gelu");
        if act != "gelu" {
            return Err(BertError::Unsupported(format!(
                "{ps}: hidden_act {act:?} (only \"gelu\", the erf form)"
            )));
        }
        let pos = c
            .get("position_embedding_type")
            .and_then(|v| v.as_str())
            .unwrap_or("absolute");
        if pos != "absolute" {
            return Err(BertError::Unsupported(format!(
                "{ps}: position_embedding_type {pos:?} (only \"absolute\")"
            )));
        }
        if c.get("is_decoder").and_then(|v| v.as_bool()) == Some(true) {
            return Err(BertError::Unsupported(format!("{ps}: is_decoder = true")));
        }
        let eps = c
            .get("layer_norm_eps")
            .and_then(|v| v.as_f64())
            .ok_or_else(|| bad("layer_norm_eps", "missing or not a number"))?
            as f32;
        let (pooling, normalize) = sentence_transformers_head(dir)?;
        let cfg = BertConfig {
            n_vocab: num("vocab_size")?,
            n_embd: num("hidden_size")?,
            n_layer: num("num_hidden_layers")?,
            n_head: num("num_attention_heads")?,
            n_ff: num("intermediate_size")?,
            n_ctx: num("max_position_embeddings")?,
            n_token_types: num("type_vocab_size").unwrap_or(2),
            eps,
            pooling,
            normalize,
        };
        cfg.validate(&ps)?;
        Ok(cfg)
    }
}

/// Reads and parses a JSON file.
pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value> {
    let ps = || path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| BertError::Io { path: ps(), source })?;
    serde_json::from_slice(&bytes).map_err(|source| BertError::Json { path: ps(), source })
}

/// Pooling and normalisation from sentence-transformers' module list, if the directory has
/// one: the Pooling module's config picks the mode, a Normalize module turns on L2.
fn sentence_transformers_head(dir: &Path) -> Result<(Pooling, bool)> {
    let modules_path = dir.join("modules.json");
    let (pool_dir, normalize) = if modules_path.is_file() {
        let modules = read_json(&modules_path)?;
        let list = modules.as_array().ok_or_else(|| BertError::Config {
            path: modules_path.display().to_string(),
            key: "modules".into(),
            why: "is not a JSON array".into(),
        })?;
        let ty = |m: &serde_json::Value| -> String {
            m.get("type")
                .and_then(|t| t.as_str())
                .unwrap_or("")
                .to_string()
        };
        let pool_dir = list
            .iter()
            .find(|m| ty(m).ends_with("models.Pooling"))
            .and_then(|m| m.get("path").and_then(|p| p.as_str()))
            .map(|p| dir.join(p));
        let normalize = list.iter().any(|m| ty(m).ends_with("models.Normalize"));
        (pool_dir, normalize)
    } else {
        (Some(dir.join("1_Pooling")), true)
    };
    let Some(cfg_path) = pool_dir
        .map(|d| d.join("config.json"))
        .filter(|p| p.is_file())
    else {
        return Ok((Pooling::Mean, normalize));
    };
    let c = read_json(&cfg_path)?;
    let on = |key: &str| c.get(key).and_then(|v| v.as_bool()).unwrap_or(false);
    let mut modes = Vec::new();
    for (key, mode) in [
        ("pooling_mode_mean_tokens", Some(Pooling::Mean)),
        ("pooling_mode_cls_token", Some(Pooling::Cls)),
        ("pooling_mode_max_tokens", None),
        ("pooling_mode_mean_sqrt_len_tokens", None),
        ("pooling_mode_weightedmean_tokens", None),
        ("pooling_mode_lasttoken", None),
    ] {
        if on(key) {
            modes.push((key, mode));
        }
    }
    match modes.as_slice() {
        [] => Ok((Pooling::Mean, normalize)),
        [(_, Some(mode))] => Ok((*mode, normalize)),
        [(key, None)] => Err(BertError::Unsupported(format!(
            "{}: {key} (supported: mean, cls)",
            cfg_path.display()
        ))),
        _ => Err(BertError::Unsupported(format!(
            "{}: several pooling modes at once",
            cfg_path.display()
        ))),
    }
}
