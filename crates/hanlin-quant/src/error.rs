//! Errors from the quantization entry points.

use hanlin_gguf::GgmlType;

/// What can go wrong when converting or multiplying quantized rows; every variant names the type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantError {
    /// The operation has no implementation for this type.
    #[error("{op} is not supported for tensor type {ty}")]
    Unsupported {
        /// The tensor type.
        ty: GgmlType,
        /// The operation that was asked for (`dequantize`, `quantize`, `vec_dot` …).
        op: &'static str,
    },
    /// The element count does not split into whole blocks.
    #[error("{ty}: {n} elements is not a multiple of the block size {block}")]
    NotBlockMultiple {
        /// The tensor type.
        ty: GgmlType,
        /// Element count asked for.
        n: usize,
        /// Elements per block of `ty`.
        block: usize,
    },
    /// A buffer has the wrong length for the element count.
    #[error("{ty}: {what} holds {actual} {unit}, expected {expected}")]
    Length {
        /// The tensor type the buffer was sized for.
        ty: GgmlType,
        /// Which buffer (`source`, `destination`, `weights`, `activations`).
        what: &'static str,
        /// Unit of the lengths (`bytes` or `floats`).
        unit: &'static str,
        /// Length required.
        expected: usize,
        /// Length given.
        actual: usize,
    },
}

/// Checks that a byte buffer has exactly `expected` bytes.
pub(crate) fn check_bytes(
    ty: GgmlType,
    what: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), QuantError> {
    if expected == actual {
        Ok(())
    } else {
        Err(QuantError::Length {
            ty,
            what,
            unit: "bytes",
            expected,
            actual,
        })
    }
}
