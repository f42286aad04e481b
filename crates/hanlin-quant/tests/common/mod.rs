//! Reader for the fixtures in `testdata/`, written by `scripts/ref/quant_fixtures.py` from
//! ggml's own C code (see that script for how each field was produced).

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

use hanlin_quant::GgmlType;

/// One fixture case: its fields, in the order the script documents.
pub type Case = Vec<Vec<u8>>;

/// Loads `testdata/<name>`: `b"HQF1"`, u32 case count, then per case a u32 field count and
/// length-prefixed fields (all little-endian).
pub fn load(name: &str) -> Vec<Case> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&data[..4], b"HQF1", "{name}: bad magic");
    let mut at = 4;
    let u32_at = |at: &mut usize| {
        let v = u32::from_le_bytes(data[*at..*at + 4].try_into().unwrap()) as usize;
        *at += 4;
        v
    };
    let n_cases = u32_at(&mut at);
    let mut cases = Vec::with_capacity(n_cases);
    for _ in 0..n_cases {
        let n_fields = u32_at(&mut at);
        let mut fields = Vec::with_capacity(n_fields);
        for _ in 0..n_fields {
            let len = u32_at(&mut at);
            fields.push(data[at..at + len].to_vec());
            at += len;
        }
        cases.push(fields);
    }
    assert_eq!(at, data.len(), "{name}: trailing bytes");
    cases
}

/// Decodes little-endian `f32`s.
pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// The fixture file stem for a type (`q4_k`, `bf16` …).
pub fn stem(ty: GgmlType) -> String {
    ty.name().to_ascii_lowercase()
}
