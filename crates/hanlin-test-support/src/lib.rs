//! Dev-only helpers: deterministic random-weight GGUF models of real architectures' shapes.
//!
//! The generator is our own (SplitMix64 + Box–Muller) so the same seed gives the same bytes on
//! every machine and every crate version; llama.cpp reference data is computed from files this
//! crate writes (see `scripts/ref/synthetic_llamacpp.py`).

pub mod fake_backend;

use half::f16;
use hanlin_gguf::{GgmlType, GgufFile, GgufWriter, Value};
use sha2::{Digest, Sha256};

/// Shape of a synthetic decoder.
#[derive(Clone, Debug)]
pub struct Shape {
    /// `general.architecture`: llama, qwen2 or qwen3.
    pub arch: &'static str,
    /// Hidden size.
    pub n_embd: usize,
    /// Layers.
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// Feed-forward size.
    pub n_ff: usize,
    /// Vocabulary size; 0 takes the vocabulary file's size unchanged.
    pub n_vocab: usize,
    /// RoPE frequency base.
    pub rope_base: f32,
    /// Trained context length written to the metadata.
    pub n_ctx: usize,
}

/// The three small shapes the synthetic comparisons use (GQA 2:1, K-quant-friendly sizes).
pub fn shapes() -> Vec<Shape> {
    ["llama", "qwen2", "qwen3"]
        .into_iter()
        .map(|arch| Shape {
            arch,
            n_embd: 256,
            n_layer: 2,
            n_head: 4,
            n_head_kv: 2,
            n_ff: 512,
            n_vocab: 0,
            rope_base: 10000.0,
            n_ctx: 512,
        })
        .collect()
}

/// Benchmark shapes of real models (`bench/vs-llamacpp --synthetic`), keyed by file stem:
/// Llama 3.2 1B and Qwen2.5 0.5B, both with tied embeddings as the originals have.
pub fn bench_shapes() -> Vec<(&'static str, Shape)> {
    vec![
        (
            "llama3.2-1b",
            Shape {
                arch: "llama",
                n_embd: 2048,
                n_layer: 16,
                n_head: 32,
                n_head_kv: 8,
                n_ff: 8192,
                n_vocab: 128_256,
                rope_base: 500_000.0,
                n_ctx: 131_072,
            },
        ),
        (
            "qwen2.5-0.5b",
            Shape {
                arch: "qwen2",
                n_embd: 896,
                n_layer: 24,
                n_head: 14,
                n_head_kv: 2,
                n_ff: 4864,
                n_vocab: 151_936,
                rope_base: 1_000_000.0,
                n_ctx: 32_768,
            },
        ),
    ]
}

/// Deterministic normal samples.
struct Normal(u64);

