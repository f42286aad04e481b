//! KV storage: a pool of fixed-size blocks, read through per-sequence block tables (the engine's
//! paged cache), and [`KvCache`], a contiguous per-sequence cache that is the same pool with one
//! block of `n_ctx` positions (the single-sequence `Session` path).
//!
//! Keys and values are stored as f16 (llama.cpp's default) or q8_0 (half the memory; keys are
//! dotted with q8_0-quantized queries, values dequantized on the fly).
//!
//! Layout: `[block][layer][pos in block][kv_dim]`. One block holds every layer of its
//! positions, so one table and one refcount per block serve all layers; within a (block, layer)
//! the rows sit back to back with the same stride as a contiguous cache, so the grouped f16
//! attention kernels read a block's rows unchanged.

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

/// Marks a table entry with no block behind it.
const NO_BLOCK: u32 = u32::MAX;

/// Keys and values for `n_blocks` blocks of `block` positions: `[block][layer][pos][kv_dim]`.
///
/// The arena is zero-allocated once (`calloc`), so the OS maps its pages only when a block is
/// first written: resident memory grows with use, and no allocation happens while decoding.
#[derive(Clone, Debug)]
pub struct KvPool {
    ty: KvType,
    block: usize,
    n_blocks: usize,
    n_layer: usize,
    head_k: usize,
    head_v: usize,
    /// Bytes of one key / value row (one position of one layer).
    rbk: usize,
    rbv: usize,
    k: Vec<u8>,
    v: Vec<u8>,
}

impl KvPool {
    /// A pool of `n_blocks` blocks of `block_size` positions for `cfg`'s layers and heads.
    pub fn new(cfg: &ModelConfig, block_size: usize, n_blocks: usize, ty: KvType) -> Result<Self> {
        Self::with_dims(
            cfg.n_layer,
            cfg.n_head_kv,
            (cfg.head_dim_k, cfg.head_dim_v),
            block_size,
            n_blocks,
            ty,
        )
    }

    pub(crate) fn with_dims(
        n_layer: usize,
        n_head_kv: usize,
        (head_k, head_v): (usize, usize),
        block: usize,
        n_blocks: usize,
        ty: KvType,
    ) -> Result<Self> {
        let bad = |why: String| ModelError::BadHyperparameter {
            key: "kv cache".into(),
            why,
        };
        if ty == KvType::Q8_0 && (!head_k.is_multiple_of(32) || !head_v.is_multiple_of(32)) {
            return Err(bad(format!(
                "q8_0 needs head sizes that are multiples of 32, this model has {head_k}/{head_v}"
            )));
        }
        if block == 0 || n_blocks == 0 || n_blocks >= NO_BLOCK as usize {
            return Err(bad(format!(
                "{n_blocks} blocks of {block} positions is not a usable cache"
            )));
        }
        let (rbk, rbv) = (
            ty.row_bytes(n_head_kv * head_k),
            ty.row_bytes(n_head_kv * head_v),
        );
        let bytes = |rb: usize| {
            n_blocks
                .checked_mul(block)
                .and_then(|p| p.checked_mul(n_layer))
                .and_then(|r| r.checked_mul(rb))
                .ok_or_else(|| bad(format!("{n_blocks} blocks of {block} positions overflow")))
        };
        let (kb, vb) = (bytes(rbk)?, bytes(rbv)?);
        Ok(KvPool {
            ty,
            block,
            n_blocks,
            n_layer,
            head_k,
            head_v,
            rbk,
            rbv,
            k: vec![0; kb],
            v: vec![0; vb],
        })
    }

    /// Element type.
    pub fn kv_type(&self) -> KvType {
        self.ty
    }

    /// Gives the pool's memory back to the operating system: every block's contents are lost
    /// (the caller must hold none). The fresh zeroed buffers are mapped lazily again, so
    /// resident memory drops to nothing until blocks are written.
    pub fn release_memory(&mut self) {
        let (kb, vb) = (self.k.len(), self.v.len());
        self.k = Vec::new();
        self.v = Vec::new();
        self.k = vec![0; kb];
        self.v = vec![0; vb];
    }

    /// Positions per block.
    pub fn block_size(&self) -> usize {
        self.block
    }

    /// Blocks in the pool.
    pub fn n_blocks(&self) -> usize {
        self.n_blocks
    }

    /// Bytes reserved (resident only once written).
    pub fn bytes(&self) -> usize {
        self.k.len() + self.v.len()
    }

    /// Copies positions `..n` of every layer from block `src` to block `dst` (copy-on-write
    /// of a shared block's prefix). Does nothing when either block or `n` is out of range.
    pub fn copy_prefix(&mut self, src: usize, dst: usize, n: usize) {
        if src >= self.n_blocks || dst >= self.n_blocks || n > self.block || src == dst {
            return;
        }
        for layer in 0..self.n_layer {
            let (ks, kd) = (
                self.row_at(src, layer, 0, self.rbk),
                self.row_at(dst, layer, 0, self.rbk),
            );
            self.k.copy_within(ks..ks + n * self.rbk, kd);
            let (vs, vd) = (
                self.row_at(src, layer, 0, self.rbv),
                self.row_at(dst, layer, 0, self.rbv),
            );
            self.v.copy_within(vs..vs + n * self.rbv, vd);
        }
    }

