//! AVX2 kernels for packed Q4_0 and Q4_K matrices (`crate::packed`), also used by the AVX-VNNI
//! table (Q4_K: the eight `vpmaddubsw` pair sums of a sub-block add up in i16, at most
//! 8 · 2 · 15 · 127 = 30480, and one `vpmaddwd` by the row's scale pair makes them exact i32):
//! each 16-row group as two 8-row halves (one ymm each), two tokens per pass.
//!
//! Per block, half and token: `vpmaddubsw` of the unsigned nibbles with the token's quants
//! (each dword broadcast; pair sums stay below 2 · 15 · 127, so nothing saturates), then
//! `vpmaddwd` by ones into i32 lanes, starting from `−8 · Σ y`: every lane ends with its row's
//! exact block sum. Then the scalar kernel's conversion, scale product and FMA, lane by lane.

use crate::layout::q8_0;
use crate::packed::{
    run_tiles, PackedArgs, GROUP, Q4K_D, Q4K_DMIN, Q4K_MINS, Q4K_SCALES, Q4_0_UNIT, Q4_K_UNIT,
    Q8_0_UNIT,
};
use core::arch::x86_64::*;

/// Tokens per pass over a group's weights (16 ymm registers leave room for two).
const TILE: usize = 2;

/// f16 bits → f32, exactly.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fp16(bits: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// The dword at byte `o` of `p`, in all 8 lanes.
///
/// # Safety
/// `p + o .. p + o + 4` must be readable.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bcast(p: *const u8, o: usize) -> __m256i {
    // SAFETY: caller contract; unaligned read.
    _mm256_set1_epi32(unsafe { p.add(o).cast::<i32>().read_unaligned() })
}

/// `T` tokens from `t0` against group `g`.
///
/// # Safety
/// As [`q4_0x16`], with `t0 + T <= n_tokens` and `g` a group of the matrix.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<const T: usize>(a: &PackedArgs<'_>, g: usize, t0: usize) {
    let nb = a.cols / 32;
    let act_row = nb * q8_0::SIZE;
    let gw = &a.w[g * a.group_bytes..(g + 1) * a.group_bytes];
    let ys: [&[u8]; T] = std::array::from_fn(|t| &a.act[(t0 + t) * act_row..][..act_row]);
    let offs: [&[i32]; T] = std::array::from_fn(|t| &a.offs[(t0 + t) * nb..][..nb]);
    let m4 = _mm256_set1_epi8(0x0f);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); 2]; T];
    #[allow(clippy::needless_range_loop)] // `h` picks both the weight half and the accumulator
    for b in 0..nb {
        let unit = &gw[(b / 2) * Q4_0_UNIT..][..Q4_0_UNIT];
        let half = b % 2;
        let qs = unit[half * 256..][..256].as_ptr();
        let sc = unit[512 + half * 32..][..32].as_ptr();
        for h in 0..2 {
            // SAFETY: `qs` has 256 readable bytes; 64k + 32h + 32 <= 256.
            let w: [__m256i; 4] = std::array::from_fn(|k| unsafe {
                _mm256_loadu_si256(qs.add(64 * k + 32 * h).cast())
            });
            let lo: [__m256i; 4] = std::array::from_fn(|k| _mm256_and_si256(w[k], m4));
            let hi: [__m256i; 4] =
                std::array::from_fn(|k| _mm256_and_si256(_mm256_srli_epi16::<4>(w[k]), m4));
            // SAFETY: 16 readable bytes of f16 scales at 16h.
            let dw = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(sc.add(16 * h).cast()) });
            for t in 0..T {
                let yb = &ys[t][b * q8_0::SIZE..][..q8_0::SIZE];
                let qa = yb[2..].as_ptr();
                let mut s = _mm256_set1_epi32(offs[t][b]);
                // SAFETY: `qa` has 32 readable bytes; every offset + 4 stays inside them.
                unsafe {
                    for k in 0..4 {
                        let p = _mm256_add_epi16(
                            _mm256_maddubs_epi16(lo[k], bcast(qa, 4 * k)),
                            _mm256_maddubs_epi16(hi[k], bcast(qa, 16 + 4 * k)),
                        );
                        s = _mm256_add_epi32(s, _mm256_madd_epi16(p, ones));
                    }
                }
                let d = _mm256_mul_ps(dw, _mm256_set1_ps(fp16(u16::from_le_bytes([yb[0], yb[1]]))));
                acc[t][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc[t][h]);
            }
        }
    }
    let valid = GROUP.min(a.rows - g * GROUP);
    for (t, acc) in acc.into_iter().enumerate() {
        // SAFETY: row g·16 + r < rows for token t0 + t < n_tokens lies inside `out`, and the
        // caller owns this group's rows.
        unsafe { store(a, g, t0 + t, valid, acc) };
    }
}

