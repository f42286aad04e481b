//! Scalar float format conversions exactly as ggml performs them.

/// Converts `f32` to bfloat16 bits like `ggml_compute_fp32_to_bf16`: round to nearest even,
/// NaN kept NaN (forced quiet) instead of being rounded into infinity.
pub fn f32_to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    // Cannot overflow: the largest non-NaN pattern plus 0x8000 stays below 2^32.
    ((u + (0x7fff + ((u >> 16) & 1))) >> 16) as u16
}

/// Widens bfloat16 bits to `f32` (exact).
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// Reads little-endian `f32` values out of `bytes` (length a multiple of 4, checked by callers).
pub(crate) fn read_f32s(bytes: &[u8], dst: &mut [f32]) {
    for (b, y) in bytes.chunks_exact(4).zip(dst.iter_mut()) {
        *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// Reads little-endian `u16` values out of `bytes`.
pub(crate) fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even_and_keeps_nan() {
        // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to the even mantissa.
        assert_eq!(f32_to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(f32_to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(f32_to_bf16(f32::INFINITY), 0x7f80);
        let nan = f32_to_bf16(f32::from_bits(0x7f80_0001));
        assert!(bf16_to_f32(nan).is_nan());
        assert_eq!(bf16_to_f32(0xbf80), -1.0);
    }
}
