//! `#[repr(C)]` block layouts matching `ggml-common.h`, and safe little-endian (de)serialisation.
//!
//! The structs document the on-disk layout and have the C sizes (checked at compile time), but
//! they are never transmuted from bytes: tensor data from an mmap may sit at odd addresses, so
//! [`Block::read`] parses fields explicitly and [`Block::write`] serialises them back.

use std::mem::size_of;

use half::f16;
use hanlin_gguf::GgmlType;

use crate::error::{check_bytes, QuantError};
use crate::{K_SCALE_SIZE, QK4_0, QK4_1, QK5_0, QK5_1, QK8_0, QK8_1, QK_K};

/// A fixed-size quantization block of one ggml type.
pub trait Block: Copy + 'static {
    /// The ggml type whose rows are made of these blocks.
    const TYPE: GgmlType;
    /// Elements per block.
    const QK: usize;
    /// Serialised bytes per block (equals `size_of::<Self>()`).
    const SIZE: usize;
    /// Parses one block from the first [`Self::SIZE`] bytes; panics if `bytes` is shorter.
    fn read(bytes: &[u8]) -> Self;
    /// Serialises into the first [`Self::SIZE`] bytes of `out`; panics if `out` is shorter.
    fn write(&self, out: &mut [u8]);
}

/// Iterates the blocks of a row, or errors (naming the type) when `data` is not whole blocks.
pub fn blocks<B: Block>(data: &[u8]) -> Result<impl ExactSizeIterator<Item = B> + '_, QuantError> {
    let whole = data.len() / B::SIZE * B::SIZE;
    check_bytes(B::TYPE, "source", whole, data.len())?;
    Ok(data.chunks_exact(B::SIZE).map(B::read))
}

/// Sequential little-endian field reader over one block's bytes.
struct Rd<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Rd<'a> {
    fn new(b: &'a [u8], size: usize) -> Self {
        Rd {
            b: &b[..size],
            at: 0,
        }
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[self.at..self.at + N]);
        self.at += N;
        a
    }
    fn i8s<const N: usize>(&mut self) -> [i8; N] {
        self.bytes::<N>().map(|v| v as i8)
    }
    fn f16(&mut self) -> f16 {
        f16::from_bits(u16::from_le_bytes(self.bytes::<2>()))
    }
    fn f32(&mut self) -> f32 {
        f32::from_le_bytes(self.bytes::<4>())
    }
}

/// Sequential little-endian field writer into one block's bytes.
struct Wr<'a> {
    b: &'a mut [u8],
    at: usize,
}

impl<'a> Wr<'a> {
    fn new(b: &'a mut [u8], size: usize) -> Self {
        Wr {
            b: &mut b[..size],
            at: 0,
        }
    }
    fn bytes(&mut self, v: &[u8]) {
        self.b[self.at..self.at + v.len()].copy_from_slice(v);
        self.at += v.len();
    }
    fn i8s(&mut self, v: &[i8]) {
        for (o, x) in self.b[self.at..self.at + v.len()].iter_mut().zip(v) {
            *o = *x as u8;
        }
        self.at += v.len();
    }
    fn f16(&mut self, v: f16) {
        self.bytes(&v.to_bits().to_le_bytes());
    }
}

/// Declares a block struct's `Block` impl and its compile-time size check in one place.
macro_rules! block_impl {
    ($name:ident, $ty:ident, $qk:expr, $size:expr,
     read($r:ident) $read:block, write($s:ident, $w:ident) $write:block) => {
        const _: () = assert!(size_of::<$name>() == $size);
        impl Block for $name {
            const TYPE: GgmlType = GgmlType::$ty;
            const QK: usize = $qk;
            const SIZE: usize = $size;
            fn read(bytes: &[u8]) -> Self {
                let mut $r = Rd::new(bytes, $size);
                $read
            }
            fn write(&self, out: &mut [u8]) {
                let $s = self;
                let mut $w = Wr::new(out, $size);
                $write
            }
        }
    };
}

