//! [`Kernels`]: the per-ISA table behind safe, validated entry points.

use crate::error::KernelError;
use crate::isa::{detect, Isa};
use crate::layout::row_bytes;
use crate::table::{DotEntry, Table};
use hanlin_gguf::GgmlType;
use std::sync::OnceLock;

/// The activation format that weight type `w` is multiplied with (ggml's `vec_dot_type`).
///
/// F16 and BF16 weights take activations rounded to F16 / BF16, as ggml does; F32 weights take
/// F32. `None` for types without a dot kernel.
pub fn activation_type(w: GgmlType) -> Option<GgmlType> {
    use GgmlType as T;
    Some(match w {
        T::F32 => T::F32,
        T::F16 => T::F16,
        T::BF16 => T::BF16,
        T::Q4_0 | T::Q5_0 | T::Q8_0 => T::Q8_0,
        T::Q4_1 | T::Q5_1 => T::Q8_1,
        T::Q2_K | T::Q3_K | T::Q4_K | T::Q5_K | T::Q6_K => T::Q8_K,
        _ => return None,
    })
}

/// Bytes of one row of `n` elements of `ty`, as an error when `n` is not whole blocks.
pub(crate) fn checked_row_bytes(ty: GgmlType, n: usize) -> Result<usize, KernelError> {
    if !n.is_multiple_of(ty.block_size()) {
        return Err(KernelError::NotBlockMultiple {
            ty,
            n,
            block: ty.block_size(),
        });
    }
    row_bytes(ty, n).ok_or(KernelError::Overflow { what: "row" })
}

/// `a * b` or an overflow error naming `what`.
pub(crate) fn mul(a: usize, b: usize, what: &'static str) -> Result<usize, KernelError> {
    a.checked_mul(b).ok_or(KernelError::Overflow { what })
}

/// `Ok` when `got == expected`, else a length error naming `what`.
pub(crate) fn expect_len(
    what: &'static str,
    expected: usize,
    got: usize,
) -> Result<(), KernelError> {
    if expected == got {
        Ok(())
    } else {
        Err(KernelError::Length {
            what,
            expected,
            got,
        })
    }
}

/// Dot-product and quantization kernels for one instruction set.
#[derive(Clone)]
pub struct Kernels {
    isa: Isa,
    table: Table,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernels").field("isa", &self.isa).finish()
    }
}

impl Kernels {
    /// Kernels for `isa`, or an error if this CPU cannot run it.
    pub fn new(isa: Isa) -> Result<Self, KernelError> {
        if !isa.is_available() {
            return Err(KernelError::IsaUnavailable(isa.name()));
        }
        // Patched in place by the ISA-specific installers, which exist only on some targets.
        #[allow(unused_mut)]
        let mut table = crate::arch::generic::table();
        match isa {
            Isa::Generic => {}
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: `is_available` just confirmed AVX2, FMA and F16C.
                unsafe { crate::arch::x86_64::avx2::install(&mut table) };
            }
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => {
                // SAFETY: `is_available` just confirmed AVX2, FMA, F16C and AVX-VNNI.
                unsafe { crate::arch::x86_64::avxvnni::install(&mut table) };
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => {
                // SAFETY: `is_available` just confirmed AVX2, FMA, F16C, AVX-512 F/BW/VL and
                // AVX512_VNNI.
                unsafe {
                    crate::arch::x86_64::avx512vnni::install(&mut table);
                    crate::arch::x86_64::gemm512::install(&mut table);
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni => {
                return Err(KernelError::IsaUnavailable(isa.name()))
            }
        }
        Ok(Self { isa, table })
    }

    /// The portable scalar kernels; always available.
    pub fn generic() -> Self {
        Self {
            isa: Isa::Generic,
            table: crate::arch::generic::table(),
        }
    }

    /// The process-wide kernels for [`detect`]'s ISA, chosen on first use.
    pub fn detected() -> &'static Kernels {
        static K: OnceLock<Kernels> = OnceLock::new();
        K.get_or_init(|| Kernels::new(detect()).unwrap_or_else(|_| Kernels::generic()))
    }

    /// The instruction set these kernels use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Whether weights of type `ty` have a dot kernel.
    pub fn supports(&self, ty: GgmlType) -> bool {
        self.table.dot(ty).is_some()
    }

    pub(crate) fn entry(&self, ty: GgmlType) -> Result<&DotEntry, KernelError> {
        self.table.dot(ty).ok_or(KernelError::UnsupportedWeight(ty))
    }

    /// Quantizes f32 values to activation type `act` (Q8_0, Q8_1, Q8_K, F16, BF16 or F32),
    /// byte-identical to hanlin-quant's reference quantizers.
    ///
    /// `src.len()` must be whole blocks of `act`; several rows can be quantized in one call
    /// when each row is, since blocks never straddle rows.
    pub fn quantize_row(
        &self,
        act: GgmlType,
        src: &[f32],
        dst: &mut [u8],
    ) -> Result<(), KernelError> {
        let q = self
            .table
            .quantize(act)
            .ok_or(KernelError::UnsupportedActivation(act))?;
        let bytes = checked_row_bytes(act, src.len())?;
        expect_len("quantized activations (bytes)", bytes, dst.len())?;
        // SAFETY: the table was built for an ISA this CPU supports (see `Kernels::new`), and the
        // lengths were validated above.
        unsafe { q(src, dst) };
        Ok(())
    }

    /// Quantizes f32 activations into the format weights of type `w` multiply with.
    pub fn quantize_for(
        &self,
        w: GgmlType,
        src: &[f32],
        dst: &mut [u8],
    ) -> Result<(), KernelError> {
        let act = self.entry(w)?.act;
        self.quantize_row(act, src, dst)
    }

    /// Dot product of one weight row of type `ty` with one activation row already in
    /// [`activation_type`]`(ty)`, both `n` elements long.
    pub fn vec_dot(
        &self,
        ty: GgmlType,
        n: usize,
        w: &[u8],
        act: &[u8],
    ) -> Result<f32, KernelError> {
        let e = self.entry(ty)?;
        expect_len("weight row (bytes)", checked_row_bytes(ty, n)?, w.len())?;
        expect_len(
            "activation row (bytes)",
            checked_row_bytes(e.act, n)?,
            act.len(),
        )?;
        // SAFETY: ISA checked at construction; lengths validated above.
        Ok(unsafe { (e.dot)(n, w, act) })
    }
}
