//! Dumps every named intermediate tensor of a forward pass as `.npy`, for op-by-op comparison
//! with llama.cpp's eval callback (`scripts/ref/engine_gemma3.py --dump` writes the other side).
//!
//! `cargo run --release -p hanlin-models --example trace_dump -- MODEL.gguf OUTDIR PROMPT_IDS
//! [DECODE_IDS]` — ids comma-separated. Call 0 is the prompt as one batch, call `k` the `k`-th
//! decode step (one token); files are `OUTDIR/call{c}/{name}-{layer}.npy` (layer `-1` outside
//! the layers), shaped `[tokens, cols]`, as llama.cpp names them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use hanlin_models::{Logits, Model};

fn ids(s: &str) -> Result<Vec<u32>, std::num::ParseIntError> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| x.trim().parse())
        .collect()
}

/// Writes `data` (`rows × cols` f32) as a little-endian `.npy` file.
fn write_npy(path: &Path, cols: usize, data: &[f32]) -> std::io::Result<()> {
    let rows = data.len() / cols.max(1);
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + header length (2) + header, padded to 64 with a newline.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    for v in data {
        f.write_all(&v.to_le_bytes())?;
    }
    f.flush()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: trace_dump MODEL.gguf OUTDIR PROMPT_IDS [DECODE_IDS]";
    let model = Model::load(args.get(1).ok_or(usage)?)?;
    let out = PathBuf::from(args.get(2).ok_or(usage)?);
    let prompt = ids(args.get(3).ok_or(usage)?)?;
    let decode = args.get(4).map(|s| ids(s)).transpose()?.unwrap_or_default();
    let mut kv = model.kv_cache(512);
    let mut s = model.scratch(512);
    let steps = std::iter::once(prompt).chain(decode.into_iter().map(|t| vec![t]));
    for (call, tokens) in steps.enumerate() {
        let dir = out.join(format!("call{call}"));
        std::fs::create_dir_all(&dir)?;
        // Tensors emitted once per token (the logits) are gathered into one file.
        let mut seen: BTreeMap<String, (usize, Vec<f32>)> = BTreeMap::new();
        let mut trace = |name: &str, layer: Option<usize>, cols: usize, data: &[f32]| {
            let l = layer.map_or(-1, |l| l as i64);
            let e = seen
                .entry(format!("{name}-{l}"))
                .or_insert((cols, Vec::new()));
            e.1.extend_from_slice(data);
        };
        model.forward_traced(&tokens, &mut kv, &mut s, Logits::All, Some(&mut trace))?;
        for (name, (cols, data)) in &seen {
            write_npy(&dir.join(format!("{name}.npy")), *cols, data)?;
        }
    }
    Ok(())
}
