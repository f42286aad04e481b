//! Writing GGUF files (tests, quantization, conversion).

use std::io::Write;

use crate::error::{GgufError, Result};
use crate::reader::{align_up, DEFAULT_ALIGNMENT, MAX_DIMS};
use crate::types::GgmlType;
use crate::value::{Value, ValueType};

/// Builds a GGUF file in memory and writes it out in one pass.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    version: u32,
    alignment: u64,
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
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Writes version 2 instead of 3 (same layout; kept for compatibility tests).
    pub fn with_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Sets `general.alignment` (must be a power of two).
    pub fn with_alignment(mut self, alignment: u64) -> Result<Self> {
        if alignment == 0 || !alignment.is_power_of_two() {
            return Err(GgufError::BadAlignment(alignment));
        }
        self.alignment = alignment;
        self.set("general.alignment", Value::U32(alignment as u32));
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
        if dims.is_empty() || dims.len() > MAX_DIMS as usize || dims.contains(&0) {
            return Err(GgufError::InvalidInput(format!("tensor {name:?}: bad dims {dims:?}")));
        }
        let n: u64 = dims.iter().product();
        let expect = ggml_type.bytes_for(n).ok_or_else(|| {
            GgufError::InvalidInput(format!("tensor {name:?}: {n} elements is not whole {ggml_type} blocks"))
        })?;
        if expect != data.len() as u64 {
            return Err(GgufError::InvalidInput(format!(
                "tensor {name:?}: {} bytes given, {expect} expected",
                data.len()
            )));
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

    /// Serialises to a writer.
    pub fn write_to(&self, w: &mut impl Write) -> Result<()> {
        let mut head = Vec::new();
        head.extend_from_slice(b"GGUF");
        head.extend_from_slice(&self.version.to_le_bytes());
        head.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        head.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_str(&mut head, k);
            head.extend_from_slice(&(v.value_type() as u32).to_le_bytes());
            put_value(&mut head, v)?;
        }
        let mut offset = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            put_str(&mut head, &t.name);
            head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                head.extend_from_slice(&d.to_le_bytes());
            }
            head.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            head.extend_from_slice(&offset.to_le_bytes());
            offsets.push(offset);
            offset = align_up(offset + t.data.len() as u64, self.alignment);
        }
        let data_start = align_up(head.len() as u64, self.alignment);
        head.resize(data_start as usize, 0);
        w.write_all(&head)?;
        let mut pos = 0u64;
        for (t, off) in self.tensors.iter().zip(offsets) {
            if off > pos {
                w.write_all(&vec![0u8; (off - pos) as usize])?;
                pos = off;
            }
            w.write_all(&t.data)?;
            pos += t.data.len() as u64;
        }
        Ok(())
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) -> Result<()> {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
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
            out.extend_from_slice(&(*ty as u32).to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for it in items {
                if it.value_type() != *ty {
                    return Err(GgufError::InvalidInput(format!(
                        "array of {ty:?} holds a {:?}",
                        it.value_type()
                    )));
                }
                if *ty == ValueType::Array {
                    return Err(GgufError::InvalidInput("nested arrays are not written".into()));
                }
                put_value(out, it)?;
            }
        }
    }
    Ok(())
}
