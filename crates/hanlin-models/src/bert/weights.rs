//! The one in-memory form of BERT weights, whichever file they came from, and the table
//! that maps llama.cpp's tensor names to Hugging Face's.

use hanlin_gguf::GgmlType;

use super::config::BertConfig;
use super::error::{BertError, Result};
use crate::error::ModelError;
use crate::linear;
use crate::weights::Weight;

/// Embedding-stage tensors: (llama.cpp name, Hugging Face name without the `bert.` prefix).
pub const EMBD_NAMES: [(&str, &str); 5] = [
    ("token_embd.weight", "embeddings.word_embeddings.weight"),
    (
        "position_embd.weight",
        "embeddings.position_embeddings.weight",
    ),
    (
        "token_types.weight",
        "embeddings.token_type_embeddings.weight",
    ),
    ("token_embd_norm.weight", "embeddings.LayerNorm.weight"),
    ("token_embd_norm.bias", "embeddings.LayerNorm.bias"),
];

/// Per-block modules: (llama.cpp `blk.N.` suffix, Hugging Face `encoder.layer.N.` suffix);
/// each has a `.weight` and a `.bias`.
pub const LAYER_NAMES: [(&str, &str); 8] = [
    ("attn_q", "attention.self.query"),
    ("attn_k", "attention.self.key"),
    ("attn_v", "attention.self.value"),
    ("attn_output", "attention.output.dense"),
    ("attn_output_norm", "attention.output.LayerNorm"),
    ("ffn_up", "intermediate.dense"),
    ("ffn_down", "output.dense"),
    ("layer_output_norm", "output.LayerNorm"),
];

/// The Hugging Face name for a llama.cpp tensor name, or `None` if it is not a BERT tensor.
pub fn hf_name(gguf_name: &str) -> Option<String> {
    if let Some((_, hf)) = EMBD_NAMES.iter().find(|(g, _)| *g == gguf_name) {
        return Some((*hf).to_string());
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (il, rest) = rest.split_once('.')?;
    let il: usize = il.parse().ok()?;
    let (module, param) = rest.rsplit_once('.')?;
    if param != "weight" && param != "bias" {
        return None;
    }
    let (_, hf) = LAYER_NAMES.iter().find(|(g, _)| *g == module)?;
    Some(format!("encoder.layer.{il}.{hf}.{param}"))
}

/// A dense layer: `y = W x + b`, `W` left in its file format for the kernels.
#[derive(Debug)]
pub(crate) struct Linear {
    /// `[out, in]`.
    pub w: Weight,
    /// `[out]`.
    pub b: Vec<f32>,
}

/// LayerNorm gain and bias, `[n_embd]` each.
#[derive(Debug)]
pub(crate) struct Norm {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
}

/// One encoder block.
#[derive(Debug)]
pub(crate) struct Layer {
    /// Query, key, value projections `[n_embd, n_embd]`.
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    /// Attention output projection `[n_embd, n_embd]`.
    pub o: Linear,
    /// Post-attention LayerNorm.
    pub attn_norm: Norm,
    /// `[n_ff, n_embd]`.
    pub up: Linear,
    /// `[n_embd, n_ff]`.
    pub down: Linear,
    /// Post-FFN LayerNorm.
    pub out_norm: Norm,
}

/// All weights of a BERT encoder; matrices are views into the backing bytes.
#[derive(Debug)]
pub(crate) struct BertWeights {
    /// `[n_vocab, n_embd]`.
    pub token_embd: Weight,
    /// `[n_ctx, n_embd]`.
    pub position_embd: Weight,
    /// Token type 0's row, `[n_embd]`.
    pub token_type0: Vec<f32>,
    /// Embedding LayerNorm.
    pub embd_norm: Norm,
    pub layers: Vec<Layer>,
}

fn shape_err(w: &Weight, rows: usize, cols: usize) -> BertError {
    let dims = |r: usize, c: usize| {
        if r == 1 {
            vec![c as u64]
        } else {
            vec![c as u64, r as u64]
        }
    };
    ModelError::WrongShape {
        name: w.name.clone(),
        found: dims(w.rows, w.cols),
        expected: dims(rows, cols),
    }
    .into()
}

/// Builds [`BertWeights`] from `bytes` and a lookup of tensors by llama.cpp name.
pub(crate) struct Loader<'a, F: Fn(&str) -> Result<Option<Weight>>> {
    pub bytes: &'a [u8],
    pub find: F,
    pub cfg: &'a BertConfig,
}