/// Writes lanes `0..valid` of the two halves `v` (rows 0–7, 8–15) to token `t`'s outputs.
///
/// # Safety
/// As the kernels: token `t` and the group's first `valid` rows lie inside `out`, owned by
/// the caller.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store(a: &PackedArgs<'_>, g: usize, t: usize, valid: usize, v: [__m256; 2]) {
    let mut buf = [0f32; GROUP];
    // SAFETY: `buf` has 16 writable floats.
    unsafe {
        _mm256_storeu_ps(buf.as_mut_ptr(), v[0]);
        _mm256_storeu_ps(buf.as_mut_ptr().add(8), v[1]);
    }
    for (r, v) in buf.into_iter().take(valid).enumerate() {
        // SAFETY: caller contract.
        unsafe { *a.out.add(t * a.rows + g * GROUP + r) = v };
    }
}

/// `T` tokens from `t0` against group `g` of a packed Q4_K matrix.
///
/// # Safety
/// As [`q4_kx16`], with `t0 + T <= n_tokens` and `g` a group of the matrix.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_k<const T: usize>(a: &PackedArgs<'_>, g: usize, t0: usize) {
    let nsb = a.cols / 256;
    let act_row = nsb * 292;
    let gw = &a.w[g * a.group_bytes..(g + 1) * a.group_bytes];
    let ys: [&[u8]; T] = std::array::from_fn(|t| &a.act[(t0 + t) * act_row..][..act_row]);
    let offs: [&[i32]; T] = std::array::from_fn(|t| &a.offs[(t0 + t) * nsb * 4..][..nsb * 4]);
    let m4 = _mm256_set1_epi8(0x0f);
    let mut acc = [[_mm256_setzero_ps(); 2]; T];
    let mut acc_min = [[_mm256_setzero_ps(); 2]; T];
    for b in 0..nsb {
        let unit = gw[b * Q4_K_UNIT..][..Q4_K_UNIT].as_ptr();
        for h in 0..2 {
            let mut isum = [_mm256_setzero_si256(); T];
            for j in 0..4 {
                // (scale, scale) i16 pairs of sub-blocks 2j and 2j + 1 for rows 8h..8h + 8.
                let sc: [__m256i; 2] = std::array::from_fn(|s| {
                    let at = Q4K_SCALES + 16 * (2 * j + s) + 8 * h;
                    // SAFETY: 8 scale bytes per half inside the unit.
                    let v = _mm256_cvtepu8_epi32(unsafe { _mm_loadl_epi64(unit.add(at).cast()) });
                    _mm256_or_si256(v, _mm256_slli_epi32::<16>(v))
                });
                let mut pl = [_mm256_setzero_si256(); T];
                let mut ph = [_mm256_setzero_si256(); T];
                for k in 0..8 {
                    // SAFETY: line 8j + k, half h, inside the unit's quants.
                    let w =
                        unsafe { _mm256_loadu_si256(unit.add((8 * j + k) * 64 + 32 * h).cast()) };
                    let lo = _mm256_and_si256(w, m4);
                    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(w), m4);
                    for t in 0..T {
                        let qa = ys[t][b * 292 + 4 + 64 * j..][..64].as_ptr();
                        // SAFETY: `qa` has 64 readable bytes; offsets + 4 stay inside.
                        unsafe {
                            pl[t] =
                                _mm256_add_epi16(pl[t], _mm256_maddubs_epi16(lo, bcast(qa, 4 * k)));
                            ph[t] = _mm256_add_epi16(
                                ph[t],
                                _mm256_maddubs_epi16(hi, bcast(qa, 32 + 4 * k)),
                            );
                        }
                    }
                }
                for t in 0..T {
                    let p = _mm256_add_epi32(
                        _mm256_madd_epi16(pl[t], sc[0]),
                        _mm256_madd_epi16(ph[t], sc[1]),
                    );
                    isum[t] = _mm256_add_epi32(isum[t], p);
                }
            }
            // SAFETY: the mins, d and dmin fields of rows 8h..8h + 8 lie inside the unit.
            let (mins, dw, dminw) = unsafe {
                let mins: [__m256i; 4] = std::array::from_fn(|i| {
                    _mm256_cvtepu8_epi16(_mm_loadu_si128(
                        unit.add(Q4K_MINS + 32 * i + 16 * h).cast(),
                    ))
                });
                (
                    mins,
                    _mm256_cvtph_ps(_mm_loadu_si128(unit.add(Q4K_D + 16 * h).cast())),
                    _mm256_cvtph_ps(_mm_loadu_si128(unit.add(Q4K_DMIN + 16 * h).cast())),
                )
            };
            for t in 0..T {
                let mut msum = _mm256_setzero_si256();
                for (i, m) in mins.iter().enumerate() {
                    let pair = _mm256_set1_epi32(offs[t][4 * b + i]);
                    msum = _mm256_add_epi32(msum, _mm256_madd_epi16(*m, pair));
                }
                let yb = &ys[t][b * 292..][..4];
                let yd = _mm256_set1_ps(f32::from_le_bytes([yb[0], yb[1], yb[2], yb[3]]));
                acc[t][h] = _mm256_fmadd_ps(
                    _mm256_cvtepi32_ps(isum[t]),
                    _mm256_mul_ps(dw, yd),
                    acc[t][h],
                );
                acc_min[t][h] = _mm256_fmadd_ps(
                    _mm256_cvtepi32_ps(msum),
                    _mm256_mul_ps(dminw, yd),
                    acc_min[t][h],
                );
            }
        }
    }
    let valid = GROUP.min(a.rows - g * GROUP);
    for t in 0..T {
        let v = [
            _mm256_sub_ps(acc[t][0], acc_min[t][0]),
            _mm256_sub_ps(acc[t][1], acc_min[t][1]),
        ];
        // SAFETY: forwarded contract.
        unsafe { store(a, g, t0 + t, valid, v) };
    }
}

