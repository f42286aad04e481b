//! Llama 2/3.x, Mistral, TinyLlama, DeepSeek-R1-Distill-Llama.

use super::{Need, Need::*, Slot, Slot::*};
use crate::config::{Meta, ModelConfig, RopeLayout};
use crate::error::Result;

/// Tensors of one llama block.
pub const LAYER: &[(Slot, Need)] = &[
    (AttnNorm, Required),
    (Wq, Required),
    (Wk, Required),
    (Wv, Required),
    (Wo, Required),
    (Bq, Optional),
    (Bk, Optional),
    (Bv, Optional),
    (FfnNorm, Required),
    (FfnGate, Required),
    (FfnUp, Required),
    (FfnDown, Required),
];

/// Llama uses the defaults: SwiGLU, adjacent-pair RoPE (the converter permutes q/k for it).
pub(crate) fn adjust(cfg: &mut ModelConfig, _m: &Meta<'_>) -> Result<()> {
    cfg.rope_layout = RopeLayout::Normal;
    Ok(())
}
