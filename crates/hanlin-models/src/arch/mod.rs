//! One file per architecture: hyperparameter quirks and which tensors each layer has.
//!
//! The forward pass is shared (see `forward.rs`); an architecture is data plus a short
//! `adjust` function, as in llama.cpp's `llama-arch.cpp` tables.

pub mod gemma3;
pub mod llama;
pub mod qwen2;
pub mod qwen3;

use crate::config::Arch;

/// Per-layer tensor slots the shared decoder understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Pre-attention RMSNorm weight `[n_embd]`.
    AttnNorm,
    /// Query projection `[n_embd] -> [n_head*head_dim_k]`.
    Wq,
    /// Key projection.
    Wk,
    /// Value projection.
    Wv,
    /// Output projection.
    Wo,
    /// Query bias.
    Bq,
    /// Key bias.
    Bk,
    /// Value bias.
    Bv,
    /// Per-head query RMSNorm `[head_dim_k]`.
    QNorm,
    /// Per-head key RMSNorm `[head_dim_k]`.
    KNorm,
    /// RMSNorm on the attention output before the residual add.
    AttnPostNorm,
    /// Pre-FFN RMSNorm.
    FfnNorm,
    /// Gate projection.
    FfnGate,
    /// Up projection.
    FfnUp,
    /// Down projection.
    FfnDown,
    /// RMSNorm on the FFN output before the residual add.
    FfnPostNorm,
}

/// Whether an architecture requires a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Must be present.
    Required,
    /// Used when present.
    Optional,
}

/// GGUF tensor name (without `blk.N.` prefix) of each slot.
pub fn slot_name(slot: Slot) -> &'static str {
    match slot {
        Slot::AttnNorm => "attn_norm.weight",
        Slot::Wq => "attn_q.weight",
        Slot::Wk => "attn_k.weight",
        Slot::Wv => "attn_v.weight",
        Slot::Wo => "attn_output.weight",
        Slot::Bq => "attn_q.bias",
        Slot::Bk => "attn_k.bias",
        Slot::Bv => "attn_v.bias",
        Slot::QNorm => "attn_q_norm.weight",
        Slot::KNorm => "attn_k_norm.weight",
        Slot::AttnPostNorm => "post_attention_norm.weight",
        Slot::FfnNorm => "ffn_norm.weight",
        Slot::FfnGate => "ffn_gate.weight",
        Slot::FfnUp => "ffn_up.weight",
        Slot::FfnDown => "ffn_down.weight",
        Slot::FfnPostNorm => "post_ffw_norm.weight",
    }
}

/// The per-layer tensor table of an architecture.
pub fn layer_table(arch: Arch) -> &'static [(Slot, Need)] {
    match arch {
        Arch::Llama => llama::LAYER,
        Arch::Qwen2 => qwen2::LAYER,
        Arch::Qwen3 => qwen3::LAYER,
        Arch::Gemma3 => gemma3::LAYER,
    }
}
