//! Hyperparameters read from GGUF metadata, shared by every decoder architecture.

use hanlin_gguf::GgufFile;

use crate::error::{ModelError, Result};

/// The architectures we can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Llama 2/3.x, Mistral, TinyLlama, DeepSeek-R1-Distill-Llama.
    Llama,
    /// Qwen2/2.5 and DeepSeek-R1-Distill-Qwen (q/k/v biases).
    Qwen2,
    /// Qwen3 (q/k norms).
    Qwen3,
    /// Gemma 3 (sliding window pattern, pre+post norms, GELU, embedding scale).
    Gemma3,
}

impl Arch {
    /// Parses `general.architecture`.
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "llama" | "mistral" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            "gemma3" => Arch::Gemma3,
            other => return Err(ModelError::UnknownArchitecture(other.to_string())),
        })
    }

    /// The GGUF key prefix.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3",
        }
    }
}

/// How RoPE pairs dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeLayout {
    /// Adjacent pairs (x0,x1), (x2,x3) … — llama.
    Normal,
    /// Halves (x_i, x_{i+n/2}) — GPT-NeoX, Qwen, Gemma.
    Neox,
}

/// RoPE frequency scaling read from metadata.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Positions divided by `factor`.
    Linear {
        /// Scale factor (> 1 stretches context).
        factor: f32,
    },
    /// YaRN with the original training context.
    Yarn {
        /// Scale factor.
        factor: f32,
        /// Training context before extension.
        orig_ctx: usize,
        /// Ramp bounds.
        beta_fast: f32,
        /// Ramp bounds.
        beta_slow: f32,
        /// `rope.scaling.attn_factor`: extra magnitude on cos/sin (1 when absent).
        attn_factor: f32,
    },
    /// Llama 3.x per-frequency factors (from the `rope_freqs.weight` tensor).
    Llama3,
}

/// Feed-forward activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// SiLU-gated (SwiGLU).
    Silu,
    /// GELU (tanh approximation)-gated (GEGLU).
    Gelu,
}

/// Everything the forward pass needs to know about a decoder model.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// Architecture.
    pub arch: Arch,
    /// Vocabulary size (rows of the embedding).
    pub n_vocab: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Layers.
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (GQA when fewer than `n_head`).
    pub n_head_kv: usize,
    /// Per-head key (and query) size.
    pub head_dim_k: usize,
    /// Per-head value size.
    pub head_dim_v: usize,
    /// Feed-forward inner size.
    pub n_ff: usize,
    /// RMSNorm epsilon.
    pub norm_eps: f32,
    /// Training context.
    pub context_length: usize,
    /// Dimensions rotated per head.
    pub n_rot: usize,
    /// RoPE base for global layers.
    pub rope_base: f32,
    /// RoPE base for sliding-window layers.
    pub rope_base_swa: f32,
    /// RoPE pairing.
    pub rope_layout: RopeLayout,
    /// RoPE scaling.
    pub rope_scaling: RopeScaling,
    /// Sliding window size for SWA layers.
    pub sliding_window: Option<usize>,
    /// Which layers use the sliding window.
    pub swa_layers: Vec<bool>,
    /// Multiplier applied to queries before attention.
    pub attn_scale: f32,
    /// Multiplier applied to token embeddings (Gemma: sqrt(n_embd)).
    pub embed_scale: Option<f32>,
    /// Feed-forward activation.
    pub activation: Activation,
    /// Final logit soft-capping (tanh), if any.
    pub final_softcap: Option<f32>,
}

