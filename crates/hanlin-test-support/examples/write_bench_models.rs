//! Writes the F16 benchmark models (real Llama 3.2 1B / Qwen2.5 0.5B shapes, random weights)
//! that `bench/vs-llamacpp --synthetic` quantizes with llama.cpp's quantizer:
//! `cargo run --release -p hanlin-test-support --example write_bench_models -- OUT_DIR VOCAB_GGUF`.
//! Files that already exist are kept; prints one path per line.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(out), Some(vocab)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: write_bench_models OUT_DIR VOCAB_GGUF");
        std::process::exit(2);
    };
    let vocab = match hanlin_gguf::GgufFile::open(vocab) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{vocab}: {e}");
            std::process::exit(1);
        }
    };
    for (stem, shape) in hanlin_test_support::bench_shapes() {
        let path = std::path::Path::new(out).join(format!("synthetic-{stem}-f16.gguf"));
        if !path.exists() {
            let bytes = hanlin_test_support::synthetic_f16(&shape, &vocab, 42);
            // Written under a temporary name so an interrupted run leaves no truncated model.
            let tmp = path.with_extension("gguf.part");
            if let Err(e) = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, &path))
            {
                eprintln!("{}: {e}", path.display());
                std::process::exit(1);
            }
        }
        println!("{}", path.display());
    }
}
