//! Writes small valid GGUF files into a corpus directory (default `corpus/gguf_parse`) so the
//! fuzzer starts from files that get past the header. Also copies the committed cross-check
//! fixtures from crates/hanlin-gguf/testdata.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds -- fuzz/corpus/gguf_parse

use std::path::PathBuf;

use hanlin_gguf::{GgmlType, GgufWriter, Value, ValueType};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "corpus/gguf_parse".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let mut n = 0;
    let mut save = |name: &str, bytes: Vec<u8>| -> std::io::Result<()> {
        n += 1;
        std::fs::write(dir.join(format!("seed-{name}.gguf")), bytes)
    };

    save("empty-v3", GgufWriter::new().to_bytes()?)?;
    save("empty-v2", GgufWriter::new().with_version(2).to_bytes()?)?;

    let mut w = GgufWriter::new();
    w.set("general.architecture", Value::String("llama".into()))
        .set("llama.block_count", Value::U32(1))
        .set("llama.rope.freq_base", Value::F32(10000.0))
        .set("general.name", Value::String("翰林 🦀".into()))
        .set("b", Value::Bool(true))
        .set("i64", Value::I64(-5))
        .set("f64", Value::F64(0.5))
        .set(
            "tokenizer.ggml.tokens",
            Value::Array(
                ValueType::String,
                ["<s>", "a", "é"].map(|s| Value::String(s.into())).to_vec(),
            ),
        )
        .set(
            "tokenizer.ggml.scores",
            Value::Array(ValueType::F32, vec![Value::F32(0.0); 3]),
        )
        .set(
            "nested",
            Value::Array(
                ValueType::Array,
                vec![Value::Array(
                    ValueType::U16,
                    vec![Value::U16(1), Value::U16(2)],
                )],
            ),
        );
    save("metadata-only", w.to_bytes()?)?;

    // One small tensor of every type, in a few files so each stays small.
    for (i, chunk) in hanlin_gguf::ALL_TYPES.chunks(8).enumerate() {
        let mut w = GgufWriter::new().with_alignment([1, 8, 32, 64][i % 4])?;
        for (j, &ty) in chunk.iter().enumerate() {
            let dims = [ty.block_size() as u64, 1 + j as u64 % 2];
            let n = ty.bytes_for(dims[0] * dims[1]).ok_or("size")? as usize;
            let data = (0..n).map(|k| (k * 7 + j) as u8).collect();
            w.add_tensor(&format!("t{j}.{}", ty.name()), &dims, ty, data)?;
        }
        save(&format!("types-{i}"), w.to_bytes()?)?;
    }

    let mut w = GgufWriter::new().with_version(2);
    w.set("general.architecture", Value::String("x".into()));
    w.add_tensor("a", &[4, 2, 1, 3], GgmlType::F32, vec![1; 96])?;
    w.add_tensor("b", &[32], GgmlType::Q8_0, vec![2; 34])?;
    save("v2-tensors", w.to_bytes()?)?;

    let testdata = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/hanlin-gguf/testdata");
    for name in ["gguf_py_tiny.gguf", "hanlin_tiny.gguf"] {
        save(
            name.trim_end_matches(".gguf"),
            std::fs::read(testdata.join(name))?,
        )?;
    }
    println!("wrote {n} seeds to {}", dir.display());
    Ok(())
}
