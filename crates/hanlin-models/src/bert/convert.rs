//! Hugging Face BERT checkpoint → GGUF with llama.cpp's names, keys and vocabulary layout,
//! so the same network loads both ways (and in llama.cpp).

use std::io::Write;
use std::path::Path;

use half::f16;
use hanlin_gguf::{GgmlType, GgufWriter, Value, ValueType};

use super::config::{read_json, BertConfig};
use super::error::{BertError, Result};
use super::safetensors::{self, StTensor};
use super::weights::{weight_from_shape, EMBD_NAMES, LAYER_NAMES};
use crate::linear;

/// Element type of the matrices in a converted file (vectors and norms stay F32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgufWeightType {
    /// Everything F32: exact for F32 checkpoints.
    F32,
    /// 2-D tensors F16 (as llama.cpp's `--outtype f16`), token types and vectors F32.
    F16,
}

// llama.cpp's `llama_token_type` values.
const TOKEN_NORMAL: i32 = 1;
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;
const TOKEN_UNUSED: i32 = 5;

/// Converts the checkpoint in `hf_dir` to an all-F32 GGUF at `out_path`.
pub fn write_gguf(hf_dir: impl AsRef<Path>, out_path: impl AsRef<Path>) -> Result<()> {
    write_gguf_with(hf_dir, out_path, GgufWeightType::F32)
}

/// Converts the checkpoint in `hf_dir` to a GGUF at `out_path` with matrices of type `ty`.
///
/// The file is written next to `out_path` under a `.partial` name and renamed when complete.
pub fn write_gguf_with(
    hf_dir: impl AsRef<Path>,
    out_path: impl AsRef<Path>,
    ty: GgufWeightType,
) -> Result<()> {
    let dir = hf_dir.as_ref();
    let out_path = out_path.as_ref();
    let cfg = BertConfig::from_hf_dir(dir)?;
    let mut w = GgufWriter::new();
    set_hparams(&mut w, &cfg, dir, ty);
    let tok_path = dir.join("tokenizer.json");
    if tok_path.is_file() {
        set_vocab(&mut w, &cfg, dir, &tok_path)?;
    } else {
        tracing::warn!(
            "{}: no tokenizer.json; writing a GGUF without vocabulary",
            dir.display()
        );
    }
    add_tensors(&mut w, &cfg, dir, ty)?;

    let mut partial = out_path.as_os_str().to_owned();
    partial.push(".partial");
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| BertError::Io { path: p, source }
    };
    let file = std::fs::File::create(&partial).map_err(io(Path::new(&partial)))?;
    let mut buf = std::io::BufWriter::new(file);
    w.write_to(&mut buf)?;
    buf.flush().map_err(io(Path::new(&partial)))?;
    drop(buf);
    std::fs::rename(&partial, out_path).map_err(io(out_path))
}

fn set_hparams(w: &mut GgufWriter, cfg: &BertConfig, dir: &Path, ty: GgufWeightType) {
    let u32_of = |v: usize| Value::U32(u32::try_from(v).unwrap_or(u32::MAX));
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bert".into());
    w.set("general.architecture", Value::String("bert".into()));
    w.set("general.name", Value::String(name));
    let file_type = match ty {
        GgufWeightType::F32 => 0, // LLAMA_FTYPE_ALL_F32
        GgufWeightType::F16 => 1, // LLAMA_FTYPE_MOSTLY_F16
    };
    w.set("general.file_type", Value::U32(file_type));
    w.set("bert.context_length", u32_of(cfg.n_ctx));
    w.set("bert.embedding_length", u32_of(cfg.n_embd));
    w.set("bert.feed_forward_length", u32_of(cfg.n_ff));
    w.set("bert.block_count", u32_of(cfg.n_layer));
    w.set("bert.attention.head_count", u32_of(cfg.n_head));
    w.set("bert.attention.layer_norm_epsilon", Value::F32(cfg.eps));
    w.set("bert.attention.causal", Value::Bool(false));
    w.set("bert.pooling_type", Value::U32(cfg.pooling.llama_cpp_id()));
}

/// The text of a special token in tokenizer_config.json / special_tokens_map.json, which
/// give it either as a string or as `{"content": …}`.
fn special_text(dir: &Path, key: &str) -> Option<String> {
    for file in ["tokenizer_config.json", "special_tokens_map.json"] {
        let path = dir.join(file);
        if !path.is_file() {
            continue;
        }
        let Ok(v) = read_json(&path) else { continue };
        let t = v.get(key);
        let text = t
            .and_then(|t| t.as_str())
            .or_else(|| t.and_then(|t| t.get("content")).and_then(|c| c.as_str()));
        if let Some(text) = text {
            return Some(text.to_string());
        }
    }
    None
}

