//! A contiguous per-sequence KV cache, sized from the context the user asks for.

use half::f16;

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};

/// Element type of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KvType {
    /// Half precision (llama.cpp's default).
    #[default]
    F16,
}

/// Keys and values for one sequence: `[layer][pos][kv_dim]`, stored as f16 bits.
#[derive(Clone, Debug)]
pub struct KvCache {
    n_ctx: usize,
    kdim: usize,
    vdim: usize,
    k: Vec<f16>,
    v: Vec<f16>,
    len: usize,
}

impl KvCache {
    /// Allocates a cache for `n_ctx` positions.
    pub fn new(cfg: &ModelConfig, n_ctx: usize) -> Self {
        let (kdim, vdim) = (cfg.kv_dim_k(), cfg.kv_dim_v());
        KvCache {
            n_ctx,
            kdim,
            vdim,
            k: vec![f16::ZERO; cfg.n_layer * n_ctx * kdim],
            v: vec![f16::ZERO; cfg.n_layer * n_ctx * vdim],
            len: 0,
        }
    }

    /// Capacity in positions.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Positions filled so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets everything from position `pos` on (used by `/reset` and prefix reuse).
    pub fn truncate(&mut self, pos: usize) {
        self.len = self.len.min(pos);
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        (self.k.len() + self.v.len()) * 2
    }

    pub(crate) fn check_fits(&self, pos0: usize, n: usize) -> Result<()> {
        if pos0 + n > self.n_ctx {
            return Err(ModelError::ContextFull {
                needed: pos0 + n,
                n_ctx: self.n_ctx,
            });
        }
        Ok(())
    }

    pub(crate) fn set_len(&mut self, len: usize) {
        self.len = len;
    }

    pub(crate) fn write(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let ko = (layer * self.n_ctx + pos) * self.kdim;
        for (d, &x) in self.k[ko..ko + self.kdim].iter_mut().zip(k) {
            *d = f16::from_f32(x);
        }
        let vo = (layer * self.n_ctx + pos) * self.vdim;
        for (d, &x) in self.v[vo..vo + self.vdim].iter_mut().zip(v) {
            *d = f16::from_f32(x);
        }
    }

    pub(crate) fn k_at(&self, layer: usize, pos: usize) -> &[f16] {
        let o = (layer * self.n_ctx + pos) * self.kdim;
        &self.k[o..o + self.kdim]
    }

    pub(crate) fn v_at(&self, layer: usize, pos: usize) -> &[f16] {
        let o = (layer * self.n_ctx + pos) * self.vdim;
        &self.v[o..o + self.vdim]
    }
}
