//! Matrix products of weights with activations, in the formats llama.cpp uses.
//!
//! Activations are quantized once per row to the weight's `vec_dot_type` (q8_0 for q4_0/q5_0/
//! q8_0, q8_K for k-quants, f16 for f16 weights) and then dotted against each weight row,
//! exactly the pairing ggml uses, so numerics match llama.cpp's CPU backend.

use hanlin_gguf::GgmlType;

use hanlin_kernels::{KernelError, Kernels, ThreadPool, WeightMatrix};

use crate::error::{ModelError, Result};
use crate::weights::Weight;

/// Reusable buffer for quantized activations (sized on first use, then reused).
#[derive(Default, Debug)]
pub struct ActBuf {
    bytes: Vec<u8>,
}

/// `out[t][r] = dot(w.row(r), x[t])` for `n` activation rows of `w.cols` elements, on `pool`.
pub fn matmul(
    file: &[u8],
    w: &Weight,
    x: &[f32],
    n: usize,
    out: &mut [f32],
    buf: &mut ActBuf,
    pool: &ThreadPool,
) -> Result<()> {
    let kerr = |e: KernelError| ModelError::Kernel(format!("{}: {e}", w.name));
    let k = Kernels::detected();
    let unsupported = || ModelError::UnsupportedType {
        name: w.name.clone(),
        ty: w.ty,
        op: "matmul",
    };
    let act_ty = hanlin_kernels::activation_type(w.ty).ok_or_else(unsupported)?;
    let act_row = hanlin_kernels::row_bytes(act_ty, w.cols).ok_or_else(unsupported)?;
    if buf.bytes.len() < act_row * n {
        buf.bytes.resize(act_row * n, 0);
    }
    let act = &mut buf.bytes[..act_row * n];
    k.quantize_row(act_ty, &x[..n * w.cols], act)
        .map_err(kerr)?;
    let wm = WeightMatrix::new(w.ty, w.bytes(file), w.rows, w.cols).map_err(kerr)?;
    k.matmul(pool, &wm, act, n, &mut out[..n * w.rows])
        .map_err(kerr)
}

/// Dequantizes row `r` of `w` (embedding lookup).
pub fn get_row(file: &[u8], w: &Weight, r: usize, out: &mut [f32]) -> Result<()> {
    hanlin_quant::dequantize_row(w.ty, w.row(file, r), &mut out[..w.cols])
        .map_err(|e| ModelError::Kernel(format!("{}: {e}", w.name)))
}

/// Dequantizes a whole (small) tensor to f32: norms and biases.
pub fn to_f32(file: &[u8], w: &Weight) -> Result<Vec<f32>> {
    let mut out = vec![0.0; w.rows * w.cols];
    for r in 0..w.rows {
        get_row(file, w, r, &mut out[r * w.cols..(r + 1) * w.cols])?;
    }
    Ok(out)
}

/// Whether the kernels can multiply this type.
pub fn supported(ty: GgmlType) -> bool {
    Kernels::detected().supports(ty)
}