impl ModelConfig {
    /// RoPE scaling of a layer with RoPE base `base`, as llama.cpp derives it: sliding-window
    /// layers of iSWA models (Gemma 3) are never scaled; YaRN's magnitude is
    /// `1 + 0.1·ln(factor)` times `rope.scaling.attn_factor`.
    pub fn rope_scale(&self, base: f32, swa: bool) -> crate::ops::RopeScale {
        use crate::ops::RopeScale;
        let global = !(swa && self.arch == Arch::Gemma3);
        match self.rope_scaling {
            RopeScaling::Linear { factor } if global => RopeScale::linear(1.0 / factor),
            RopeScaling::Yarn {
                factor,
                orig_ctx,
                beta_fast,
                beta_slow,
                attn_factor,
            } => {
                let freq_scale = if global { 1.0 / factor } else { 1.0 };
                // llama_context: get_mscale(factor) cancelled by 1 / (1 + 0.1·ln factor), the
                // kernel then multiplies the latter back in; kept in that order for equal floats.
                let f = 1.0 / (1.0 / factor);
                let mut mscale = if f <= 1.0 { 1.0 } else { 0.1 * f.ln() + 1.0 };
                mscale *= 1.0 / (1.0 + 0.1 * f.ln());
                mscale *= attn_factor;
                let orig = if orig_ctx == 0 {
                    self.context_length
                } else {
                    orig_ctx
                };
                RopeScale::yarn(
                    self.n_rot, base, freq_scale, orig, beta_fast, beta_slow, mscale,
                )
            }
            _ => RopeScale::NONE,
        }
    }

    /// Keys/values stored per position per layer.
    pub fn kv_dim_k(&self) -> usize {
        self.n_head_kv * self.head_dim_k
    }

    /// Value elements per position per layer.
    pub fn kv_dim_v(&self) -> usize {
        self.n_head_kv * self.head_dim_v
    }

    /// Reads the config for any supported architecture.
    pub fn from_gguf(f: &GgufFile) -> Result<Self> {
        let arch_name = f
            .get_str("general.architecture")?
            .ok_or_else(|| ModelError::MissingKey("general.architecture".into()))?;
        let arch = Arch::from_name(arch_name)?;
        let m = Meta {
            f,
            prefix: arch.name(),
        };
        let n_embd = m.req_usize("embedding_length")?;
        let n_layer = m.req_usize("block_count")?;
        let n_head = m.req_usize("attention.head_count")?;
        let n_head_kv = m.opt_usize("attention.head_count_kv")?.unwrap_or(n_head);
        if n_head == 0 || n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(ModelError::BadHyperparameter {
                key: format!("{}.attention.head_count_kv", arch.name()),
                why: format!("{n_head} query heads cannot be grouped over {n_head_kv} kv heads"),
            });
        }
        if n_layer == 0 || n_layer > 1024 || n_embd == 0 || n_embd > 1 << 16 {
            return Err(ModelError::BadHyperparameter {
                key: format!("{}.block_count/embedding_length", arch.name()),
                why: format!("{n_layer} layers of width {n_embd}"),
            });
        }
        let head_dim_k = m
            .opt_usize("attention.key_length")?
            .unwrap_or(n_embd / n_head);
        let head_dim_v = m.opt_usize("attention.value_length")?.unwrap_or(head_dim_k);
        let n_rot = m.opt_usize("rope.dimension_count")?.unwrap_or(head_dim_k);
        if n_rot > head_dim_k || n_rot % 2 != 0 {
            return Err(ModelError::BadHyperparameter {
                key: format!("{}.rope.dimension_count", arch.name()),
                why: format!("{n_rot} rotated dims for a head of {head_dim_k}"),
            });
        }
        let n_vocab = match f.tensor("token_embd.weight") {
            Some(t) if t.dims.len() == 2 => t.dims[1] as usize,
            _ => return Err(ModelError::MissingTensor("token_embd.weight".into())),
        };
        let rope_base = m.opt_f32("rope.freq_base")?.unwrap_or(10000.0);
        let rope_scaling = rope_scaling(&m)?;
        let mut cfg = ModelConfig {
            arch,
            n_vocab,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim_k,
            head_dim_v,
            n_ff: m.req_usize("feed_forward_length")?,
            norm_eps: m
                .opt_f32("attention.layer_norm_rms_epsilon")?
                .unwrap_or(1e-5),
            context_length: m.opt_usize("context_length")?.unwrap_or(2048),
            n_rot,
            rope_base,
            rope_base_swa: rope_base,
            rope_layout: RopeLayout::Normal,
            rope_scaling,
            sliding_window: None,
            swa_layers: vec![false; n_layer],
            attn_scale: 1.0 / (head_dim_k as f32).sqrt(),
            embed_scale: None,
            activation: Activation::Silu,
            final_softcap: None,
        };
        match arch {
            Arch::Llama => crate::arch::llama::adjust(&mut cfg, &m)?,
            Arch::Qwen2 => crate::arch::qwen2::adjust(&mut cfg, &m)?,
            Arch::Qwen3 => crate::arch::qwen3::adjust(&mut cfg, &m)?,
            Arch::Gemma3 => crate::arch::gemma3::adjust(&mut cfg, &m)?,
        }
        Ok(cfg)
    }
}

