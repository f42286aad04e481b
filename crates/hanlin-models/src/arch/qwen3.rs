//! Qwen3 (dense): per-head RMSNorm on queries and keys, no biases.

use super::{Need, Need::*, Slot, Slot::*};
use crate::config::{Meta, ModelConfig, RopeLayout};
use crate::error::Result;

/// Tensors of one qwen3 block.
pub const LAYER: &[(Slot, Need)] = &[
    (AttnNorm, Required),
    (Wq, Required),
    (Wk, Required),
    (Wv, Required),
    (Wo, Required),
    (QNorm, Required),
    (KNorm, Required),
    (FfnNorm, Required),
    (FfnGate, Required),
    (FfnUp, Required),
    (FfnDown, Required),
];

/// Qwen3 rotates halves (NeoX layout).
pub(crate) fn adjust(cfg: &mut ModelConfig, _m: &Meta<'_>) -> Result<()> {
    cfg.rope_layout = RopeLayout::Neox;
    Ok(())
}
