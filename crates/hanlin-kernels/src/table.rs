//! Function-pointer tables, one per ISA, indexed by ggml type id.
//!
//! Entries are `unsafe fn` because ISA kernels carry `#[target_feature]`; a [`Table`] for an
//! ISA is only built after that ISA was detected, which is the whole safety argument for
//! calling through it. Slice lengths are validated by the public entry points, and every kernel
//! indexes its slices safely anyway.

use hanlin_gguf::GgmlType;

#[cfg(target_arch = "x86_64")]
pub(crate) use crate::arch::x86_64::gemm512::Line;

/// Weight row · activation row over `n` elements.
pub(crate) type DotFn = unsafe fn(n: usize, w: &[u8], a: &[u8]) -> f32;

/// One weight row against four activation rows, decoding each weight block once.
pub(crate) type Dot4Fn = unsafe fn(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4];

/// One weight row against eight activation rows (for ISAs with registers to spare).
pub(crate) type Dot8Fn = unsafe fn(n: usize, w: &[u8], a: [&[u8]; 8]) -> [f32; 8];

/// Packs `n` activation rows of `cols` values for a [`GemmFn`] (see `arch::x86_64::gemm512`).
#[cfg(target_arch = "x86_64")]
pub(crate) type PackFn = unsafe fn(cols: usize, act: &[u8], n: usize, dst: &mut [Line]);

/// `n_rows` weight rows × `n_tokens` packed activation rows, written to
/// `out[t * stride + r]`.
#[cfg(target_arch = "x86_64")]
pub(crate) type GemmFn = unsafe fn(
    cols: usize,
    w: &[u8],
    n_rows: usize,
    a: &[Line],
    n_tokens: usize,
    out: *mut f32,
    stride: usize,
);

/// A register-blocked GEMM over activations packed once per mat-mul.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Gemm {
    /// Packs the quantized activations.
    pub pack: PackFn,
    /// Multiplies packed activations by weight rows.
    pub run: GemmFn,
}

/// f32 row → activation format; `src.len()` is a whole number of blocks.
pub(crate) type QuantizeFn = unsafe fn(src: &[f32], dst: &mut [u8]);

/// Kernels for one weight type.
#[derive(Clone, Copy)]
pub(crate) struct DotEntry {
    /// Activation format the kernel expects (ggml's `vec_dot_type`).
    pub act: GgmlType,
    /// The 1×1 dot product.
    pub dot: DotFn,
    /// The 1×4 tile used by batched matmul, when the ISA has one.
    pub dot4: Option<Dot4Fn>,
    /// The 1×8 tile, tried before the 1×4 one.
    pub dot8: Option<Dot8Fn>,
    /// Register-blocked GEMM for batches, bit-identical to `dot`; tried before the tiles.
    #[cfg(target_arch = "x86_64")]
    pub gemm: Option<Gemm>,
}

/// Largest ggml type id plus one.
const SLOTS: usize = 40;

/// Per-type dot and quantize entries.
#[derive(Clone)]
pub(crate) struct Table {
    dots: [Option<DotEntry>; SLOTS],
    quants: [Option<QuantizeFn>; SLOTS],
}

impl Table {
    /// A table with no entries.
    pub(crate) fn empty() -> Self {
        Self {
            dots: [None; SLOTS],
            quants: [None; SLOTS],
        }
    }

    /// The dot entry for weights of type `ty`.
    #[inline]
    pub(crate) fn dot(&self, ty: GgmlType) -> Option<&DotEntry> {
        self.dots.get(ty.id() as usize)?.as_ref()
    }

    /// The quantizer producing activations of type `ty`.
    #[inline]
    pub(crate) fn quantize(&self, ty: GgmlType) -> Option<QuantizeFn> {
        *self.quants.get(ty.id() as usize)?
    }

    /// Installs (or replaces) the dot entry for `ty`.
    pub(crate) fn set_dot(&mut self, ty: GgmlType, e: DotEntry) {
        if let Some(slot) = self.dots.get_mut(ty.id() as usize) {
            *slot = Some(e);
        }
    }

    /// Replaces the 1×1 and 1×4 kernels of an existing entry, keeping its activation type;
    /// drops its 1×8 tile, which must come from the same kernel family as the 1×1 one.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn set_kernels(&mut self, ty: GgmlType, dot: DotFn, dot4: Option<Dot4Fn>) {
        if let Some(Some(e)) = self.dots.get_mut(ty.id() as usize) {
            e.dot = dot;
            e.dot4 = dot4;
            e.dot8 = None;
            #[cfg(target_arch = "x86_64")]
            {
                e.gemm = None;
            }
        }
    }

    /// Sets the 1×8 tile of an existing entry (call after [`Table::set_kernels`]).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn set_tile8(&mut self, ty: GgmlType, dot8: Dot8Fn) {
        if let Some(Some(e)) = self.dots.get_mut(ty.id() as usize) {
            e.dot8 = Some(dot8);
        }
    }

    /// Sets the GEMM of an existing entry (call after [`Table::set_kernels`]).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn set_gemm(&mut self, ty: GgmlType, g: Gemm) {
        if let Some(Some(e)) = self.dots.get_mut(ty.id() as usize) {
            e.gemm = Some(g);
        }
    }

    /// Installs (or replaces) the quantizer for activation type `ty`.
    pub(crate) fn set_quantize(&mut self, ty: GgmlType, q: QuantizeFn) {
        if let Some(slot) = self.quants.get_mut(ty.id() as usize) {
            *slot = Some(q);
        }
    }
}
