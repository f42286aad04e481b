//! Weight views into the mmap'd GGUF file, checked against the config at load time.

use hanlin_gguf::{GgmlType, GgufFile, TensorInfo};

use crate::arch::{layer_table, slot_name, Need, Slot};
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};

/// A 1-D or 2-D weight: `rows` rows of `cols` elements, each row `row_bytes` long.
#[derive(Clone, Debug)]
pub struct Weight {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub ty: GgmlType,
    /// Output features (1 for vectors).
    pub rows: usize,
    /// Input features (the contiguous dimension).
    pub cols: usize,
    /// Bytes per row.
    pub row_bytes: usize,
    /// Absolute byte offset in the file.
    pub start: usize,
    /// The matrix repacked for the interleaved kernels, when [`hanlin_kernels::packs`] it.
    pub packed: Option<std::sync::Arc<hanlin_kernels::PackedMatrix>>,
}

impl Weight {
    fn from_info(t: &TensorInfo) -> Self {
        let cols = t.dims[0] as usize;
        let rows: usize = t.dims.iter().skip(1).map(|&d| d as usize).product();
        Weight {
            name: t.name.clone(),
            ty: t.ggml_type,
            rows,
            cols,
            row_bytes: cols / t.ggml_type.block_size() * t.ggml_type.type_size(),
            start: t.start as usize,
            packed: None,
        }
    }

    /// The bytes of the whole tensor.
    pub fn bytes<'a>(&self, file: &'a [u8]) -> &'a [u8] {
        &file[self.start..self.start + self.rows * self.row_bytes]
    }

    /// The bytes of row `r`.
    pub fn row<'a>(&self, file: &'a [u8], r: usize) -> &'a [u8] {
        let s = self.start + r * self.row_bytes;
        &file[s..s + self.row_bytes]
    }
}

/// One block's weights, by slot.
#[derive(Clone, Debug, Default)]
pub struct LayerWeights {
    slots: Vec<(Slot, Weight)>,
}

impl LayerWeights {
    /// The weight in `slot`, if this layer has it.
    pub fn get(&self, slot: Slot) -> Option<&Weight> {
        self.slots.iter().find(|(s, _)| *s == slot).map(|(_, w)| w)
    }

    /// Every weight of this layer, mutably (repacking at load).
    pub(crate) fn weights_mut(&mut self) -> impl Iterator<Item = &mut Weight> {
        self.slots.iter_mut().map(|(_, w)| w)
    }

    /// The weight in a slot the architecture table marks required.
    pub fn req(&self, slot: Slot) -> &Weight {
        match self.get(slot) {
            Some(w) => w,
            // Load checked every Required slot, so this is a programming error.
            None => panic!("slot {slot:?} missing after load checks"),
        }
    }
}

/// All weights of a decoder model.
#[derive(Clone, Debug)]
pub struct Weights {
    /// Token embedding `[n_vocab, n_embd]`.
    pub token_embd: Weight,
    /// Final RMSNorm.
    pub output_norm: Weight,
    /// LM head `[n_vocab, n_embd]` (the embedding when tied).
    pub output: Weight,
    /// Per-layer weights.
    pub layers: Vec<LayerWeights>,
    /// Llama 3.x RoPE frequency factors `[n_rot/2]`, when the file has them.
    pub rope_freqs: Option<Weight>,
}

fn expect_shape(w: &Weight, rows: usize, cols: usize) -> Result<()> {
    if w.rows != rows || w.cols != cols {
        return Err(ModelError::WrongShape {
            name: w.name.clone(),
            found: if w.rows == 1 {
                vec![w.cols as u64]
            } else {
                vec![w.cols as u64, w.rows as u64]
            },
            expected: if rows == 1 {
                vec![cols as u64]
            } else {
                vec![cols as u64, rows as u64]
            },
        });
    }
    Ok(())
}

fn tensor(f: &GgufFile, name: &str) -> Result<Weight> {
    let t = f
        .tensor(name)
        .ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
    Ok(Weight::from_info(t))
}

fn check_norm_type(w: &Weight) -> Result<()> {
    if w.ty != GgmlType::F32 && w.ty != GgmlType::F16 && w.ty != GgmlType::BF16 {
        return Err(ModelError::UnsupportedType {
            name: w.name.clone(),
            ty: w.ty,
            op: "norm/bias",
        });
    }
    Ok(())
}

impl Weights {
    /// Finds and shape-checks every tensor the config's architecture needs.
    pub fn load(f: &GgufFile, cfg: &ModelConfig) -> Result<Self> {
        let token_embd = tensor(f, "token_embd.weight")?;
        expect_shape(&token_embd, cfg.n_vocab, cfg.n_embd)?;
        let output_norm = tensor(f, "output_norm.weight")?;
        expect_shape(&output_norm, 1, cfg.n_embd)?;
        check_norm_type(&output_norm)?;
        let output = match f.tensor("output.weight") {
            Some(t) => Weight::from_info(t),
            None => token_embd.clone(),
        };
        expect_shape(&output, cfg.n_vocab, cfg.n_embd)?;

        let q_out = cfg.n_head * cfg.head_dim_k;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for il in 0..cfg.n_layer {
            let mut lw = LayerWeights::default();
            for &(slot, need) in layer_table(cfg.arch) {
                let name = format!("blk.{il}.{}", slot_name(slot));
                let w = match (f.tensor(&name), need) {
                    (Some(t), _) => Weight::from_info(t),
                    (None, Need::Optional) => continue,
                    (None, Need::Required) => return Err(ModelError::MissingTensor(name)),
                };
                let (rows, cols) = match slot {
                    Slot::AttnNorm | Slot::FfnNorm | Slot::AttnPostNorm | Slot::FfnPostNorm => {
                        (1, cfg.n_embd)
                    }
                    Slot::QNorm | Slot::KNorm => (1, cfg.head_dim_k),
                    Slot::Wq => (q_out, cfg.n_embd),
                    Slot::Wk => (cfg.kv_dim_k(), cfg.n_embd),
                    Slot::Wv => (cfg.kv_dim_v(), cfg.n_embd),
                    Slot::Wo => (cfg.n_embd, cfg.n_head * cfg.head_dim_v),
                    Slot::Bq => (1, q_out),
                    Slot::Bk => (1, cfg.kv_dim_k()),
                    Slot::Bv => (1, cfg.kv_dim_v()),
                    Slot::FfnGate | Slot::FfnUp => (cfg.n_ff, cfg.n_embd),
                    Slot::FfnDown => (cfg.n_embd, cfg.n_ff),
                };
                expect_shape(&w, rows, cols)?;
                if rows == 1 {
                    check_norm_type(&w)?;
                }
                lw.slots.push((slot, w));
            }
            layers.push(lw);
        }
        let rope_freqs = match f.tensor("rope_freqs.weight") {
            Some(t) => {
                let w = Weight::from_info(t);
                expect_shape(&w, 1, cfg.n_rot / 2)?;
                check_norm_type(&w)?;
                Some(w)
            }
            None => None,
        };
        Ok(Weights {
            token_embd,
            output_norm,
            output,
            layers,
            rope_freqs,
        })
    }
}