fn rope_scaling(m: &Meta<'_>) -> Result<RopeScaling> {
    let kind = m.f.get_str(&m.key("rope.scaling.type"))?;
    let factor = m.opt_f32("rope.scaling.factor")?.unwrap_or(1.0);
    Ok(match kind {
        None | Some("none") => RopeScaling::None,
        Some("linear") if factor > 0.0 => RopeScaling::Linear { factor },
        Some("yarn") if factor > 0.0 => RopeScaling::Yarn {
            factor,
            orig_ctx: m
                .opt_usize("rope.scaling.original_context_length")?
                .unwrap_or(0),
            beta_fast: m.opt_f32("rope.scaling.yarn_beta_fast")?.unwrap_or(32.0),
            beta_slow: m.opt_f32("rope.scaling.yarn_beta_slow")?.unwrap_or(1.0),
            attn_factor: m.opt_f32("rope.scaling.attn_factor")?.unwrap_or(1.0),
        },
        Some("llama3") => RopeScaling::Llama3,
        Some(other) => {
            return Err(ModelError::BadHyperparameter {
                key: m.key("rope.scaling.type"),
                why: format!("unsupported RoPE scaling {other:?} (factor {factor})"),
            })
        }
    })
}

/// Metadata access scoped to an architecture's key prefix.
pub(crate) struct Meta<'a> {
    pub(crate) f: &'a GgufFile,
    pub(crate) prefix: &'static str,
}

impl Meta<'_> {
    pub(crate) fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.prefix)
    }

    pub(crate) fn opt_usize(&self, k: &str) -> Result<Option<usize>> {
        let key = self.key(k);
        match self.f.get(&key) {
            None => Ok(None),
            // Some converters store per-layer arrays; all our archs use one value for every layer.
            Some(hanlin_gguf::Value::Array(_, items)) => {
                match items.first().and_then(|v| v.as_u64()) {
                    Some(v) if items.iter().all(|x| x.as_u64() == Some(v)) => Ok(Some(v as usize)),
                    _ => Err(ModelError::BadHyperparameter {
                        key,
                        why: "per-layer values differ".into(),
                    }),
                }
            }
            Some(v) => v
                .as_u64()
                .map(|v| Some(v as usize))
                .ok_or(ModelError::BadHyperparameter {
                    key,
                    why: "not an unsigned integer".into(),
                }),
        }
    }

    pub(crate) fn req_usize(&self, k: &str) -> Result<usize> {
        match self.opt_usize(k)? {
            Some(0) => Err(ModelError::BadHyperparameter {
                key: self.key(k),
                why: "is zero".into(),
            }),
            Some(v) => Ok(v),
            None => Err(ModelError::MissingKey(self.key(k))),
        }
    }

    pub(crate) fn opt_f32(&self, k: &str) -> Result<Option<f32>> {
        Ok(self.f.get_f64(&self.key(k))?.map(|v| v as f32))
    }
}