/// Q4_0: 32 weights `d * (q - 8)`, 4-bit `q`; element `j` in the low nibble of `qs[j]`,
/// element `j + 16` in the high nibble.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ4_0 {
    /// Scale.
    pub d: f16,
    /// Packed nibbles.
    pub qs: [u8; QK4_0 / 2],
}
block_impl!(BlockQ4_0, Q4_0, QK4_0, 18,
    read(r) { BlockQ4_0 { d: r.f16(), qs: r.bytes() } },
    write(s, w) { w.f16(s.d); w.bytes(&s.qs); });

/// Q4_1: 32 weights `d * q + m`, 4-bit `q`, nibble order as Q4_0.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ4_1 {
    /// Scale.
    pub d: f16,
    /// Minimum (offset).
    pub m: f16,
    /// Packed nibbles.
    pub qs: [u8; QK4_1 / 2],
}
block_impl!(BlockQ4_1, Q4_1, QK4_1, 20,
    read(r) { BlockQ4_1 { d: r.f16(), m: r.f16(), qs: r.bytes() } },
    write(s, w) { w.f16(s.d); w.f16(s.m); w.bytes(&s.qs); });

/// Q5_0: 32 weights `d * (q - 16)`, 5-bit `q`; low nibbles as Q4_0, bit 4 of element `j` is
/// bit `j` of the little-endian `u32` in `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ5_0 {
    /// Scale.
    pub d: f16,
    /// Fifth bits, little-endian `u32`.
    pub qh: [u8; 4],
    /// Packed low nibbles.
    pub qs: [u8; QK5_0 / 2],
}
block_impl!(BlockQ5_0, Q5_0, QK5_0, 22,
    read(r) { BlockQ5_0 { d: r.f16(), qh: r.bytes(), qs: r.bytes() } },
    write(s, w) { w.f16(s.d); w.bytes(&s.qh); w.bytes(&s.qs); });

/// Q5_1: 32 weights `d * q + m`, 5-bit `q`, bit layout as Q5_0.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ5_1 {
    /// Scale.
    pub d: f16,
    /// Minimum (offset).
    pub m: f16,
    /// Fifth bits, little-endian `u32`.
    pub qh: [u8; 4],
    /// Packed low nibbles.
    pub qs: [u8; QK5_1 / 2],
}
block_impl!(BlockQ5_1, Q5_1, QK5_1, 24,
    read(r) { BlockQ5_1 { d: r.f16(), m: r.f16(), qh: r.bytes(), qs: r.bytes() } },
    write(s, w) { w.f16(s.d); w.f16(s.m); w.bytes(&s.qh); w.bytes(&s.qs); });

/// Q8_0: 32 weights `d * q`, `q` signed 8-bit.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8_0 {
    /// Scale.
    pub d: f16,
    /// Quants.
    pub qs: [i8; QK8_0],
}
block_impl!(BlockQ8_0, Q8_0, QK8_0, 34,
    read(r) { BlockQ8_0 { d: r.f16(), qs: r.i8s() } },
    write(s, w) { w.f16(s.d); w.i8s(&s.qs); });

/// Q8_1 (activations for Q4_1 / Q5_1): like Q8_0 plus `s = d * sum(qs)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8_1 {
    /// Scale.
    pub d: f16,
    /// `d * sum(qs)`, rounded to f16.
    pub s: f16,
    /// Quants.
    pub qs: [i8; QK8_1],
}
block_impl!(BlockQ8_1, Q8_1, QK8_1, 36,
    read(r) { BlockQ8_1 { d: r.f16(), s: r.f16(), qs: r.i8s() } },
    write(s, w) { w.f16(s.d); w.f16(s.s); w.i8s(&s.qs); });

