//! Parses arbitrary bytes as GGUF. On success it touches every metadata value and every
//! tensor's bytes, checks the invariants the reader promises, and checks that writing the
//! parsed file back out is stable (write → parse → write gives the same bytes).

#![no_main]

use std::hint::black_box;

use hanlin_gguf::{GgufFile, GgufWriter, Value};
use libfuzzer_sys::fuzz_target;

/// Rewriting allocates the padding; skip it for alignments that would make that huge.
const MAX_REWRITE_ALIGNMENT: u64 = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let Ok(f) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    assert!(matches!(f.version(), 2 | 3));
    assert!(f.alignment().is_power_of_two());
    assert_eq!(f.file_len(), data.len() as u64);

    for (k, v) in f.metadata() {
        assert!(!k.is_empty());
        assert!(f.get(k).is_some());
        black_box(touch(v));
        black_box(v.to_string());
        black_box((
            f.get_u64(k).ok(),
            f.get_f64(k).ok(),
            f.get_bool(k).ok(),
            f.get_str(k).ok(),
        ));
    }

    let mut prev_end = 0u64;
    let mut by_start: Vec<_> = f.tensors().iter().collect();
    by_start.sort_by_key(|t| t.start);
    for t in by_start {
        let bytes = f.tensor_data(t);
        assert_eq!(bytes.len() as u64, t.n_bytes, "{}", t.name);
        assert_eq!(t.start, f.data_offset() + t.offset);
        assert_eq!(t.offset % f.alignment(), 0);
        assert!(t.start >= prev_end, "overlap at {}", t.name);
        prev_end = t.start + t.n_bytes;
        assert!(std::ptr::eq(f.require_tensor(&t.name).expect("indexed"), t));
        assert_eq!(t.ggml_type.bytes_for(t.n_elements()), Some(t.n_bytes));
        black_box(bytes.iter().fold(0u8, |a, &b| a ^ b));
        black_box(t.rows_cols());
    }

    if f.alignment() <= MAX_REWRITE_ALIGNMENT {
        let once = rewrite(&f);
        let again = GgufFile::from_bytes(once.clone()).expect("our own output parses");
        assert_eq!(again.metadata().len(), f.metadata().len());
        assert_eq!(again.tensors().len(), f.tensors().len());
        assert_eq!(rewrite(&again), once, "write → parse → write is not stable");
    }
});

/// Walks a value (arrays recursively) so every element is read.
fn touch(v: &Value) -> u64 {
    match v {
        Value::Array(_, items) => items.iter().map(touch).fold(0, u64::wrapping_add),
        Value::String(s) => s.len() as u64,
        other => other.as_f64().map_or(1, f64::to_bits),
    }
}

/// Everything the reader accepted, the writer must be able to write.
fn rewrite(f: &GgufFile) -> Vec<u8> {
    let mut w = GgufWriter::new().with_version(f.version());
    for (k, v) in f.metadata() {
        w.set(k, v.clone());
    }
    for t in f.tensors() {
        w.add_tensor(&t.name, &t.dims, t.ggml_type, f.tensor_data(t).to_vec())
            .expect("a tensor the reader accepted");
    }
    w.to_bytes().expect("metadata the reader accepted")
}
