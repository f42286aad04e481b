//! ggml block layouts as byte offsets, shared by every ISA.
//!
//! Kernels see weights straight from an mmap, so blocks are read as `[u8; SIZE]` arrays (align
//! 1) and fields are picked out by compile-time offsets; nothing is reinterpreted as a struct.

use hanlin_gguf::GgmlType;

/// A fixed-size sub-array of `b` at byte offset `O`, bounds-checked at compile time.
#[inline(always)]
pub(crate) fn field<const O: usize, const L: usize, const N: usize>(b: &[u8; N]) -> &[u8; L] {
    const { assert!(O + L <= N) };
    // SAFETY: the const assertion keeps bytes [O, O + L) inside the N-byte array, and
    // `[u8; L]` has alignment 1, so the cast reference is valid for the borrow of `b`.
    unsafe { &*b.as_ptr().add(O).cast::<[u8; L]>() }
}

/// Little-endian `u16` at byte offset `O` (f16 / bf16 bits).
#[inline(always)]
pub(crate) fn u16_at<const O: usize, const N: usize>(b: &[u8; N]) -> u16 {
    u16::from_le_bytes(*field::<O, 2, N>(b))
}

/// Little-endian `u32` at byte offset `O`.
#[inline(always)]
pub(crate) fn u32_at<const O: usize, const N: usize>(b: &[u8; N]) -> u32 {
    u32::from_le_bytes(*field::<O, 4, N>(b))
}

/// Little-endian `f32` at byte offset `O`.
#[inline(always)]
pub(crate) fn f32_at<const O: usize, const N: usize>(b: &[u8; N]) -> f32 {
    f32::from_le_bytes(*field::<O, 4, N>(b))
}

/// The first `nb` blocks of `N` bytes in `s`; panics if `s` is shorter, which the public
/// entry points rule out by validating lengths first.
#[inline(always)]
pub(crate) fn blocks<const N: usize>(s: &[u8], nb: usize) -> &[[u8; N]] {
    &s.as_chunks::<N>().0[..nb]
}

/// Mutable twin of [`blocks`].
#[inline(always)]
pub(crate) fn blocks_mut<const N: usize>(s: &mut [u8], nb: usize) -> &mut [[u8; N]] {
    &mut s.as_chunks_mut::<N>().0[..nb]
}

/// Block size in bytes, per type; each module documents its field offsets.
pub(crate) mod q4_0 {
    /// `f16 d` @0, `qs[16]` @2 (element j in the low nibble of qs[j], j+16 in the high one).
    pub const SIZE: usize = 18;
}
pub(crate) mod q4_1 {
    /// `f16 d` @0, `f16 m` @2, `qs[16]` @4.
    pub const SIZE: usize = 20;
}
pub(crate) mod q5_0 {
    /// `f16 d` @0, `u32 qh` @2 (bit j = 5th bit of element j), `qs[16]` @6.
    pub const SIZE: usize = 22;
}
pub(crate) mod q5_1 {
    /// `f16 d` @0, `f16 m` @2, `u32 qh` @4, `qs[16]` @8.
    pub const SIZE: usize = 24;
}
pub(crate) mod q8_0 {
    /// `f16 d` @0, `i8 qs[32]` @2.
    pub const SIZE: usize = 34;
}
pub(crate) mod q8_1 {
    /// `f16 d` @0, `f16 s = d * sum(qs)` @2, `i8 qs[32]` @4.
    pub const SIZE: usize = 36;
}
pub(crate) mod q2_k {
    /// `scales[16]` @0 (low nibble scale, high nibble min), `qs[64]` @16, `f16 d` @80,
    /// `f16 dmin` @82.
    pub const SIZE: usize = 84;
}
pub(crate) mod q3_k {
    /// `hmask[32]` @0, `qs[64]` @32, packed 6-bit `scales[12]` @96, `f16 d` @108.
    pub const SIZE: usize = 110;
}
pub(crate) mod q4_k {
    /// `f16 d` @0, `f16 dmin` @2, packed 6-bit `scales[12]` @4, `qs[128]` @16.
    pub const SIZE: usize = 144;
}
pub(crate) mod q5_k {
    /// `f16 d` @0, `f16 dmin` @2, `scales[12]` @4, `qh[32]` @16, `qs[128]` @48.
    pub const SIZE: usize = 176;
}
pub(crate) mod q6_k {
    /// `ql[128]` @0, `qh[64]` @128, `i8 scales[16]` @192, `f16 d` @208.
    pub const SIZE: usize = 210;
}
pub(crate) mod q8_k {
    /// `f32 d` @0, `i8 qs[256]` @4, `i16 bsums[16]` @260 (sum of each 16 consecutive qs).
    pub const SIZE: usize = 292;
}

/// Unpacks the 12-byte K-quant scale field into 8 scales followed by 8 mins (6 bits each),
/// exactly like ggml's `utmp` shuffle in the x86 kernels.
#[inline(always)]
pub(crate) fn unpack_k4_scales(s: &[u8; 12]) -> [u32; 4] {
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let mut u = [
        u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        u32::from_le_bytes([s[4], s[5], s[6], s[7]]),
        u32::from_le_bytes([s[8], s[9], s[10], s[11]]),
        0,
    ];
    u[3] = ((u[2] >> 4) & KMASK2) | (((u[1] >> 6) & KMASK3) << 4);
    let uaux = u[1] & KMASK1;
    u[1] = (u[2] & KMASK2) | (((u[0] >> 6) & KMASK3) << 4);
    u[2] = uaux;
    u[0] &= KMASK1;
    u
}

/// Unpacks Q3_K's 12-byte scale field into 16 signed scales (already minus 32).
#[inline(always)]
pub(crate) fn unpack_q3_k_scales(s: &[u8; 12]) -> [i8; 16] {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let a0 = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    let a1 = u32::from_le_bytes([s[4], s[5], s[6], s[7]]);
    let tmp = u32::from_le_bytes([s[8], s[9], s[10], s[11]]);
    let aux = [
        (a0 & KMASK2) | ((tmp & KMASK1) << 4),
        (a1 & KMASK2) | (((tmp >> 2) & KMASK1) << 4),
        ((a0 >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4),
        ((a1 >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4),
    ];
    let mut out = [0i8; 16];
    for (i, w) in aux.iter().enumerate() {
        for (k, b) in w.to_le_bytes().iter().enumerate() {
            out[4 * i + k] = (*b as i8).wrapping_sub(32);
        }
    }
    out
}

/// Bytes of one row of `n` elements of `ty`, `None` when `n` is not a whole number of blocks.
pub fn row_bytes(ty: GgmlType, n: usize) -> Option<usize> {
    if !n.is_multiple_of(ty.block_size()) {
        return None;
    }
    (n / ty.block_size()).checked_mul(ty.type_size())
}

/// Mutable twin of [`field`].
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
pub(crate) fn field_mut<const O: usize, const L: usize, const N: usize>(
    b: &mut [u8; N],
) -> &mut [u8; L] {
    const { assert!(O + L <= N) };
    // SAFETY: as in `field`; the exclusive borrow of `b` covers the returned sub-array.
    unsafe { &mut *b.as_mut_ptr().add(O).cast::<[u8; L]>() }
}
