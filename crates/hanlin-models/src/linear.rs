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
    quantize_rows(k, pool, act_ty, &x[..n * w.cols], w.cols, act, act_row).map_err(kerr)?;
    if let Some(p) = &w.packed {
        return k
            .matmul_packed(pool, p, act, n, &mut out[..n * w.rows])
            .map_err(kerr);
    }
    let wm = WeightMatrix::new(w.ty, w.bytes(file), w.rows, w.cols).map_err(kerr)?;
    k.matmul(pool, &wm, act, n, &mut out[..n * w.rows])
        .map_err(kerr)
}

/// Rows per work item when quantizing or activating a batch on the pool.
const ROWS_PER_ITEM: usize = 16;

/// Disjoint chunks of one buffer handed to pool workers.
#[derive(Clone, Copy)]
struct Chunks<T>(*mut T);
// SAFETY: every work item touches only its own chunk (`ROWS_PER_ITEM` rows) of the buffer, and
// the pool joins all workers before the borrow the pointer came from ends.
unsafe impl<T> Send for Chunks<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Chunks<T> {}

impl<T> Chunks<T> {
    /// Elements `from..from + len`.
    ///
    /// # Safety
    /// The range must lie inside the buffer, and no other live slice may overlap it.
    unsafe fn slice<'a>(self, from: usize, len: usize) -> &'a mut [T] {
        // SAFETY: forwarded caller contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(from), len) }
    }
}

/// Quantizes `x` (rows of `cols`) into `act` (rows of `act_row` bytes), rows split over the
/// pool for batches; each row's bytes are the same however it is split.
fn quantize_rows(
    k: &Kernels,
    pool: &ThreadPool,
    act_ty: GgmlType,
    x: &[f32],
    cols: usize,
    act: &mut [u8],
    act_row: usize,
) -> std::result::Result<(), KernelError> {
    let n = x.len() / cols.max(1);
    if n < 2 * ROWS_PER_ITEM || pool.threads() == 1 {
        return k.quantize_row(act_ty, x, act);
    }
    let dst = Chunks(act.as_mut_ptr());
    let err = std::sync::Mutex::new(None);
    pool.for_each_index(n.div_ceil(ROWS_PER_ITEM), |i| {
        let (r0, r1) = (i * ROWS_PER_ITEM, ((i + 1) * ROWS_PER_ITEM).min(n));
        // SAFETY: rows r0..r1 of `act` (length n * act_row) belong to item i alone.
        let out = unsafe { dst.slice(r0 * act_row, (r1 - r0) * act_row) };
        if let Err(e) = k.quantize_row(act_ty, &x[r0 * cols..r1 * cols], out) {
            *err.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
        }
    });
    match err
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `gate[i] = act(gate[i]) * up[i]` (`f`), element-wise, split over the pool for batches of
/// `n` rows.
pub fn glu_rows(
    pool: &ThreadPool,
    gate: &mut [f32],
    up: &[f32],
    n: usize,
    f: fn(&mut [f32], &[f32]),
) {
    let cols = gate.len() / n.max(1);
    if n < 2 * ROWS_PER_ITEM || pool.threads() == 1 {
        f(gate, up);
        return;
    }
    let g = Chunks(gate.as_mut_ptr());
    pool.for_each_index(n.div_ceil(ROWS_PER_ITEM), |i| {
        let (r0, r1) = (i * ROWS_PER_ITEM, ((i + 1) * ROWS_PER_ITEM).min(n));
        // SAFETY: rows r0..r1 of `gate` (n rows of `cols`) belong to item i alone.
        let out = unsafe { g.slice(r0 * cols, (r1 - r0) * cols) };
        f(out, &up[r0 * cols..r1 * cols]);
    });
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
