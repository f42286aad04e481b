//! Parsing a GGUF file from bytes, defensively: every length is checked against what is left.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{GgufError, Result};
use crate::types::GgmlType;
use crate::value::{Value, ValueType};

/// GGUF magic, "GGUF" little-endian.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment used when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml supports at most four dimensions.
pub const MAX_DIMS: u32 = 4;
const MAX_ARRAY_DEPTH: u32 = 4;

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
        let io = |source| GgufError::Io { path: path.display().to_string(), source };
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
        let mut r = Cursor { buf, pos: 0 };
        let magic = r.array4("magic")?;
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

        let mut metadata = Vec::with_capacity(n_kv as usize);
        let mut key_index = HashMap::with_capacity(n_kv as usize);
        for _ in 0..n_kv {
            let key = r.string("metadata key")?;
            let tag = r.u32("metadata value type")?;
            let ty = ValueType::from_id(tag)
                .ok_or_else(|| GgufError::BadValueType { key: key.clone(), id: tag })?;
            let value = r.value(&key, ty, 0)?;
            if key_index.insert(key.clone(), metadata.len()).is_some() {
                return Err(GgufError::DuplicateKey(key));
            }
            metadata.push((key, value));
        }

        let alignment = match key_index.get("general.alignment").map(|&i| &metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(v) => {
                let a = v.as_u64().ok_or_else(|| GgufError::WrongValueType {
                    key: "general.alignment".into(),
                    expected: "an unsigned integer",
                    found: format!("{:?}", v.value_type()),
                })?;
                if a == 0 || !a.is_power_of_two() || a > 1 << 20 {
                    return Err(GgufError::BadAlignment(a));
                }
                a
            }
        };

        let mut infos = Vec::with_capacity(n_tensors as usize);
        for _ in 0..n_tensors {
            let name = r.string("tensor name")?;
            let n_dims = r.u32("tensor dimension count")?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(GgufError::BadShape {
                    name,
                    dims: vec![],
                    why: format!("{n_dims} dimensions (ggml allows 1 to {MAX_DIMS})"),
                });
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(r.u64("tensor dimension")?);
            }
            let type_id = r.u32("tensor type")?;
            let offset = r.u64("tensor offset")?;
            let ggml_type = GgmlType::from_id(type_id)
                .ok_or_else(|| GgufError::BadTensorType { name: name.clone(), id: type_id })?;
            infos.push((name, dims, ggml_type, offset));
        }

        let len = buf.len() as u64;
        let data_offset = align_up(r.pos as u64, alignment);
        let mut tensors = Vec::with_capacity(infos.len());
        let mut tensor_index = HashMap::with_capacity(infos.len());
        for (name, dims, ggml_type, offset) in infos {
            let bad = |why: String| GgufError::BadShape {
                name: name.clone(),
                dims: dims.clone(),
                why,
            };
            if dims.contains(&0) {
                return Err(bad("a dimension is zero".into()));
            }
            let n_el = dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .filter(|&n| n <= len.saturating_mul(8).max(1 << 20))
                .ok_or_else(|| bad("element count overflows or exceeds what the file holds".into()))?;
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
            if offset % alignment != 0 {
                return Err(GgufError::MisalignedTensor { name, offset, alignment });
            }
            let start = data_offset.checked_add(offset);
            let end = start.and_then(|s| s.checked_add(n_bytes));
            match (start, end) {
                (Some(start), Some(end)) if end <= len => {
                    if tensor_index.insert(name.clone(), tensors.len()).is_some() {
                        return Err(GgufError::DuplicateTensor(name));
                    }
                    tensors.push(TensorInfo { name, dims, ggml_type, offset, start, n_bytes });
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
        let mut order: Vec<usize> = (0..tensors.len()).collect();
        order.sort_by_key(|&i| tensors[i].start);
        for w in order.windows(2) {
            let (a, b) = (&tensors[w[0]], &tensors[w[1]]);
            if a.start + a.n_bytes > b.start {
                return Err(GgufError::OverlappingTensors { a: a.name.clone(), b: b.name.clone() });
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
        self.tensor(name).ok_or_else(|| GgufError::MissingTensor(name.to_string()))
    }

    /// The raw bytes of a tensor (bounds were checked when the file was opened).
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        let buf = self.bytes.as_slice();
        let start = usize::try_from(info.start).unwrap_or(usize::MAX).min(buf.len());
        let end = usize::try_from(info.start + info.n_bytes).unwrap_or(usize::MAX).min(buf.len());
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

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(GgufError::Truncated {
                what: what.to_string(),
                offset: self.pos as u64,
                len: self.buf.len() as u64,
            }),
        }
    }

    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn check_count(&self, what: &str, n: u64, min_each: u64) -> Result<()> {
        if n.checked_mul(min_each).is_none_or(|b| b > self.remaining()) {
            return Err(GgufError::AbsurdCount {
                what: what.to_string(),
                value: n,
                len: self.buf.len() as u64,
            });
        }
        Ok(())
    }

    fn array4(&mut self, what: &str) -> Result<[u8; 4]> {
        let s = self.take(4, what)?;
        Ok([s[0], s[1], s[2], s[3]])
    }

    fn array8(&mut self, what: &str) -> Result<[u8; 8]> {
        let s = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array4(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array8(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)?;
        if n > self.remaining() {
            return Err(GgufError::AbsurdCount {
                what: format!("{what} length"),
                value: n,
                len: self.buf.len() as u64,
            });
        }
        let s = self.take(n as usize, what)?;
        Ok(match std::str::from_utf8(s) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(s).into_owned(),
        })
    }

    fn value(&mut self, key: &str, ty: ValueType, depth: u32) -> Result<Value> {
        let what = || format!("value of {key:?}");
        Ok(match ty {
            ValueType::U8 => Value::U8(self.take(1, &what())?[0]),
            ValueType::I8 => Value::I8(self.take(1, &what())?[0] as i8),
            ValueType::Bool => Value::Bool(self.take(1, &what())?[0] != 0),
            ValueType::U16 => {
                let s = self.take(2, &what())?;
                Value::U16(u16::from_le_bytes([s[0], s[1]]))
            }
            ValueType::I16 => {
                let s = self.take(2, &what())?;
                Value::I16(i16::from_le_bytes([s[0], s[1]]))
            }
            ValueType::U32 => Value::U32(self.u32(&what())?),
            ValueType::I32 => Value::I32(self.u32(&what())? as i32),
            ValueType::F32 => Value::F32(f32::from_bits(self.u32(&what())?)),
            ValueType::U64 => Value::U64(self.u64(&what())?),
            ValueType::I64 => Value::I64(self.u64(&what())? as i64),
            ValueType::F64 => Value::F64(f64::from_bits(self.u64(&what())?)),
            ValueType::String => Value::String(self.string(&what())?),
            ValueType::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(GgufError::NestingTooDeep(key.to_string()));
                }
                let tag = self.u32(&what())?;
                let elem = ValueType::from_id(tag)
                    .ok_or_else(|| GgufError::BadValueType { key: key.to_string(), id: tag })?;
                let n = self.u64(&what())?;
                self.check_count(&format!("array length of {key:?}"), n, elem.min_size() as u64)?;
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(key, elem, depth + 1)?);
                }
                Value::Array(elem, items)
            }
        })
    }
}