/// `tokenizer.ggml.*` from a WordPiece `tokenizer.json`, laid out as llama.cpp's converter
/// does: word-initial pieces get a `▁` prefix, `##` continuations lose theirs, `[…]` tokens
/// stay as they are, and ids missing from the vocabulary become unused `[PAD{id}]` entries.
fn set_vocab(w: &mut GgufWriter, cfg: &BertConfig, dir: &Path, tok_path: &Path) -> Result<()> {
    let ps = tok_path.display().to_string();
    let bad = |key: &str, why: String| BertError::Config {
        path: ps.clone(),
        key: key.into(),
        why,
    };
    let tj = read_json(tok_path)?;
    let model = &tj["model"];
    if model["type"].as_str() != Some("WordPiece") {
        return Err(BertError::Unsupported(format!(
            "{ps}: model.type {} (BERT GGUF vocabularies are WordPiece)",
            model["type"]
        )));
    }
    if tj["normalizer"]["lowercase"].as_bool() == Some(false) {
        tracing::warn!("{ps}: cased vocabulary; llama.cpp's WordPiece always lower-cases");
    }
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| bad("model.vocab", "is not an object".into()))?;
    let n = cfg.n_vocab;
    let mut texts: Vec<Option<String>> = vec![None; n];
    let mut types = vec![TOKEN_NORMAL; n];
    for (text, id) in vocab {
        let id = id
            .as_u64()
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < n)
            .ok_or_else(|| {
                bad(
                    "model.vocab",
                    format!("{text:?} has id {id}, vocab_size is {n}"),
                )
            })?;
        texts[id] = Some(text.clone());
    }
    for t in tj["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(text)) = (t["id"].as_u64(), t["content"].as_str()) else {
            return Err(bad(
                "added_tokens",
                format!("entry {t} lacks id or content"),
            ));
        };
        let id = usize::try_from(id).ok().filter(|&i| i < n).ok_or_else(|| {
            bad(
                "added_tokens",
                format!("{text:?} has id {id}, vocab_size is {n}"),
            )
        })?;
        texts[id] = Some(text.to_string());
        types[id] = if t["special"].as_bool() == Some(true) {
            TOKEN_CONTROL
        } else {
            TOKEN_USER_DEFINED
        };
    }
    let tokens: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(id, t)| match t {
            Some(t) => Value::String(phantom(t)),
            None => {
                types[id] = TOKEN_UNUSED;
                Value::String(format!("[PAD{id}]"))
            }
        })
        .collect();
    let id_of = |key: &str, default: &str| -> Option<u32> {
        let text = special_text(dir, key).unwrap_or_else(|| default.to_string());
        let id = vocab.get(&text).and_then(|v| v.as_u64())?;
        u32::try_from(id).ok()
    };
    w.set("tokenizer.ggml.model", Value::String("bert".into()));
    w.set(
        "tokenizer.ggml.tokens",
        Value::Array(ValueType::String, tokens),
    );
    w.set(
        "tokenizer.ggml.token_type",
        Value::Array(ValueType::I32, types.into_iter().map(Value::I32).collect()),
    );
    w.set(
        "tokenizer.ggml.token_type_count",
        Value::U32(u32::try_from(cfg.n_token_types).unwrap_or(u32::MAX)),
    );
    let cls = id_of("cls_token", "[CLS]");
    let sep = id_of("sep_token", "[SEP]");
    // llama.cpp's WordPiece adds BOS then SEP around the text: BOS is the CLS token.
    for (key, id) in [
        ("tokenizer.ggml.bos_token_id", cls),
        ("tokenizer.ggml.cls_token_id", cls),
        ("tokenizer.ggml.eos_token_id", sep),
        ("tokenizer.ggml.seperator_token_id", sep),
        (
            "tokenizer.ggml.unknown_token_id",
            id_of("unk_token", "[UNK]"),
        ),
        (
            "tokenizer.ggml.padding_token_id",
            id_of("pad_token", "[PAD]"),
        ),
        (
            "tokenizer.ggml.mask_token_id",
            id_of("mask_token", "[MASK]"),
        ),
    ] {
        if let Some(id) = id {
            w.set(key, Value::U32(id));
        }
    }
    Ok(())
}

/// llama.cpp's "phantom space" spelling of a WordPiece token.
fn phantom(t: &str) -> String {
    if t.starts_with('[') && t.ends_with(']') {
        t.to_string()
    } else if let Some(rest) = t.strip_prefix("##") {
        rest.to_string()
    } else {
        format!("\u{2581}{t}")
    }
}

/// Every tensor the encoder uses, renamed, in llama.cpp's order and shape convention.
fn add_tensors(w: &mut GgufWriter, cfg: &BertConfig, dir: &Path, ty: GgufWeightType) -> Result<()> {
    let path = dir.join("model.safetensors");
    let ps = path.display().to_string();
    let bytes = std::fs::read(&path).map_err(|source| BertError::Io {
        path: ps.clone(),
        source,
    })?;
    let tensors = safetensors::parse(&bytes, &ps)?;
    let mut names: Vec<(String, String)> = EMBD_NAMES
        .iter()
        .map(|(g, h)| ((*g).to_string(), (*h).to_string()))
        .collect();
    for il in 0..cfg.n_layer {
        for (g, h) in LAYER_NAMES {
            for p in ["weight", "bias"] {
                names.push((
                    format!("blk.{il}.{g}.{p}"),
                    format!("encoder.layer.{il}.{h}.{p}"),
                ));
            }
        }
    }
    for (gguf, hf) in names {
        let t: &StTensor = tensors
            .iter()
            .find(|t| t.name == hf || t.name.strip_prefix("bert.") == Some(hf.as_str()))
            .ok_or_else(|| BertError::Config {
                path: ps.clone(),
                key: hf.clone(),
                why: "tensor missing".into(),
            })?;
        let src_ty = t.ggml_type().ok_or_else(|| BertError::Config {
            path: ps.clone(),
            key: t.name.clone(),
            why: format!("dtype {} is not F32, F16 or BF16", t.dtype),
        })?;
        let src = weight_from_shape(&t.name, src_ty, &t.shape, t.start)?;
        let values = linear::to_f32(&bytes, &src)?;
        let matrix = t.shape.len() == 2 && gguf != "token_types.weight";
        let (out_ty, data) = if matrix && ty == GgufWeightType::F16 {
            let d = values
                .iter()
                .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                .collect();
            (GgmlType::F16, d)
        } else {
            let d = values.iter().flat_map(|&x| x.to_le_bytes()).collect();
            (GgmlType::F32, d)
        };
        let dims: Vec<u64> = t.shape.iter().rev().copied().collect();
        w.add_tensor(&gguf, &dims, out_ty, data)?;
    }
    Ok(())
}
