//! 256-bit VNNI kernels (`vpdpbusd`, `vpdpwssd`) shared by [`crate::Isa::AvxVnni`] (VEX
//! encoding, AVX-VNNI) and [`crate::Isa::Avx512Vnni`] (EVEX encoding, AVX512_VNNI + VL).
//!
//! Both ISAs run the same instructions under different CPUID bits and intrinsics, so the
//! kernels are written once as macros and instantiated per ISA by [`vnni_isa!`] with that
//! ISA's `target_feature` string: every function of an instance carries the instance's
//! features and is reached only through a table its `install` filled after they were detected.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes and adds groups of four products to i32 lanes
//! without saturating, so every block's integer part stays exact:
//! - signed × signed (Q8_0 weights, and the 1×4 tiles of Q4_0 / Q5_0 / Q8_0) moves the
//!   weight's sign onto the activation, as ggml does: `|x| · sign(y, x)`;
//! - unsigned weights with an offset (Q4_0's `n − 8`, Q5_0's `n − 16`) use `n · y − o · Σy` in
//!   the 1×1 kernels, the activation sum being one more `vpdpbusd` by the constant `o`;
//! - Q4_K and Q5_K take two `vpdpbusd` per 64 values, pack the two sub-blocks' lanes to i16
//!   (exact: a lane is at most 4 · 63 · 128) and apply the sub-block scales with one
//!   `vpdpwssd`: three multiplies per 64 values where AVX2 needs four `maddubs` / `madd` and
//!   two adds. Q4_K then folds each super-block's exact totals in llama.cpp's order;
//! - Q6_K keeps ggml's AVX2 lane layout (its float step is per lane): one `vpdpbusd` per 32
//!   values, scaled in place by a `vpdpwssd` with `(scale, 0)` word pairs.
//!
//! Float steps are shared functions called by each 1×1 kernel and its tiles in the same order,
//! so batched results stay bit-identical to single dots.

pub(crate) mod kquants;
pub(crate) mod legacy;
pub(crate) mod tile;

/// Expands to one VNNI ISA: `dpbusd` / `dpwssd` wrappers over the given intrinsic and
/// instruction, the `legacy`, `kquants` and `tile` kernel modules, and `install`. The invoking
/// module imports `__m256i` and provides `bit_bytes(bits, v)`: byte `i` of `v` where bit `i` of
/// `bits` is set, else 0.
///
/// `tile8` says whether to install the K-quants' 1×8 tiles (they want more than 16 vector
/// registers; the 32-element formats measured no faster with them). `$feat` must name every feature the intrinsic, the instruction in `$dpwssd` and the reused
/// AVX2 helpers need.
///
/// `vpdpwssd` is emitted with inline assembly: without a CPU tuning that marks it fast, LLVM
/// splits the intrinsic back into `vpmaddwd` + `vpaddd`, which is exactly what it is meant to
/// replace.
macro_rules! vnni_isa {
    ($feat:literal, $dpbusd:ident, $dpwssd:literal, tile8: $tile8:literal) => {
        use core::arch::x86_64::$dpbusd;

        /// `acc` plus, per i32 lane, the sum of four unsigned × signed byte products.
        #[inline]
        #[target_feature(enable = $feat)]
        fn dpbusd(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
            $dpbusd(acc, u, s)
        }

        /// `acc` plus, per i32 lane, the sum of two i16 × i16 products.
        #[inline]
        #[target_feature(enable = $feat)]
        fn dpwssd(mut acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            // SAFETY: `$dpwssd` is one `vpdpwssd` on the three registers, which the function's
            // target features (checked before any table exposes it) make available; it reads
            // and writes nothing else.
            unsafe {
                core::arch::asm!(
                    $dpwssd,
                    inout(ymm_reg) acc,
                    in(ymm_reg) a,
                    in(ymm_reg) b,
                    options(pure, nomem, nostack, preserves_flags)
                );
            }
            acc
        }

        /// 32-element formats.
        mod legacy {
            $crate::arch::x86_64::vnni::legacy::vnni_legacy!($feat);
        }

        /// K-quants against Q8_K.
        mod kquants {
            $crate::arch::x86_64::vnni::kquants::vnni_kquants!($feat);
        }

        /// 1×4 tiles for batched matmul.
        mod tile {
            $crate::arch::x86_64::vnni::tile::vnni_tiles!($feat);
        }

        /// Installs the AVX2 kernels, then replaces the ones VNNI speeds up.
        ///
        /// # Safety
        /// The CPU must support every feature in this module's `target_feature` string (which
        /// includes AVX2, FMA and F16C).
        pub(crate) unsafe fn install(t: &mut $crate::table::Table) {
            use hanlin_gguf::GgmlType as T;
            // SAFETY: the caller guarantees a superset of AVX2 + FMA + F16C.
            unsafe { $crate::arch::x86_64::avx2::install(t) };
            t.set_kernels(T::Q4_0, legacy::dot_q4_0, Some(tile::dot4_q4_0));
            t.set_kernels(T::Q4_1, legacy::dot_q4_1, None);
            t.set_kernels(T::Q5_0, legacy::dot_q5_0, Some(tile::dot4_q5_0));
            t.set_kernels(T::Q5_1, legacy::dot_q5_1, None);
            t.set_kernels(T::Q8_0, legacy::dot_q8_0, Some(tile::dot4_q8_0));
            t.set_kernels(T::Q4_K, kquants::dot_q4_k, Some(tile::dot4_q4_k));
            t.set_kernels(T::Q5_K, kquants::dot_q5_k, Some(tile::dot4_q5_k));
            t.set_kernels(T::Q6_K, kquants::dot_q6_k, Some(tile::dot4_q6_k));
            if $tile8 {
                t.set_tile8(T::Q4_K, tile::dot8_q4_k);
                t.set_tile8(T::Q5_K, tile::dot8_q5_k);
                t.set_tile8(T::Q6_K, tile::dot8_q6_k);
            }
        }
    };
}
pub(crate) use vnni_isa;