impl Normal {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn sample(&mut self) -> f32 {
        let (u1, u2) = (self.uniform(), self.uniform());
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|x| f16::from_f32(*x).to_le_bytes())
        .collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes an F16 model of `shape` with random normal weights (never zeros), taking the
/// tokenizer (`tokenizer.*` keys) from `vocab` so llama.cpp can load it.
pub fn synthetic_f16(shape: &Shape, vocab: &GgufFile, seed: u64) -> Vec<u8> {
    let mut rng = Normal(seed);
    let mut w = GgufWriter::new();
    let a = shape.arch;
    let hd = shape.n_embd / shape.n_head;
    let tokenizer = tokenizer_keys(vocab, shape.n_vocab);
    let n_vocab = tokenizer
        .iter()
        .find(|(k, _)| k == "tokenizer.ggml.tokens")
        .and_then(|(_, v)| match v {
            Value::Array(_, t) => Some(t.len()),
            _ => None,
        })
        .unwrap_or(0);
    w.set("general.architecture", Value::String(a.into()));
    w.set(
        "general.name",
        Value::String(format!("hanlin synthetic {a}")),
    );
    w.set("general.file_type", Value::U32(1));
    let u32v = |x: usize| Value::U32(x as u32);
    w.set(&format!("{a}.context_length"), u32v(shape.n_ctx));
    w.set(&format!("{a}.embedding_length"), u32v(shape.n_embd));
    w.set(&format!("{a}.block_count"), u32v(shape.n_layer));
    w.set(&format!("{a}.feed_forward_length"), u32v(shape.n_ff));
    w.set(&format!("{a}.attention.head_count"), u32v(shape.n_head));
    w.set(
        &format!("{a}.attention.head_count_kv"),
        u32v(shape.n_head_kv),
    );
    w.set(&format!("{a}.rope.freq_base"), Value::F32(shape.rope_base));
    w.set(
        &format!("{a}.attention.layer_norm_rms_epsilon"),
        Value::F32(1e-6),
    );
    if a == "llama" {
        w.set(&format!("{a}.rope.dimension_count"), u32v(hd));
    }
    if a == "qwen3" {
        w.set(&format!("{a}.attention.key_length"), u32v(hd));
        w.set(&format!("{a}.attention.value_length"), u32v(hd));
    }
    for (k, v) in tokenizer {
        w.set(&k, v);
    }
    let mut mat = |w: &mut GgufWriter, name: &str, rows: usize, cols: usize, std: f32| {
        let v: Vec<f32> = (0..rows * cols).map(|_| rng.sample() * std).collect();
        // Writer errors only on misuse (shapes here are fixed multiples of 32).
        let _ = w.add_tensor(
            name,
            &[cols as u64, rows as u64],
            GgmlType::F16,
            f16_bytes(&v),
        );
    };
    let d = shape.n_embd;
    let (q, kv) = (shape.n_head * hd, shape.n_head_kv * hd);
    mat(&mut w, "token_embd.weight", n_vocab, d, 1.0);
    let mut vecs: Vec<(String, usize, f32, f32)> = vec![("output_norm.weight".into(), d, 1.0, 0.1)];
    for il in 0..shape.n_layer {
        let p = format!("blk.{il}.");
        mat(&mut w, &format!("{p}attn_q.weight"), q, d, 0.08);
        mat(&mut w, &format!("{p}attn_k.weight"), kv, d, 0.08);
        mat(&mut w, &format!("{p}attn_v.weight"), kv, d, 0.08);
        mat(&mut w, &format!("{p}attn_output.weight"), d, q, 0.08);
        mat(&mut w, &format!("{p}ffn_gate.weight"), shape.n_ff, d, 0.08);
        mat(&mut w, &format!("{p}ffn_up.weight"), shape.n_ff, d, 0.08);
        mat(&mut w, &format!("{p}ffn_down.weight"), d, shape.n_ff, 0.06);
        vecs.push((format!("{p}attn_norm.weight"), d, 1.0, 0.1));
        vecs.push((format!("{p}ffn_norm.weight"), d, 1.0, 0.1));
        if a == "qwen2" {
            vecs.push((format!("{p}attn_q.bias"), q, 0.0, 0.1));
            vecs.push((format!("{p}attn_k.bias"), kv, 0.0, 0.1));
            vecs.push((format!("{p}attn_v.bias"), kv, 0.0, 0.1));
        }
        if a == "qwen3" {
            vecs.push((format!("{p}attn_q_norm.weight"), hd, 1.0, 0.1));
            vecs.push((format!("{p}attn_k_norm.weight"), hd, 1.0, 0.1));
        }
    }
    for (name, n, mean, std) in vecs {
        let v: Vec<f32> = (0..n).map(|_| mean + rng.sample() * std).collect();
        let _ = w.add_tensor(&name, &[n as u64], GgmlType::F32, f32_bytes(&v));
    }
    w.to_bytes().unwrap_or_default()
}

/// The `tokenizer.*` keys of `vocab`, padded to `n_vocab` tokens (when larger) with unique
/// never-merged filler pieces, so a real model's vocabulary size (and LM-head cost) can be
/// reproduced from a small SentencePiece vocabulary.
fn tokenizer_keys(vocab: &GgufFile, n_vocab: usize) -> Vec<(String, Value)> {
    let mut keys: Vec<(String, Value)> = vocab
        .metadata()
        .iter()
        .filter(|(k, _)| k.starts_with("tokenizer."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in &mut keys {
        let Value::Array(_, items) = v else { continue };
        let have = items.len();
        if n_vocab <= have {
            continue;
        }
        let filler = (have..n_vocab).map(|i| match k.as_str() {
            "tokenizer.ggml.tokens" => Some(Value::String(format!("\u{2581}<filler{i}>"))),
            // Lowest scores: the SentencePiece merges never produce a filler piece.
            "tokenizer.ggml.scores" => Some(Value::F32(-1.0e6 - i as f32)),
            // USER_DEFINED pieces would be matched in text; NORMAL ones only by merges.
            "tokenizer.ggml.token_type" => Some(Value::I32(1)),
            _ => None,
        });
        let filler: Option<Vec<Value>> = filler.collect();
        if let Some(f) = filler {
            items.extend(f);
        }
    }
    keys
}

/// Re-encodes `f16_model` with each tensor in the type `type_of(name)` gives, using the
/// reference quantizers (byte-identical to ggml's, hence to `llama-quantize` without imatrix).
pub fn requantize(f16_model: &GgufFile, type_of: impl Fn(&str) -> GgmlType) -> Vec<u8> {
    let mut w = GgufWriter::new();
    for (k, v) in f16_model.metadata() {
        w.set(k, v.clone());
    }
    for t in f16_model.tensors() {
        let ty = type_of(&t.name);
        let n = t.n_elements() as usize;
        let mut f = vec![0f32; n];
        let _ = hanlin_quant::dequantize_row(t.ggml_type, f16_model.tensor_data(t), &mut f);
        let data = if ty == t.ggml_type {
            f16_model.tensor_data(t).to_vec()
        } else {
            let mut out = vec![0u8; hanlin_quant::row_size(ty, n).unwrap_or(0)];
            let cols = t.dims[0] as usize;
            let row_bytes = hanlin_quant::row_size(ty, cols).unwrap_or(0);
            for (src, dst) in f.chunks(cols).zip(out.chunks_mut(row_bytes.max(1))) {
                let _ = hanlin_quant::quantize_row(ty, src, dst);
            }
            out
        };
        let _ = w.add_tensor(&t.name, &t.dims, ty, data);
    }
    w.to_bytes().unwrap_or_default()
}

/// Hex sha256 of bytes (per-tensor checks against llama.cpp's quantizer output).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `model` rewritten with `extra` metadata keys added or replaced; tensors unchanged.
pub fn with_metadata(model: &GgufFile, extra: &[(String, Value)]) -> Vec<u8> {
    let mut w = GgufWriter::new();
    for (k, v) in model.metadata() {
        w.set(k, v.clone());
    }
    for (k, v) in extra {
        w.set(k, v.clone());
    }
    for t in model.tensors() {
        let _ = w.add_tensor(&t.name, &t.dims, t.ggml_type, model.tensor_data(t).to_vec());
    }
    w.to_bytes().unwrap_or_default()
}

/// The YaRN keys the RoPE-scaling references use: factor 4 over a 4096-token original
/// context (as Qwen2.5's long-context configs set it), so the ramp spans the middle pairs.
pub fn yarn_keys(arch: &str) -> Vec<(String, Value)> {
    vec![
        (
            format!("{arch}.rope.scaling.type"),
            Value::String("yarn".into()),
        ),
        (format!("{arch}.rope.scaling.factor"), Value::F32(4.0)),
        (
            format!("{arch}.rope.scaling.original_context_length"),
            Value::U32(4096),
        ),
    ]
}

/// Cosine similarity of two vectors, accumulated in f64 (logit and embedding comparisons).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// The stories260K GGUF in the shared test data, whose tokenizer the synthetic models borrow;
/// `None` (with a note on stderr) when the shared data is not checked out next to the repo.
pub fn stories_vocab() -> Option<GgufFile> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/models/stories260K/stories260K-f32.gguf");
    match GgufFile::open(&path) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("skipping: {}: {e}", path.display());
            None
        }
    }
}
