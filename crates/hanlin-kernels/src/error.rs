//! Errors of the public kernel entry points.

use hanlin_gguf::GgmlType;

/// Why a kernel call was refused; nothing is computed when one is returned.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// No dot kernel exists for this weight type.
    #[error("no dot kernel for weight type {0}")]
    UnsupportedWeight(GgmlType),
    /// No quantizer produces this activation type.
    #[error("no quantizer for activation type {0}")]
    UnsupportedActivation(GgmlType),
    /// The activation type does not pair with the weight type.
    #[error("weight type {weight} needs {expected} activations, got {got}")]
    ActivationMismatch {
        /// Weight type.
        weight: GgmlType,
        /// Activation type the weight type needs.
        expected: GgmlType,
        /// Activation type given.
        got: GgmlType,
    },
    /// A row length is not a whole number of blocks.
    #[error("{ty} rows of {n} elements are not a whole number of {block}-element blocks")]
    NotBlockMultiple {
        /// Type whose block size was violated.
        ty: GgmlType,
        /// Offending element count.
        n: usize,
        /// Block size of `ty`.
        block: usize,
    },
    /// A buffer has the wrong length.
    #[error("{what}: expected {expected} elements, got {got}")]
    Length {
        /// Which argument.
        what: &'static str,
        /// Required length.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// A size computation overflowed `usize`.
    #[error("{what}: size overflows usize")]
    Overflow {
        /// Which argument.
        what: &'static str,
    },
    /// The requested ISA is not available on this CPU.
    #[error("instruction set {0} is not available on this CPU")]
    IsaUnavailable(&'static str),
    /// Memory for repacked weights could not be mapped.
    #[error("cannot allocate {0}")]
    Alloc(String),
    /// The `HANLIN_ISA` override names no known ISA.
    #[error("unknown instruction set {0:?} (expected generic, avx2, avxvnni, avx512 or auto)")]
    UnknownIsa(String),
}
