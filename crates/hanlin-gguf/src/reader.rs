//! Parsing a GGUF file from bytes, defensively: every length is checked against what is left.

use std::collections::HashMap;
use std::path::Path;

use crate::cursor::Cursor;
use crate::error::{GgufError, Result};
use crate::types::GgmlType;
use crate::value::{Value, ValueType};

/// GGUF magic, "GGUF" little-endian.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment used when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml supports at most four dimensions.
pub const MAX_DIMS: u32 = 4;
/// The GGUF spec caps tensor names at 64 bytes (ggml stores them in a fixed buffer).
pub const MAX_TENSOR_NAME: usize = 64;
const ALIGNMENT_KEY: &str = "general.alignment";

/// One entry of the tensor index.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Tensor name (`blk.0.attn_q.weight` …).
    pub name: String,
    /// Shape in ggml order: `dims[0]` is the contiguous (row) dimension.
    pub dims: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Offset relative to the start of the data section.
    pub offset: u64,
    /// Absolute offset of the first byte in the file.
    pub start: u64,
    /// Size of the data in bytes.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Total number of elements.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Rows (product of all dims but the first) and row length.
    pub fn rows_cols(&self) -> (u64, u64) {
        let cols = self.dims.first().copied().unwrap_or(1);
        (self.dims.iter().skip(1).product(), cols)
    }
}

enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// An opened GGUF file: metadata, tensor index and the bytes behind them.
pub struct GgufFile {
    bytes: Bytes,
    version: u32,
    metadata: Vec<(String, Value)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("n_kv", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .field("len", &self.bytes.as_slice().len())
            .finish()
    }
}

