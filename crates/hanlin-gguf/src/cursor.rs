//! A bounds-checked little-endian reader over the file's bytes.
//!
//! Every length read from the file is compared with what is left before anything is
//! allocated, so a hostile count cannot make the reader reserve more memory than a small
//! multiple of the file size.

use crate::error::{GgufError, Result};
use crate::value::{Value, ValueType};

/// Arrays of arrays are legal GGUF (gguf-py writes them, llama.cpp refuses them); real files
/// never nest, and a bound keeps recursion shallow on hostile input.
pub(crate) const MAX_ARRAY_DEPTH: u32 = 4;

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    fn len(&self) -> u64 {
        self.buf.len() as u64
    }

    fn truncated(&self, what: &str) -> GgufError {
        GgufError::Truncated {
            what: what.to_string(),
            offset: self.pos as u64,
            len: self.len(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.truncated(what)),
        }
    }

    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    /// Rejects a count of items that cannot fit in what is left, each taking `min_each` bytes.
    pub(crate) fn check_count(&self, what: &str, n: u64, min_each: u64) -> Result<()> {
        if n.checked_mul(min_each).is_none_or(|b| b > self.remaining()) {
            return Err(GgufError::AbsurdCount {
                what: what.to_string(),
                value: n,
                len: self.len(),
            });
        }
        Ok(())
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn magic(&mut self) -> Result<[u8; 4]> {
        self.array("magic")
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length-prefixed string. Invalid UTF-8 is replaced rather than rejected: llama.cpp
    /// accepts any bytes, and refusing a whole model over one odd vocab entry helps nobody.
    pub(crate) fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)?;
        if n > self.remaining() {
            return Err(GgufError::AbsurdCount {
                what: format!("{what} length"),
                value: n,
                len: self.len(),
            });
        }
        // n <= remaining, so it fits in usize.
        let s = self.take(n as usize, what)?;
        Ok(match std::str::from_utf8(s) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(s).into_owned(),
        })
    }

    /// One metadata value of type `ty`. `key` only names the value in errors.
    pub(crate) fn value(&mut self, key: &str, ty: ValueType, depth: u32) -> Result<Value> {
        const WHAT: &str = "metadata value";
        Ok(match ty {
            ValueType::U8 => Value::U8(u8::from_le_bytes(self.array(WHAT)?)),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(WHAT)?)),
            ValueType::Bool => Value::Bool(self.array::<1>(WHAT)?[0] != 0),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(WHAT)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(WHAT)?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.array(WHAT)?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(WHAT)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(WHAT)?)),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.array(WHAT)?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(WHAT)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(WHAT)?)),
            ValueType::String => Value::String(self.string(WHAT)?),
            ValueType::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(GgufError::NestingTooDeep(key.to_string()));
                }
                let tag = self.u32("array element type")?;
                let elem = ValueType::from_id(tag).ok_or_else(|| GgufError::BadValueType {
                    key: key.to_string(),
                    id: tag,
                })?;
                let n = self.u64("array length")?;
                self.check_count(
                    &format!("array length of {key:?}"),
                    n,
                    elem.min_size() as u64,
                )?;
                // check_count bounded n by the bytes left, so the reservation is proportionate.
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(key, elem, depth + 1)?);
                }
                Value::Array(elem, items)
            }
        })
    }
}