impl<F: Fn(&str) -> Result<Option<Weight>>> Loader<'_, F> {
    fn get(&self, name: &str, rows: usize, cols: usize) -> Result<Weight> {
        let w = (self.find)(name)?.ok_or_else(|| ModelError::MissingTensor(name.into()))?;
        if w.rows != rows || w.cols != cols {
            return Err(shape_err(&w, rows, cols));
        }
        Ok(w)
    }

    fn vector(&self, name: &str, n: usize) -> Result<Vec<f32>> {
        let w = self.get(name, 1, n)?;
        if !matches!(w.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
            return Err(ModelError::UnsupportedType {
                name: w.name,
                ty: w.ty,
                op: "norm/bias",
            }
            .into());
        }
        Ok(linear::to_f32(self.bytes, &w)?)
    }

    fn linear(&self, prefix: &str, rows: usize, cols: usize) -> Result<Linear> {
        let w = self.get(&format!("{prefix}.weight"), rows, cols)?;
        if !linear::supported(w.ty) {
            return Err(ModelError::UnsupportedType {
                name: w.name,
                ty: w.ty,
                op: "matmul",
            }
            .into());
        }
        let b = self.vector(&format!("{prefix}.bias"), rows)?;
        Ok(Linear { w, b })
    }

    fn norm(&self, prefix: &str) -> Result<Norm> {
        let n = self.cfg.n_embd;
        Ok(Norm {
            w: self.vector(&format!("{prefix}.weight"), n)?,
            b: self.vector(&format!("{prefix}.bias"), n)?,
        })
    }

    fn embedding(&self, name: &str, rows: usize) -> Result<Weight> {
        let w = self.get(name, rows, self.cfg.n_embd)?;
        // Rows are dequantized one at a time, so any type with a dequantizer works; this
        // checks that one exists before the first sentence fails on it.
        let mut row = vec![0.0; w.cols];
        linear::get_row(self.bytes, &w, 0, &mut row)?;
        Ok(w)
    }

    /// Finds, shape-checks and converts every tensor the config implies.
    pub fn load(&self) -> Result<BertWeights> {
        let c = self.cfg;
        let (d, ff) = (c.n_embd, c.n_ff);
        let token_embd = self.embedding("token_embd.weight", c.n_vocab)?;
        let position_embd = self.embedding("position_embd.weight", c.n_ctx)?;
        let types = self.embedding("token_types.weight", c.n_token_types)?;
        let mut token_type0 = vec![0.0; d];
        linear::get_row(self.bytes, &types, 0, &mut token_type0)?;
        let embd_norm = self.norm("token_embd_norm")?;
        let mut layers = Vec::with_capacity(c.n_layer);
        for il in 0..c.n_layer {
            let p = |m: &str| format!("blk.{il}.{m}");
            layers.push(Layer {
                q: self.linear(&p("attn_q"), d, d)?,
                k: self.linear(&p("attn_k"), d, d)?,
                v: self.linear(&p("attn_v"), d, d)?,
                o: self.linear(&p("attn_output"), d, d)?,
                attn_norm: self.norm(&p("attn_output_norm"))?,
                up: self.linear(&p("ffn_up"), ff, d)?,
                down: self.linear(&p("ffn_down"), d, ff)?,
                out_norm: self.norm(&p("layer_output_norm"))?,
            });
        }
        Ok(BertWeights {
            token_embd,
            position_embd,
            token_type0,
            embd_norm,
            layers,
        })
    }
}

/// A [`Weight`] over `[start, start + bytes)` of a backing buffer, from a PyTorch-order shape.
pub(crate) fn weight_from_shape(
    name: &str,
    ty: GgmlType,
    shape: &[u64],
    start: usize,
) -> Result<Weight> {
    let unsupported = || BertError::Unsupported(format!("tensor {name:?} has shape {shape:?}"));
    let (rows, cols) = match shape {
        [c] => (1, *c),
        [r, c] => (*r, *c),
        _ => return Err(unsupported()),
    };
    let rows = usize::try_from(rows).map_err(|_| unsupported())?;
    let cols = usize::try_from(cols).map_err(|_| unsupported())?;
    Ok(Weight {
        name: name.to_string(),
        ty,
        rows,
        cols,
        row_bytes: cols / ty.block_size() * ty.type_size(),
        start,
        packed: None,
    })
}