impl GgufFile {
    /// Opens and memory-maps `path`, then validates header, metadata and tensor index.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |source| GgufError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            return Self::parse(Bytes::Owned(Vec::new()));
        }
        // SAFETY: the map is read-only; a file truncated by another process while mapped
        // would fault, which is the accepted contract of every mmap-based model loader.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::parse(Bytes::Mapped(map))
    }

    /// Parses a file held in memory (tests, fuzzing, downloads).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::parse(Bytes::Owned(bytes))
    }

    fn parse(bytes: Bytes) -> Result<Self> {
        let buf = bytes.as_slice();
        let len = buf.len() as u64;
        let mut r = Cursor::new(buf);
        let magic = r.magic()?;
        if magic != MAGIC {
            return Err(GgufError::BadMagic(magic));
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let n_tensors = r.u64("tensor count")?;
        let n_kv = r.u64("metadata count")?;
        // Each tensor info takes at least 8+4+8+4+8 bytes, each kv at least 8+4+1.
        r.check_count("tensor count", n_tensors, 32)?;
        r.check_count("metadata count", n_kv, 13)?;

        // The counts were bounded by the file size above, so these reservations are too.
        let mut metadata = Vec::with_capacity(n_kv as usize);
        let mut key_index = HashMap::with_capacity(n_kv as usize);
        for i in 0..n_kv {
            let key = r.string("metadata key")?;
            if key.is_empty() {
                return Err(GgufError::EmptyKey(i));
            }
            if key_index.contains_key(&key) {
                return Err(GgufError::DuplicateKey(key));
            }
            let value = read_kv_value(&mut r, &key)?;
            key_index.insert(key.clone(), metadata.len());
            metadata.push((key, value));
        }

        let alignment = match key_index.get(ALIGNMENT_KEY).map(|&i| &metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            // The spec and llama.cpp require exactly u32; other widths would be misread there.
            Some(&Value::U32(a)) if a.is_power_of_two() => u64::from(a),
            Some(&Value::U32(a)) => return Err(GgufError::BadAlignment(a.into())),
            Some(v) => {
                return Err(GgufError::WrongValueType {
                    key: ALIGNMENT_KEY.into(),
                    expected: "a u32",
                    found: format!("{:?}", v.value_type()),
                })
            }
        };

        let mut infos = Vec::with_capacity(n_tensors as usize);
        let mut tensor_index = HashMap::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let info = read_tensor_info(&mut r, i)?;
            if tensor_index
                .insert(info.name.clone(), infos.len())
                .is_some()
            {
                return Err(GgufError::DuplicateTensor(info.name));
            }
            infos.push(info);
        }

        let data_offset = align_up(r.pos() as u64, alignment);
        let mut tensors = Vec::with_capacity(infos.len());
        for RawInfo {
            name,
            dims,
            ggml_type,
            offset,
            n_bytes,
        } in infos
        {
            if offset % alignment != 0 {
                return Err(GgufError::MisalignedTensor {
                    name,
                    offset,
                    alignment,
                });
            }
            let start = data_offset.checked_add(offset);
            let end = start.and_then(|s| s.checked_add(n_bytes));
            match (start, end) {
                (Some(start), Some(end)) if end <= len => {
                    tensors.push(TensorInfo {
                        name,
                        dims,
                        ggml_type,
                        offset,
                        start,
                        n_bytes,
                    });
                }
                _ => {
                    return Err(GgufError::TensorOutOfBounds {
                        name,
                        start: start.unwrap_or(u64::MAX),
                        end: end.unwrap_or(u64::MAX),
                        len,
                    })
                }
            }
        }
        // Zero-size tensors cannot exist (dims are non-zero), so touching ranges never overlap.
        let mut order: Vec<usize> = (0..tensors.len()).collect();
        order.sort_by_key(|&i| tensors[i].start);
        for w in order.windows(2) {
            let (a, b) = (&tensors[w[0]], &tensors[w[1]]);
            if a.start + a.n_bytes > b.start {
                return Err(GgufError::OverlappingTensors {
                    a: a.name.clone(),
                    b: b.name.clone(),
                });
            }
        }

        Ok(GgufFile {
            bytes,
            version,
            metadata,
            key_index,
            tensors,
            tensor_index,
            alignment,
            data_offset,
        })
    }

    /// GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Data-section alignment.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute offset where tensor data begins.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Size of the whole file in bytes.
    pub fn file_len(&self) -> u64 {
        self.bytes.as_slice().len() as u64
    }

    /// Frees metadata arrays of more than `min_len` elements (vocabulary, scores, merges) once
    /// their consumers have copied what they need: parsed, they cost tens of MB next to a model
    /// that is otherwise mmap'd. The keys stay, with empty arrays of the same element type.
    /// Returns how many arrays were released.
    pub fn release_large_arrays(&mut self, min_len: usize) -> usize {
        let mut n = 0;
        for (_, v) in &mut self.metadata {
            if let Value::Array(_, items) = v {
                if items.len() > min_len {
                    *items = Vec::new();
                    n += 1;
                }
            }
        }
        n
    }

    /// Tells the kernel this process no longer needs bytes `start..start + len` resident (a
    /// tensor copied elsewhere, e.g. repacked): their pages leave this process's resident set,
    /// and a later read faults them back in from the page cache, unchanged. Only whole pages
    /// inside the range are released; a no-op for files held in memory.
    pub fn release_range(&self, start: usize, len: usize) {
        let Bytes::Mapped(map) = &self.bytes else {
            return;
        };
        let page = 4096;
        let base = map.as_ptr() as usize;
        let from = (base + start).next_multiple_of(page) - base;
        let to = (base + start.saturating_add(len)).min(base + map.len()) / page * page;
        if to <= base + from {
            return;
        }
        // SAFETY: the map is a read-only file mapping, so dropping its pages discards nothing:
        // later reads see the same file bytes. The range is inside the map.
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, to - base - from)
        };
    }

    /// All metadata in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// One metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.key_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// A string value; `Ok(None)` if absent, an error naming the key if of another type.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>> {
        self.typed(key, "a string", Value::as_str)
    }

    /// An unsigned integer value of any width.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>> {
        self.typed(key, "an unsigned integer", Value::as_u64)
    }

    /// A float value (integers accepted).
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>> {
        self.typed(key, "a number", Value::as_f64)
    }

    /// A boolean value.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        self.typed(key, "a boolean", Value::as_bool)
    }

    /// An array value.
    pub fn get_array(&self, key: &str) -> Result<Option<&[Value]>> {
        self.typed(key, "an array", Value::as_array)
    }

    fn typed<'a, T>(
        &'a self,
        key: &str,
        expected: &'static str,
        f: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => f(v).map(Some).ok_or_else(|| GgufError::WrongValueType {
                key: key.to_string(),
                expected,
                found: format!("{:?}", v.value_type()),
            }),
        }
    }

    /// The tensor index in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// A tensor by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// A tensor by name, or an error naming it.
    pub fn require_tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor(name)
            .ok_or_else(|| GgufError::MissingTensor(name.to_string()))
    }

    /// The raw bytes of a tensor (bounds were checked when the file was opened).
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        // `info` may be hand-made rather than from this file, so clamp instead of trusting it.
        let buf = self.bytes.as_slice();
        let clamp = |x: u64| usize::try_from(x).unwrap_or(usize::MAX).min(buf.len());
        let start = clamp(info.start);
        let end = clamp(info.start.saturating_add(info.n_bytes)).max(start);
        &buf[start..end]
    }

    /// The whole file's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }
}