    /// Byte offset of the row at `off` in `blk` for `layer`, rows being `rb` bytes.
    fn row_at(&self, blk: usize, layer: usize, off: usize, rb: usize) -> usize {
        ((blk * self.n_layer + layer) * self.block + off) * rb
    }

    /// End of the (block, layer) region that holds that row.
    fn region_end(&self, blk: usize, layer: usize, rb: usize) -> usize {
        (blk * self.n_layer + layer + 1) * self.block * rb
    }

    pub(crate) fn write(&mut self, blk: usize, layer: usize, off: usize, k: &[f32], v: &[f32]) {
        let (ko, vo) = (
            self.row_at(blk, layer, off, self.rbk),
            self.row_at(blk, layer, off, self.rbv),
        );
        let ty = self.ty;
        store(ty, k, &mut self.k[ko..ko + self.rbk]);
        store(ty, v, &mut self.v[vo..vo + self.rbv]);
    }

    /// F16 key rows of head `kvh` from `off` to the end of block `blk` of `layer`, and their
    /// stride in bytes; `None` unless the cache is f16.
    pub(crate) fn f16_keys(
        &self,
        blk: usize,
        layer: usize,
        off: usize,
        kvh: usize,
    ) -> Option<(&[u8], usize)> {
        (self.ty == KvType::F16).then(|| {
            let o = self.row_at(blk, layer, off, self.rbk) + kvh * self.head_k * 2;
            (&self.k[o..self.region_end(blk, layer, self.rbk)], self.rbk)
        })
    }

    /// The whole f16 value buffer and the byte offset in it of head `kvh`'s value row at `off`
    /// of block `blk` of `layer`; `None` unless the cache is f16.
    pub(crate) fn f16_value_at(
        &self,
        blk: usize,
        layer: usize,
        off: usize,
        kvh: usize,
    ) -> Option<(&[u8], usize)> {
        (self.ty == KvType::F16).then(|| {
            (
                &self.v[..],
                self.row_at(blk, layer, off, self.rbv) + kvh * self.head_v * 2,
            )
        })
    }

    /// Converts one query head into what [`KvPool::score`] dots keys with.
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

