//! Shared helpers for the store's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use hanlin_gguf::{GgmlType, GgufWriter, Value};
use sha2::{Digest, Sha256};

/// A small valid GGUF file whose content depends on `seed`; `n` f32 weights.
pub fn tiny_gguf(arch: &str, seed: u32, n: usize) -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.set("general.architecture", Value::String(arch.into()));
    w.set("general.name", Value::String(format!("Tiny {arch} {seed}")));
    w.set("general.file_type", Value::U32(0));
    w.set(&format!("{arch}.context_length"), Value::U32(256));
    let data: Vec<u8> = (0..n as u32)
        .flat_map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) as f32 / 1e9).to_le_bytes())
        .collect();
    w.add_tensor("token_embd.weight", &[n as u64], GgmlType::F32, data)
        .unwrap();
    w.to_bytes().unwrap()
}

/// Lower-case hex sha256.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// File names in a directory (empty if it does not exist).
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Builds a wheel (zip) holding `entries` (name, bytes), deflated.
pub fn wheel(path: &Path, entries: &[(&str, &[u8])]) {
    use std::io::Write;
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        z.start_file(*name, opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
}