/// Rounds `x` up to a multiple of `align` (a power of two).
pub fn align_up(x: u64, align: u64) -> u64 {
    x.div_ceil(align).saturating_mul(align)
}

/// The tensor-info fields as read, before the data offset is known.
struct RawInfo {
    name: String,
    dims: Vec<u64>,
    ggml_type: GgmlType,
    offset: u64,
    n_bytes: u64,
}

/// Adds the key to a truncation error, which the cursor reports without context.
fn read_kv_value(r: &mut Cursor<'_>, key: &str) -> Result<Value> {
    let result = r.u32("metadata value type").and_then(|tag| {
        let ty = ValueType::from_id(tag).ok_or_else(|| GgufError::BadValueType {
            key: key.to_string(),
            id: tag,
        })?;
        r.value(key, ty, 0)
    });
    result.map_err(|e| match e {
        GgufError::Truncated { what, offset, len } => GgufError::Truncated {
            what: format!("{what} of key {key:?}"),
            offset,
            len,
        },
        e => e,
    })
}

/// Reads tensor info `index` and checks everything that does not depend on the data offset:
/// name, shape, type, and that the byte size is representable.
fn read_tensor_info(r: &mut Cursor<'_>, index: u64) -> Result<RawInfo> {
    let name = r.string("tensor name")?;
    if name.len() > MAX_TENSOR_NAME {
        return Err(GgufError::TensorNameTooLong {
            len: name.len(),
            name,
        });
    }
    let in_tensor = |e: GgufError| match e {
        GgufError::Truncated { what, offset, len } => GgufError::Truncated {
            what: format!("{what} of tensor #{index} {name:?}"),
            offset,
            len,
        },
        e => e,
    };
    let n_dims = r.u32("tensor dimension count").map_err(in_tensor)?;
    if n_dims == 0 || n_dims > MAX_DIMS {
        return Err(GgufError::BadShape {
            name: name.clone(),
            dims: vec![],
            why: format!("{n_dims} dimensions (ggml allows 1 to {MAX_DIMS})"),
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        dims.push(r.u64("tensor dimension").map_err(in_tensor)?);
    }
    let type_id = r.u32("tensor type").map_err(in_tensor)?;
    let offset = r.u64("tensor offset").map_err(in_tensor)?;

    let bad = |why: String| GgufError::BadShape {
        name: name.clone(),
        dims: dims.clone(),
        why,
    };
    if dims.contains(&0) {
        return Err(bad("a dimension is zero".into()));
    }
    // ggml counts elements in an i64.
    let n_el = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| i64::try_from(n).is_ok())
        .ok_or_else(|| bad("element count does not fit in an i64".into()))?;
    let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| GgufError::BadTensorType {
        name: name.clone(),
        id: type_id,
    })?;
    if dims[0] % ggml_type.block_size() as u64 != 0 {
        return Err(bad(format!(
            "row length {} is not a multiple of the {} block size {}",
            dims[0],
            ggml_type,
            ggml_type.block_size()
        )));
    }
    let n_bytes = ggml_type
        .bytes_for(n_el)
        .ok_or_else(|| bad("byte size overflows".into()))?;
    Ok(RawInfo {
        name,
        dims,
        ggml_type,
        offset,
        n_bytes,
    })
}
