//! Gemma 3 (text): five sliding-window layers then one global, two RoPE bases, q/k norms,
//! pre+post norms, GEGLU, embeddings scaled by sqrt(n_embd), tied output.

use super::{Need, Need::*, Slot, Slot::*};
use crate::config::{Activation, Meta, ModelConfig, RopeLayout};
use crate::error::Result;

/// Tensors of one gemma3 block.
pub const LAYER: &[(Slot, Need)] = &[
    (AttnNorm, Required),
    (Wq, Required),
    (Wk, Required),
    (Wv, Required),
    (Wo, Required),
    (QNorm, Required),
    (KNorm, Required),
    (AttnPostNorm, Required),
    (FfnNorm, Required),
    (FfnGate, Required),
    (FfnUp, Required),
    (FfnDown, Required),
    (FfnPostNorm, Required),
];

/// Every sixth layer is global; the others see `sliding_window` positions.
const SWA_PATTERN: usize = 6;
/// RoPE base of the local layers (not stored in GGUF; fixed by the architecture).
const ROPE_BASE_LOCAL: f32 = 10000.0;

/// Applies Gemma 3's fixed architecture choices, matching llama.cpp's hparams for `gemma3`.
pub(crate) fn adjust(cfg: &mut ModelConfig, m: &Meta<'_>) -> Result<()> {
    cfg.rope_layout = RopeLayout::Neox;
    cfg.activation = Activation::Gelu;
    cfg.embed_scale = Some((cfg.n_embd as f32).sqrt());
    if let Some(w) = m.opt_usize("attention.sliding_window")?.filter(|&w| w > 0) {
        cfg.sliding_window = Some(w);
        cfg.rope_base_swa = ROPE_BASE_LOCAL;
        cfg.swa_layers = (0..cfg.n_layer)
            .map(|il| il % SWA_PATTERN < SWA_PATTERN - 1)
            .collect();
    }
    // Gemma 3 27B (62 layers) scales queries by n_embd/n_head; every other size by head_dim.
    let scale_dim = if cfg.n_layer == 62 {
        cfg.n_embd / cfg.n_head
    } else {
        cfg.head_dim_k
    };
    cfg.attn_scale = 1.0 / (scale_dim as f32).sqrt();
    // llama.cpp applies the final soft-cap only in the non-SWA graph (EmbeddingGemma).
    if cfg.sliding_window.is_none() {
        cfg.final_softcap = m.opt_f32("final_logit_softcapping")?.filter(|&c| c > 0.0);
    }
    Ok(())
}
