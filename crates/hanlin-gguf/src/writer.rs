//! Writing GGUF files (tests, quantization, conversion).
//!
//! The layout matches gguf-py's `GGUFWriter`: header, metadata, tensor infos, padding to the
//! alignment, then each tensor's data padded to the alignment (the last one too, which
//! llama.cpp's non-mmap loader reads).

use std::io::Write;

use crate::cursor::MAX_ARRAY_DEPTH;
use crate::error::{GgufError, Result};
use crate::reader::{align_up, DEFAULT_ALIGNMENT, MAX_DIMS, MAX_TENSOR_NAME};
use crate::types::GgmlType;
use crate::value::Value;

const ALIGNMENT_KEY: &str = "general.alignment";

/// Builds a GGUF file in memory and writes it out in one pass.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    version: u32,
    metadata: Vec<(String, Value)>,
    tensors: Vec<PendingTensor>,
}

#[derive(Debug, Clone)]
struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ggml_type: GgmlType,
    data: Vec<u8>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufWriter {
    /// A GGUF v3 writer with the default alignment.
    pub fn new() -> Self {
        GgufWriter {
            version: 3,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Writes version 2 instead of 3 (same layout; kept for compatibility tests). Any other
    /// version makes [`write_to`](Self::write_to) fail.
    pub fn with_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Sets `general.alignment` (a power of two that fits the u32 the spec stores it in).
    pub fn with_alignment(mut self, alignment: u64) -> Result<Self> {
        let a = u32::try_from(alignment)
            .ok()
            .filter(|a| a.is_power_of_two())
            .ok_or(GgufError::BadAlignment(alignment))?;
        self.set(ALIGNMENT_KEY, Value::U32(a));
        Ok(self)
    }

    /// Sets a metadata key (replacing an earlier value of the same key).
    pub fn set(&mut self, key: &str, value: Value) -> &mut Self {
        if let Some(slot) = self.metadata.iter_mut().find(|(k, _)| k == key) {
            slot.1 = value;
        } else {
            self.metadata.push((key.to_string(), value));
        }
        self
    }

    /// Adds a tensor; `dims` in ggml order (`dims[0]` is the row length).
    pub fn add_tensor(
        &mut self,
        name: &str,
        dims: &[u64],
        ggml_type: GgmlType,
        data: Vec<u8>,
    ) -> Result<&mut Self> {
        let invalid = |why: String| Err(GgufError::InvalidInput(format!("tensor {name:?}: {why}")));
        if name.len() > MAX_TENSOR_NAME {
            return Err(GgufError::TensorNameTooLong {
                name: name.to_string(),
                len: name.len(),
            });
        }
        if dims.is_empty() || dims.len() > MAX_DIMS as usize || dims.contains(&0) {
            return invalid(format!(
                "bad dims {dims:?} (1 to {MAX_DIMS} non-zero dimensions)"
            ));
        }
        let Some(n) = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)) else {
            return invalid(format!("element count of {dims:?} overflows"));
        };
        if !dims[0].is_multiple_of(ggml_type.block_size() as u64) {
            return invalid(format!(
                "row length {} is not a multiple of the {ggml_type} block size {}",
                dims[0],
                ggml_type.block_size()
            ));
        }
        let Some(expect) = ggml_type.bytes_for(n) else {
            return invalid(format!("byte size of {n} {ggml_type} elements overflows"));
        };
        if expect != data.len() as u64 {
            return invalid(format!("{} bytes given, {expect} expected", data.len()));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(GgufError::DuplicateTensor(name.to_string()));
        }
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            ggml_type,
            data,
        });
        Ok(self)
    }

    /// Serialises to a byte vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }

    /// The alignment the file will declare; the metadata value wins so that a `set` of
    /// `general.alignment` cannot make the layout disagree with what readers will use.
    fn alignment(&self) -> Result<u64> {
        match self.metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY) {
            None => Ok(DEFAULT_ALIGNMENT),
            Some((_, Value::U32(a))) if a.is_power_of_two() => Ok(u64::from(*a)),
            Some((_, Value::U32(a))) => Err(GgufError::BadAlignment(u64::from(*a))),
            Some((_, v)) => Err(GgufError::WrongValueType {
                key: ALIGNMENT_KEY.into(),
                expected: "a u32",
                found: format!("{:?}", v.value_type()),
            }),
        }
    }

    /// Serialises to a writer.
    pub fn write_to(&self, w: &mut impl Write) -> Result<()> {
        if !(2..=3).contains(&self.version) {
            return Err(GgufError::InvalidInput(format!(
                "GGUF version {} cannot be written (use 2 or 3)",
                self.version
            )));
        }
        let alignment = self.alignment()?;
        let mut head = Vec::new();
        head.extend_from_slice(b"GGUF");
        head.extend_from_slice(&self.version.to_le_bytes());
        head.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        head.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            if k.is_empty() {
                return Err(GgufError::InvalidInput("a metadata key is empty".into()));
            }
            put_str(&mut head, k);
            head.extend_from_slice(&(v.value_type() as u32).to_le_bytes());
            put_value(&mut head, k, v, 0)?;
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            put_str(&mut head, &t.name);
            head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                head.extend_from_slice(&d.to_le_bytes());
            }
            head.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            head.extend_from_slice(&offset.to_le_bytes());
            offset = align_up(offset + t.data.len() as u64, alignment);
        }
        w.write_all(&head)?;
        let head_len = head.len() as u64;
        write_zeros(w, align_up(head_len, alignment) - head_len)?;
        for t in &self.tensors {
            w.write_all(&t.data)?;
            let len = t.data.len() as u64;
            write_zeros(w, align_up(len, alignment) - len)?;
        }
        Ok(())
    }
}

/// Padding from a small buffer, so a large (legal) alignment costs no large allocation.
fn write_zeros(w: &mut impl Write, mut n: u64) -> Result<()> {
    const ZEROS: [u8; 4096] = [0; 4096];
    while n > 0 {
        let k = n.min(ZEROS.len() as u64);
        w.write_all(&ZEROS[..k as usize])?;
        n -= k;
    }
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends `v` without its type tag; `depth` counts enclosing arrays, bounded like the reader.
fn put_value(out: &mut Vec<u8>, key: &str, v: &Value, depth: u32) -> Result<()> {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::String(s) => put_str(out, s),
        Value::Array(ty, items) => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(GgufError::NestingTooDeep(key.to_string()));
            }
            out.extend_from_slice(&(*ty as u32).to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for it in items {
                if it.value_type() != *ty {
                    return Err(GgufError::InvalidInput(format!(
                        "metadata key {key:?}: array of {ty:?} holds a {:?}",
                        it.value_type()
                    )));
                }
                put_value(out, key, it, depth + 1)?;
            }
        }
    }
    Ok(())
}