/// Groups `g0..g1` of a packed Q4_K matrix for every token.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `a` must satisfy [`PackedArgs`]'s contract and no
/// other thread may write these groups' rows.
pub(crate) unsafe fn q4_kx16(a: &PackedArgs<'_>, g0: usize, g1: usize) {
    // SAFETY: forwarded caller contract; the tiles handle TILE and 1 tokens.
    unsafe { run_tiles(a, g0, g1, TILE, tile_k::<TILE>, tile_k::<1>) }
}

/// Groups `g0..g1` of a packed Q4_0 matrix for every token.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `a` must satisfy [`PackedArgs`]'s contract and no
/// other thread may write these groups' rows.
pub(crate) unsafe fn q4_0x16(a: &PackedArgs<'_>, g0: usize, g1: usize) {
    // SAFETY: forwarded caller contract; the tiles handle TILE and 1 tokens.
    unsafe { run_tiles(a, g0, g1, TILE, tile::<TILE>, tile::<1>) }
}

/// One token against group `g` of a packed Q8_0 matrix, one 8-row half at a time: lane `k` of
/// every row from ggml's sign trick (`|w| · sign(y, w)` pairs, then `vpmaddwd` by ones), then
/// `fma(f32(lane), d_x · d_y, acc_k)` and `hsum_float_8`, as the row kernels.
///
/// # Safety
/// As [`q8_0x16`], with `t < n_tokens` and `g` a group of the matrix.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_token(a: &PackedArgs<'_>, g: usize, t: usize) {
    let nb = a.cols / 32;
    let act_row = nb * q8_0::SIZE;
    let gw = &a.w[g * a.group_bytes..(g + 1) * a.group_bytes];
    let y = &a.act[t * act_row..][..act_row];
    let flip = _mm256_set1_epi8(-128);
    let ones = _mm256_set1_epi16(1);
    let mut out = [_mm256_setzero_ps(); 2];
    for (h, out) in out.iter_mut().enumerate() {
        let mut acc = [_mm256_setzero_ps(); 8];
        for b in 0..nb {
            let unit = &gw[(b / 2) * Q8_0_UNIT..][..Q8_0_UNIT];
            let half = b % 2;
            let qs = unit[half * 512..][..512].as_ptr();
            let sc = unit[1024 + half * 32 + 16 * h..][..16].as_ptr();
            let yb = &y[b * q8_0::SIZE..][..q8_0::SIZE];
            let qa = yb[2..].as_ptr();
            // SAFETY: 16 readable bytes of f16 scales.
            let dw = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(sc.cast()) });
            let d = _mm256_mul_ps(dw, _mm256_set1_ps(fp16(u16::from_le_bytes([yb[0], yb[1]]))));
            for (k, acc) in acc.iter_mut().enumerate() {
                // SAFETY: line k, half h, inside `qs`; `qa` has 32 readable bytes.
                let (w, yv) = unsafe {
                    (
                        _mm256_xor_si256(_mm256_loadu_si256(qs.add(64 * k + 32 * h).cast()), flip),
                        bcast(qa, 4 * k),
                    )
                };
                let p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(yv, w));
                let lane = _mm256_madd_epi16(p, ones);
                *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lane), d, *acc);
            }
        }
        let s: [__m256; 4] = std::array::from_fn(|k| _mm256_add_ps(acc[k + 4], acc[k]));
        *out = _mm256_add_ps(_mm256_add_ps(s[0], s[2]), _mm256_add_ps(s[1], s[3]));
    }
    let valid = GROUP.min(a.rows - g * GROUP);
    // SAFETY: forwarded contract.
    unsafe { store(a, g, t, valid, out) };
}

/// Groups `g0..g1` of a packed Q8_0 matrix for every token.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `a` must satisfy [`PackedArgs`]'s contract and no
/// other thread may write these groups' rows.
pub(crate) unsafe fn q8_0x16(a: &PackedArgs<'_>, g0: usize, g1: usize) {
    // SAFETY: forwarded caller contract; the tiles handle 1 and 1 tokens.
    unsafe { run_tiles(a, g0, g1, 1, q8_token, q8_token) }
}