/// Q2_K: 16 groups of 16 weights `d * (scales & 15) * q - dmin * (scales >> 4)`, 2-bit `q`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ2_K {
    /// Per-group 4-bit scale (low nibble) and 4-bit min (high nibble).
    pub scales: [u8; QK_K / 16],
    /// 2-bit quants, four per byte.
    pub qs: [u8; QK_K / 4],
    /// Super-block scale for the scales.
    pub d: f16,
    /// Super-block scale for the mins.
    pub dmin: f16,
}
block_impl!(BlockQ2_K, Q2_K, QK_K, 84,
    read(r) { BlockQ2_K { scales: r.bytes(), qs: r.bytes(), d: r.f16(), dmin: r.f16() } },
    write(s, w) { w.bytes(&s.scales); w.bytes(&s.qs); w.f16(s.d); w.f16(s.dmin); });

/// Q3_K: 16 groups of 16 weights `d * (scale - 32) * (q - 4)`, 3-bit `q` (2 low bits in `qs`,
/// the high bit in `hmask`), 6-bit scales packed into 12 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ3_K {
    /// High bits of the quants.
    pub hmask: [u8; QK_K / 8],
    /// Low 2 bits of the quants.
    pub qs: [u8; QK_K / 4],
    /// 6-bit scales, packed.
    pub scales: [u8; 12],
    /// Super-block scale.
    pub d: f16,
}
block_impl!(BlockQ3_K, Q3_K, QK_K, 110,
    read(r) { BlockQ3_K { hmask: r.bytes(), qs: r.bytes(), scales: r.bytes(), d: r.f16() } },
    write(s, w) { w.bytes(&s.hmask); w.bytes(&s.qs); w.bytes(&s.scales); w.f16(s.d); });

/// Q4_K: 8 groups of 32 weights `d * sc * q - dmin * m`, 4-bit `q`, 6-bit `sc` and `m`
/// packed into `scales` (see [`crate::get_scale_min_k4`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ4_K {
    /// Super-block scale for the scales.
    pub d: f16,
    /// Super-block scale for the mins.
    pub dmin: f16,
    /// 6-bit scales and mins, packed.
    pub scales: [u8; K_SCALE_SIZE],
    /// 4-bit quants: per 64 elements, 32 bytes with the first 32 in the low nibbles.
    pub qs: [u8; QK_K / 2],
}
block_impl!(BlockQ4_K, Q4_K, QK_K, 144,
    read(r) { BlockQ4_K { d: r.f16(), dmin: r.f16(), scales: r.bytes(), qs: r.bytes() } },
    write(s, w) { w.f16(s.d); w.f16(s.dmin); w.bytes(&s.scales); w.bytes(&s.qs); });

/// Q5_K: as Q4_K with a fifth bit per weight in `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ5_K {
    /// Super-block scale for the scales.
    pub d: f16,
    /// Super-block scale for the mins.
    pub dmin: f16,
    /// 6-bit scales and mins, packed.
    pub scales: [u8; K_SCALE_SIZE],
    /// Fifth bits: bit `2k` / `2k+1` of `qh[l]` for the two halves of 64-element chunk `k`.
    pub qh: [u8; QK_K / 8],
    /// Low 4 bits, laid out as Q4_K.
    pub qs: [u8; QK_K / 2],
}
block_impl!(BlockQ5_K, Q5_K, QK_K, 176,
read(r) {
    BlockQ5_K { d: r.f16(), dmin: r.f16(), scales: r.bytes(), qh: r.bytes(), qs: r.bytes() }
},
write(s, w) {
    w.f16(s.d); w.f16(s.dmin); w.bytes(&s.scales); w.bytes(&s.qh); w.bytes(&s.qs);
});

/// Q6_K: 16 groups of 16 weights `d * scale * (q - 32)`, 6-bit `q`, signed 8-bit scales.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ6_K {
    /// Low 4 bits of the quants.
    pub ql: [u8; QK_K / 2],
    /// High 2 bits of the quants.
    pub qh: [u8; QK_K / 4],
    /// Per-group scales.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale.
    pub d: f16,
}
block_impl!(BlockQ6_K, Q6_K, QK_K, 210,
    read(r) { BlockQ6_K { ql: r.bytes(), qh: r.bytes(), scales: r.i8s(), d: r.f16() } },
    write(s, w) { w.bytes(&s.ql); w.bytes(&s.qh); w.i8s(&s.scales); w.f16(s.d); });

