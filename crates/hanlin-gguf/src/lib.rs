//! GGUF v2/v3 reader and writer over mmap.
//!
//! The reader validates everything up front (counts against file size, tensor bounds,
//! overlaps, alignment), so later code can slice tensor data without further checks.

mod cursor;
mod error;
mod reader;
mod types;
mod value;
mod writer;

pub use error::{GgufError, Result};
pub use reader::{
    align_up, GgufFile, TensorInfo, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS, MAX_TENSOR_NAME,
};
pub use types::{GgmlType, ALL_TYPES};
pub use value::{Value, ValueType};
pub use writer::GgufWriter;
