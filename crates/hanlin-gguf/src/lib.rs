//! GGUF v2/v3 reader and writer over mmap.
//!
//! The reader validates everything up front, so later code can slice tensor data without
//! further checks. It enforces what the GGUF spec and llama.cpp's `gguf.cpp` enforce (magic,
//! version 2 or 3, non-empty unique keys, `general.alignment` a u32 power of two, unique
//! tensor names of at most 64 bytes, 1–4 non-zero dims whose element count fits an i64,
//! known types, rows of whole blocks, aligned offsets, data inside the file) plus no two
//! tensors overlapping; every count and length is checked against the bytes left before
//! anything is allocated. Like gguf-py it accepts nested arrays (up to 4 deep) and tensors
//! in any order; invalid UTF-8 in strings is replaced, not rejected.
//!
//! The writer lays files out exactly as gguf-py's `GGUFWriter` does (byte-identical for the
//! same input; see `tests/gguf_py.rs`).

mod cursor;
mod error;
mod reader;
mod summary;
mod types;
mod value;
mod writer;

pub use error::{GgufError, Result};
pub use reader::{
    align_up, GgufFile, TensorInfo, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS, MAX_TENSOR_NAME,
};
pub use summary::{dominant_type, format_params, ftype_name, quantization_label};
pub use types::{GgmlType, ALL_TYPES};
pub use value::{Value, ValueType};
pub use writer::GgufWriter;
