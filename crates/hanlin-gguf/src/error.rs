//! Errors from reading and writing GGUF files.

/// Everything that can be wrong with a GGUF file; each variant names what and where.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or mapped.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Writing failed.
    #[error("write failed: {0}")]
    Write(#[from] std::io::Error),
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: bad magic {0:02x?} (expected \"GGUF\")")]
    BadMagic([u8; 4]),
    /// A version this reader does not handle (v1, v0, newer than v3, or a byte-swapped file).
    #[error("unsupported GGUF version {0}: {hint}", hint = version_hint(*.0))]
    UnsupportedVersion(u32),
    /// The file ends before a structure it declares.
    #[error("file truncated at byte {offset} while reading {what} (file is {len} bytes)")]
    Truncated {
        /// What was being read.
        what: String,
        /// Where.
        offset: u64,
        /// File length.
        len: u64,
    },
    /// A count or length that cannot be right for a file of this size.
    #[error("{what} = {value} is impossible for a file of {len} bytes")]
    AbsurdCount {
        /// What was counted.
        what: String,
        /// The declared value.
        value: u64,
        /// File length.
        len: u64,
    },
    /// An unknown metadata value type tag.
    #[error("metadata key {key:?}: unknown value type {id}")]
    BadValueType {
        /// The key being read.
        key: String,
        /// The raw tag.
        id: u32,
    },
    /// Arrays nested deeper than any real file uses.
    #[error("metadata key {0:?}: arrays nested too deeply")]
    NestingTooDeep(String),
    /// A metadata key of length zero (the spec and llama.cpp require a name).
    #[error("metadata entry #{0} has an empty key")]
    EmptyKey(u64),
    /// A key appears twice.
    #[error("metadata key {0:?} appears twice")]
    DuplicateKey(String),
    /// A metadata value has the wrong type for its well-known key.
    #[error("metadata key {key:?}: expected {expected}, found {found}")]
    WrongValueType {
        /// The key.
        key: String,
        /// What was expected.
        expected: &'static str,
        /// What the file has.
        found: String,
    },
    /// `general.alignment` is zero, not a power of two, or does not fit the u32 the spec requires.
    #[error("general.alignment = {0} is not a power of two that fits in a u32")]
    BadAlignment(u64),
    /// A tensor with a type id ggml does not define.
    #[error("tensor {name:?}: unknown type id {id}")]
    BadTensorType {
        /// Tensor name.
        name: String,
        /// Raw id.
        id: u32,
    },
    /// A tensor's shape is impossible.
    #[error("tensor {name:?}: bad shape {dims:?}: {why}")]
    BadShape {
        /// Tensor name.
        name: String,
        /// The declared dims.
        dims: Vec<u64>,
        /// Why it is rejected.
        why: String,
    },
    /// A tensor name longer than the 64 bytes the GGUF spec allows.
    #[error("tensor name {name:?} is {len} bytes long (GGUF allows at most {max})", max = crate::reader::MAX_TENSOR_NAME)]
    TensorNameTooLong {
        /// Tensor name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A tensor name appears twice.
    #[error("tensor {0:?} appears twice")]
    DuplicateTensor(String),
    /// A tensor offset not aligned to the file alignment.
    #[error("tensor {name:?}: offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        /// Tensor name.
        name: String,
        /// Offset relative to the data section.
        offset: u64,
        /// File alignment.
        alignment: u64,
    },
    /// A tensor's data reaches past the end of the file.
    #[error("tensor {name:?}: data [{start}, {end}) lies past the end of the file ({len} bytes)")]
    TensorOutOfBounds {
        /// Tensor name.
        name: String,
        /// Absolute start.
        start: u64,
        /// Absolute end.
        end: u64,
        /// File length.
        len: u64,
    },
    /// Two tensors share bytes.
    #[error("tensors {a:?} and {b:?} overlap")]
    OverlappingTensors {
        /// First tensor.
        a: String,
        /// Second tensor.
        b: String,
    },
    /// A tensor was asked for by name and is absent.
    #[error("tensor {0:?} not found")]
    MissingTensor(String),
    /// Writer misuse.
    #[error("invalid writer input: {0}")]
    InvalidInput(String),
}

/// Says why a version number is rejected; byte-swapped files show up as versions like 0x03000000.
fn version_hint(v: u32) -> &'static str {
    match v {
        0 => "no GGUF version is 0",
        1 => "GGUF v1 files (before August 2023) are no longer supported; reconvert the model",
        _ if v & 0xffff == 0 => {
            "the file is probably big-endian, which this reader does not support"
        }
        _ => "this reader supports versions 2 and 3",
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, GgufError>;
