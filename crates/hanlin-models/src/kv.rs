//! A contiguous per-sequence KV cache, sized from the context the user asks for.
//!
//! Keys and values are stored as f16 (llama.cpp's default) or q8_0 (half the memory; keys are
//! dotted with q8_0-quantized queries, values dequantized on the fly).

use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use hanlin_gguf::GgmlType;
use hanlin_kernels::Kernels;

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};

/// Element type of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KvType {
    /// Half precision (llama.cpp's default).
    #[default]
    F16,
    /// 8-bit blocks of 32 with an f16 scale (needs head sizes that are multiples of 32).
    Q8_0,
}

impl KvType {
    /// Parses `f16` / `q8_0`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f16" => Some(KvType::F16),
            "q8_0" | "q8" => Some(KvType::Q8_0),
            _ => None,
        }
    }

    fn row_bytes(self, n: usize) -> usize {
        match self {
            KvType::F16 => 2 * n,
            KvType::Q8_0 => n / 32 * 34,
        }
    }
}

/// Keys and values for one sequence: `[layer][pos][kv_dim]`.
#[derive(Clone, Debug)]
pub struct KvCache {
    ty: KvType,
    n_ctx: usize,
    head_k: usize,
    head_v: usize,
    kdim: usize,
    vdim: usize,
    k: Vec<u8>,
    v: Vec<u8>,
    len: usize,
}

impl KvCache {
    /// Allocates an f16 cache for `n_ctx` positions.
    pub fn new(cfg: &ModelConfig, n_ctx: usize) -> Self {
        Self::alloc(cfg, n_ctx, KvType::F16)
    }

    /// Allocates a cache of type `ty`; q8_0 needs head sizes that are multiples of 32.
    pub fn with_type(cfg: &ModelConfig, n_ctx: usize, ty: KvType) -> Result<Self> {
        if ty == KvType::Q8_0
            && (!cfg.head_dim_k.is_multiple_of(32) || !cfg.head_dim_v.is_multiple_of(32))
        {
            return Err(ModelError::BadHyperparameter {
                key: "kv cache type".into(),
                why: format!(
                    "q8_0 needs head sizes that are multiples of 32, this model has {}/{}",
                    cfg.head_dim_k, cfg.head_dim_v
                ),
            });
        }
        Ok(Self::alloc(cfg, n_ctx, ty))
    }

    fn alloc(cfg: &ModelConfig, n_ctx: usize, ty: KvType) -> Self {
        let (kdim, vdim) = (cfg.kv_dim_k(), cfg.kv_dim_v());
        KvCache {
            ty,
            n_ctx,
            head_k: cfg.head_dim_k,
            head_v: cfg.head_dim_v,
            kdim,
            vdim,
            k: vec![0; cfg.n_layer * n_ctx * ty.row_bytes(kdim)],
            v: vec![0; cfg.n_layer * n_ctx * ty.row_bytes(vdim)],
            len: 0,
        }
    }

    /// Element type.
    pub fn kv_type(&self) -> KvType {
        self.ty
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
        self.k.len() + self.v.len()
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

    fn k_row(&self, layer: usize, pos: usize) -> std::ops::Range<usize> {
        let rb = self.ty.row_bytes(self.kdim);
        let o = (layer * self.n_ctx + pos) * rb;
        o..o + rb
    }

    fn v_row(&self, layer: usize, pos: usize) -> std::ops::Range<usize> {
        let rb = self.ty.row_bytes(self.vdim);
        let o = (layer * self.n_ctx + pos) * rb;
        o..o + rb
    }

    /// F16 key rows of head `kvh` in `layer` from position `from` on, and their stride in
    /// bytes; `None` unless the cache is f16.
    pub(crate) fn f16_keys(&self, layer: usize, from: usize, kvh: usize) -> Option<(&[u8], usize)> {
        (self.ty == KvType::F16).then(|| {
            let rb = self.ty.row_bytes(self.kdim);
            let o = (layer * self.n_ctx + from) * rb + kvh * self.head_k * 2;
            (&self.k[o..(layer + 1) * self.n_ctx * rb], rb)
        })
    }

    /// F16 value rows of head `kvh` in `layer` from position `from` on, and their stride.
    pub(crate) fn f16_values(
        &self,
        layer: usize,
        from: usize,
        kvh: usize,
    ) -> Option<(&[u8], usize)> {
        (self.ty == KvType::F16).then(|| {
            let rb = self.ty.row_bytes(self.vdim);
            let o = (layer * self.n_ctx + from) * rb + kvh * self.head_v * 2;
            (&self.v[o..(layer + 1) * self.n_ctx * rb], rb)
        })
    }

    pub(crate) fn write(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let (kr, vr) = (self.k_row(layer, pos), self.v_row(layer, pos));
        let ty = self.ty;
        store(ty, k, &mut self.k[kr]);
        store(ty, v, &mut self.v[vr]);
    }

    /// Converts one query head into what [`KvCache::score`] dots keys with.
    pub(crate) fn prepare_query(&self, q: &[f32], qf: &mut [f32], qq: &mut Vec<u8>) {
        match self.ty {
            // ggml converts the query to f16 to dot it with an f16 key cache.
            KvType::F16 => {
                let _ = qf;
                qq.clear();
                qq.extend(q.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()));
            }
            KvType::Q8_0 => {
                qq.resize(q.len() / 32 * 34, 0);
                let _ = hanlin_quant::try_quantize_activation(GgmlType::Q8_0, q, qq);
            }
        }
    }