/// Q8_K (activations for the K-quants): 256 values `d * q` with an `f32` scale and the sums
/// of each group of 16 quants.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8_K {
    /// Scale (a full `f32`, unlike the other blocks).
    pub d: f32,
    /// Quants.
    pub qs: [i8; QK_K],
    /// Sum of each 16 consecutive quants.
    pub bsums: [i16; QK_K / 16],
}
block_impl!(BlockQ8_K, Q8_K, QK_K, 292,
read(r) {
    let d = r.f32();
    let qs = r.i8s();
    let raw: [u8; QK_K / 8] = r.bytes();
    let mut bsums = [0i16; QK_K / 16];
    for (o, b) in bsums.iter_mut().zip(raw.chunks_exact(2)) {
        *o = i16::from_le_bytes([b[0], b[1]]);
    }
    BlockQ8_K { d, qs, bsums }
},
write(s, w) {
    w.bytes(&s.d.to_le_bytes());
    w.i8s(&s.qs);
    for v in s.bsums {
        w.bytes(&v.to_le_bytes());
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    fn check<B: Block>() {
        assert_eq!(B::SIZE, B::TYPE.type_size(), "{}", B::TYPE);
        assert_eq!(B::QK, B::TYPE.block_size(), "{}", B::TYPE);
        assert_eq!(B::SIZE, size_of::<B>(), "{}", B::TYPE);
        // Round trip through bytes at an odd offset: nothing may depend on alignment.
        let raw: Vec<u8> = (0..B::SIZE + 1).map(|i| (i * 37 + 11) as u8).collect();
        let b = B::read(&raw[1..]);
        let mut out = vec![0u8; B::SIZE];
        b.write(&mut out);
        assert_eq!(out, raw[1..], "{}", B::TYPE);
    }

    #[test]
    fn sizes_match_ggml_and_round_trip() {
        check::<BlockQ4_0>();
        check::<BlockQ4_1>();
        check::<BlockQ5_0>();
        check::<BlockQ5_1>();
        check::<BlockQ8_0>();
        check::<BlockQ8_1>();
        check::<BlockQ2_K>();
        check::<BlockQ3_K>();
        check::<BlockQ4_K>();
        check::<BlockQ5_K>();
        check::<BlockQ6_K>();
        check::<BlockQ8_K>();
    }

    #[test]
    fn field_offsets_follow_the_c_layout() {
        let mut raw = vec![0u8; 144];
        raw[0..2].copy_from_slice(&f16::from_f32(1.5).to_bits().to_le_bytes());
        raw[2..4].copy_from_slice(&f16::from_f32(-2.0).to_bits().to_le_bytes());
        raw[4] = 7;
        raw[16] = 9;
        let b = BlockQ4_K::read(&raw);
        assert_eq!(
            (b.d.to_f32(), b.dmin.to_f32(), b.scales[0], b.qs[0]),
            (1.5, -2.0, 7, 9)
        );
        let mut raw = vec![0u8; 210];
        raw[208..210].copy_from_slice(&f16::from_f32(0.25).to_bits().to_le_bytes());
        raw[192] = 0xff;
        let b = BlockQ6_K::read(&raw);
        assert_eq!((b.d.to_f32(), b.scales[0]), (0.25, -1));
    }

    #[test]
    fn blocks_rejects_partial_blocks() {
        let data = vec![0u8; 18 * 2 + 1];
        let err = blocks::<BlockQ4_0>(&data).err();
        assert!(matches!(
            err,
            Some(QuantError::Length {
                ty: GgmlType::Q4_0,
                ..
            })
        ));
        assert_eq!(
            blocks::<BlockQ4_0>(&data[..36]).map(|it| it.len()).ok(),
            Some(2)
        );
    }
}