    /// Dot of a prepared query head with key head `kvh` at `off` of block `blk`.
    fn score(&self, blk: usize, layer: usize, off: usize, kvh: usize, qq: &[u8]) -> f32 {
        let o = self.row_at(blk, layer, off, self.rbk);
        let row = &self.k[o..o + self.rbk];
        let hk = self.head_k;
        match self.ty {
            KvType::F16 => {
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

    /// `out += p * v` for value head `kvh` at `off` of block `blk`; `tmp` (at least the head
    /// size) holds the converted row.
    #[allow(clippy::too_many_arguments)]
    fn add_value(
        &self,
        blk: usize,
        layer: usize,
        off: usize,
        kvh: usize,
        p: f32,
        out: &mut [f32],
        tmp: &mut [f32],
    ) {
        let o = self.row_at(blk, layer, off, self.rbv);
        let row = &self.v[o..o + self.rbv];
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

/// One sequence's view of a pool: position `p` lives at `p % block` of block `table[p / block]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SeqKv<'a> {
    pub pool: &'a KvPool,
    pub table: &'a [u32],
}

impl<'a> SeqKv<'a> {
    /// Block and offset of position `pos`.
    pub(crate) fn locate(&self, pos: usize) -> (usize, usize) {
        let b = self.pool.block;
        (self.table[pos / b] as usize, pos % b)
    }

    /// Block ids holding positions `..=pos` (`pos` below the capacity).
    pub(crate) fn blocks_through(self, pos: usize) -> impl Iterator<Item = usize> + 'a {
        self.table[..=pos / self.pool.block]
            .iter()
            .map(|&b| b as usize)
    }

    /// Positions the table has blocks for.
    pub(crate) fn capacity(&self) -> usize {
        self.table.len() * self.pool.block
    }

    pub(crate) fn score(&self, layer: usize, pos: usize, kvh: usize, qq: &[u8]) -> f32 {
        let (blk, off) = self.locate(pos);
        self.pool.score(blk, layer, off, kvh, qq)
    }

    pub(crate) fn add_value(
        &self,
        layer: usize,
        pos: usize,
        kvh: usize,
        p: f32,
        out: &mut [f32],
        tmp: &mut [f32],
    ) {
        let (blk, off) = self.locate(pos);
        self.pool.add_value(blk, layer, off, kvh, p, out, tmp);
    }
}

/// Block tables of a fixed number of sequences, each up to `max_blocks` long, in one
/// allocation made up front (growing a table never allocates).
#[derive(Clone, Debug)]
pub struct BlockTables {
    stride: usize,
    ids: Vec<u32>,
    lens: Vec<usize>,
}

impl BlockTables {
    /// Empty tables for `n_seqs` sequences of up to `max_blocks` blocks each.
    pub fn new(n_seqs: usize, max_blocks: usize) -> Self {
        BlockTables {
            stride: max_blocks,
            ids: vec![NO_BLOCK; n_seqs * max_blocks],
            lens: vec![0; n_seqs],
        }
    }

    /// Sequences.
    pub fn n_seqs(&self) -> usize {
        self.lens.len()
    }

    /// Block ids of sequence `seq`, in position order.
    pub fn seq(&self, seq: usize) -> &[u32] {
        let o = seq * self.stride;
        &self.ids[o..o + self.lens[seq]]
    }

    /// Appends block `id` to sequence `seq`; `false` when its table is full.
    pub fn push(&mut self, seq: usize, id: u32) -> bool {
        let n = self.lens[seq];
        if n >= self.stride {
            return false;
        }
        self.ids[seq * self.stride + n] = id;
        self.lens[seq] = n + 1;
        true
    }

    /// Empties sequence `seq`'s table.
    pub fn clear(&mut self, seq: usize) {
        let o = seq * self.stride;
        self.ids[o..o + self.stride].fill(NO_BLOCK);
        self.lens[seq] = 0;
    }
}

/// The sequences of one forward batch and where their keys and values live.
pub(crate) trait KvSeqs: Sync {
    /// Sequences addressable by `BatchRow::seq`.
    fn n_seqs(&self) -> usize;
    /// Read access to sequence `seq` (`seq < n_seqs()`).
    fn view(&self, seq: usize) -> SeqKv<'_>;
    /// Stores the key and value rows of `seq` at `pos` for `layer` (`pos < capacity`).
    fn write(&mut self, seq: usize, layer: usize, pos: usize, k: &[f32], v: &[f32]);
    /// Records that `seq` now holds positions `..len` (contiguous caches track their length).
    fn filled(&mut self, seq: usize, len: usize);
}

/// The first block of a contiguous cache.
const ONLY_BLOCK: [u32; 1] = [0];

impl KvSeqs for [&mut KvCache] {
    fn n_seqs(&self) -> usize {
        self.len()
    }

    fn view(&self, seq: usize) -> SeqKv<'_> {
        SeqKv {
            pool: &self[seq].pool,
            table: &ONLY_BLOCK,
        }
    }

    fn write(&mut self, seq: usize, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        self[seq].pool.write(0, layer, pos, k, v);
    }

    fn filled(&mut self, seq: usize, len: usize) {
        let kv = &mut self[seq];
        kv.len = kv.len.max(len);
    }
}

/// A shared pool and the block tables of the batch's sequences.
pub(crate) struct PagedSeqs<'a> {
    pub pool: &'a mut KvPool,
    pub tables: &'a BlockTables,
}

impl KvSeqs for PagedSeqs<'_> {
    fn n_seqs(&self) -> usize {
        self.tables.n_seqs()
    }

    fn view(&self, seq: usize) -> SeqKv<'_> {
        SeqKv {
            pool: self.pool,
            table: self.tables.seq(seq),
        }
    }

    fn write(&mut self, seq: usize, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let b = self.pool.block;
        let blk = self.tables.seq(seq)[pos / b] as usize;
        self.pool.write(blk, layer, pos % b, k, v);
    }

    fn filled(&mut self, _seq: usize, _len: usize) {}
}

/// Keys and values for one sequence: `[layer][pos][kv_dim]` (a pool of one `n_ctx` block).
#[derive(Clone, Debug)]
pub struct KvCache {
    pool: KvPool,
    len: usize,
}

impl KvCache {
    /// Allocates an f16 cache for `n_ctx` positions.
    pub fn new(cfg: &ModelConfig, n_ctx: usize) -> Self {
        // f16 has no head-size condition; only a size overflow fails, and then the cache holds
        // nothing, so every forward call reports a full context instead of panicking.
        Self::with_type(cfg, n_ctx, KvType::F16).unwrap_or_else(|_| KvCache {
            pool: KvPool {
                ty: KvType::F16,
                block: 0,
                n_blocks: 1,
                n_layer: 0,
                head_k: cfg.head_dim_k,
                head_v: cfg.head_dim_v,
                rbk: 0,
                rbv: 0,
                k: Vec::new(),
                v: Vec::new(),
            },
            len: 0,
        })
    }

    /// Allocates a cache of type `ty`; q8_0 needs head sizes that are multiples of 32.
    pub fn with_type(cfg: &ModelConfig, n_ctx: usize, ty: KvType) -> Result<Self> {
        Ok(KvCache {
            pool: KvPool::new(cfg, n_ctx.max(1), 1, ty)?,
            len: 0,
        })
    }

    /// Element type.
    pub fn kv_type(&self) -> KvType {
        self.pool.ty
    }

    /// Capacity in positions.
    pub fn n_ctx(&self) -> usize {
        self.pool.block
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
        self.pool.bytes()
    }

    pub(crate) fn check_fits(&self, pos0: usize, n: usize) -> Result<()> {
        if pos0 + n > self.n_ctx() {
            return Err(ModelError::ContextFull {
                needed: pos0 + n,
                n_ctx: self.n_ctx(),
            });
        }
        Ok(())
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
