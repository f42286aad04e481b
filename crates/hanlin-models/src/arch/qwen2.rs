//! Qwen2 / Qwen2.5 (通义千问) and DeepSeek-R1-Distill-Qwen.

use super::{Need, Need::*, Slot, Slot::*};
use crate::config::{Meta, ModelConfig, RopeLayout};
use crate::error::Result;

/// Tensors of one qwen2 block: llama plus q/k/v biases.
pub const LAYER: &[(Slot, Need)] = &[
    (AttnNorm, Required),
    (Wq, Required),
    (Wk, Required),
    (Wv, Required),
    (Wo, Required),
    (Bq, Required),
    (Bk, Required),
    (Bv, Required),
    (FfnNorm, Required),
    (FfnGate, Required),
    (FfnUp, Required),
    (FfnDown, Required),
];

/// Qwen rotates halves (NeoX layout).
pub(crate) fn adjust(cfg: &mut ModelConfig, _m: &Meta<'_>) -> Result<()> {
    cfg.rope_layout = RopeLayout::Neox;
    Ok(())
}
