//! Writes the synthetic F16 models to a directory: `cargo run -p hanlin-test-support
//! --example write_synthetic -- OUT_DIR VOCAB_GGUF` (used by scripts/ref/synthetic_llamacpp.py).

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(out), Some(vocab)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: write_synthetic OUT_DIR VOCAB_GGUF");
        std::process::exit(2);
    };
    let vocab = match hanlin_gguf::GgufFile::open(vocab) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    for shape in hanlin_test_support::shapes() {
        let bytes = hanlin_test_support::synthetic_f16(&shape, &vocab, 42);
        let path = std::path::Path::new(out).join(format!("synthetic-{}-f16.gguf", shape.arch));
        if let Err(e) = std::fs::write(&path, &bytes) {
            eprintln!("{}: {e}", path.display());
            std::process::exit(1);
        }
        println!("{}", path.display());
        if shape.arch == "qwen2" {
            // The same weights with YaRN RoPE scaling (scripts/ref/yarn_llamacpp.py).
            let Ok(f16) = hanlin_gguf::GgufFile::from_bytes(bytes) else {
                eprintln!("cannot re-read {}", path.display());
                std::process::exit(1);
            };
            let yarn = hanlin_test_support::with_metadata(
                &f16,
                &hanlin_test_support::yarn_keys(shape.arch),
            );
            let path = std::path::Path::new(out).join("synthetic-qwen2-yarn-f16.gguf");
            if let Err(e) = std::fs::write(&path, yarn) {
                eprintln!("{}: {e}", path.display());
                std::process::exit(1);
            }
            println!("{}", path.display());
        }
    }
}
