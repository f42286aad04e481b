//! Repacking weight matrices at load (see `hanlin_kernels::PackedMatrix`), on the model's
//! thread pool, releasing the file pages of each stretch of a matrix as soon as it is copied
//! (so resident memory stays near the file's size even while the LM head is being packed).

use std::sync::{Arc, Mutex, PoisonError};

use hanlin_gguf::GgmlType;
use hanlin_gguf::GgufFile;
use hanlin_kernels::{packs, Isa, Kernels, PackedMatrix, ThreadPool};

use crate::error::{ModelError, Result};
use crate::weights::{Weight, Weights};

/// Q5_0 packing keeps the row kernels' float order (same bits either way) and has a fast
/// kernel only for AVX-512 VNNI; elsewhere its file layout is faster.
fn worth_packing(ty: GgmlType) -> bool {
    ty != GgmlType::Q5_0 || Kernels::detected().isa() == Isa::Avx512Vnni
}

/// Repacks every matrix [`packs`] selects among the LM head and the layers' matrices. The
/// tied embedding's rows stay readable from the file for lookups.
pub(crate) fn pack_weights(
    file: &GgufFile,
    weights: &mut Weights,
    pool: &ThreadPool,
) -> Result<()> {
    let mut targets: Vec<&mut Weight> = std::iter::once(&mut weights.output)
        .chain(weights.layers.iter_mut().flat_map(|l| l.weights_mut()))
        .filter(|w| w.rows > 1 && packs(w.ty, w.rows) && worth_packing(w.ty))
        .collect();
    if targets.is_empty() {
        return Ok(());
    }
    let bytes = file.as_bytes();
    let results: Vec<Mutex<Option<Result<Option<PackedMatrix>>>>> =
        targets.iter().map(|_| Mutex::new(None)).collect();
    {
        let jobs: Vec<&Weight> = targets.iter().map(|w| &**w).collect();
        pool.for_each_index(jobs.len(), |i| {
            let w = jobs[i];
            let mut release = |off: usize, len: usize| file.release_range(w.start + off, len);
            let r =
                PackedMatrix::pack_releasing(w.ty, w.bytes(bytes), w.rows, w.cols, &mut release)
                    .map_err(|e| ModelError::Kernel(format!("{}: {e}", w.name)));
            *results[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
        });
    }
    for (w, r) in targets.iter_mut().zip(results) {
        let r = r.into_inner().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = r.transpose()?.flatten() {
            w.packed = Some(Arc::new(p));
        }
    }
    Ok(())
}
