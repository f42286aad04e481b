//! Helpers shared by the integration tests: a byte-level file builder for files the writer
//! refuses to produce, and a small valid file.

#![allow(dead_code)]

use hanlin_gguf::{GgmlType, GgufWriter, Value, ValueType};

/// Appends GGUF fields by hand, so tests can write exactly the bytes a hostile file holds.
#[derive(Default)]
pub struct Raw {
    pub buf: Vec<u8>,
}

impl Raw {
    /// Magic, version and the two counts.
    pub fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw::default();
        r.bytes(b"GGUF").u32(version).u64(n_tensors).u64(n_kv);
        r
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    pub fn u8(&mut self, x: u8) -> &mut Self {
        self.buf.push(x);
        self
    }

    pub fn u32(&mut self, x: u32) -> &mut Self {
        self.bytes(&x.to_le_bytes())
    }

    pub fn u64(&mut self, x: u64) -> &mut Self {
        self.bytes(&x.to_le_bytes())
    }

    /// A length-prefixed string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }

    /// Key and type tag; the caller appends the value.
    pub fn key(&mut self, key: &str, ty: u32) -> &mut Self {
        self.str(key).u32(ty)
    }

    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.key(key, ValueType::U32 as u32).u32(v)
    }

    pub fn tensor_info(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }

    /// Zero-pads to a multiple of `align`.
    pub fn pad(&mut self, align: usize) -> &mut Self {
        let n = self.buf.len().div_ceil(align) * align;
        self.buf.resize(n, 0);
        self
    }

    pub fn zeros(&mut self, n: usize) -> &mut Self {
        self.buf.resize(self.buf.len() + n, 0);
        self
    }

    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// Deterministic non-zero bytes, so data mix-ups between tensors show.
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A small valid file: a few keys of different types and three tensors, the last ending
/// exactly on the alignment so that every cut before the end is missing tensor bytes.
pub fn small_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.set("general.architecture", Value::String("llama".into()))
        .set("t.u8", Value::U8(7))
        .set("t.f32", Value::F32(1.5))
        .set("t.str", Value::String("héllo".into()))
        .set(
            "t.arr",
            Value::Array(ValueType::I32, vec![Value::I32(-1), Value::I32(2)]),
        );
    w.add_tensor("a", &[3, 2], GgmlType::F32, pattern(24, 1))
        .expect("valid tensor");
    w.add_tensor("b", &[32], GgmlType::Q8_0, pattern(34, 2))
        .expect("valid tensor");
    w.add_tensor("c", &[8], GgmlType::F32, pattern(32, 3))
        .expect("valid tensor");
    w.to_bytes().expect("valid file")
}