    /// Dot of a prepared query head with key head `kvh` at `pos`.
    pub(crate) fn score(&self, layer: usize, pos: usize, kvh: usize, qf: &[f32], qq: &[u8]) -> f32 {
        let row = &self.k[self.k_row(layer, pos)];
        let hk = self.head_k;
        match self.ty {
            KvType::F16 => {
                let _ = qf;
                let head = &row[kvh * hk * 2..(kvh + 1) * hk * 2];
                Kernels::detected()
                    .vec_dot(GgmlType::F16, hk, head, qq)
                    .unwrap_or(0.0)
            }
            KvType::Q8_0 => {
                let rb = hk / 32 * 34;
                hanlin_quant::vec_dot(GgmlType::Q8_0, hk, &row[kvh * rb..(kvh + 1) * rb], qq)
                    .unwrap_or(0.0)
            }
        }
    }

    /// `out += p * v` for value head `kvh` at `pos`.
    /// `tmp` (at least the head size) holds the converted row.
    pub(crate) fn add_value(
        &self,
        layer: usize,
        pos: usize,
        kvh: usize,
        p: f32,
        out: &mut [f32],
        tmp: &mut [f32],
    ) {
        let row = &self.v[self.v_row(layer, pos)];
        let hv = self.head_v;
        match self.ty {
            KvType::F16 => {
                let head = &row[kvh * hv * 2..(kvh + 1) * hv * 2];
                // SAFETY: any bit pattern is a valid u16; `align_to` only yields the aligned middle.
                let (pre, mid, post) = unsafe { head.align_to::<u16>() };
                let tmp = &mut tmp[..hv];
                if pre.is_empty() && post.is_empty() && cfg!(target_endian = "little") {
                    // Bulk conversion uses F16C when the CPU has it (runtime-detected by `half`).
                    mid.reinterpret_cast::<f16>().convert_to_f32_slice(tmp);
                } else {
                    for (t, b) in tmp.iter_mut().zip(head.chunks_exact(2)) {
                        *t = f16::from_le_bytes([b[0], b[1]]).to_f32();
                    }
                }
                for (o, &v) in out.iter_mut().zip(tmp.iter()) {
                    *o += p * v;
                }
            }
            KvType::Q8_0 => {
                let rb = hv / 32 * 34;
                let head = &row[kvh * rb..(kvh + 1) * rb];
                for (blk, o) in head.chunks_exact(34).zip(out.chunks_mut(32)) {
                    let d = p * f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                    for (o, &q) in o.iter_mut().zip(&blk[2..]) {
                        *o += d * f32::from(q as i8);
                    }
                }
            }
        }
    }
}

fn store(ty: KvType, x: &[f32], dst: &mut [u8]) {
    match ty {
        KvType::F16 => {
            for (d, &v) in dst.chunks_exact_mut(2).zip(x) {
                d.copy_from_slice(&f16::from_f32(v).to_le_bytes());
            }
        }
        KvType::Q8_0 => {
            let _ = hanlin_quant::try_quantize_activation(GgmlType::Q8_0, x, dst);
        }
    }
}
