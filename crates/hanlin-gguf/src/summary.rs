//! Human-facing summaries of a GGUF file: the quantization label and the parameter count as
//! model cards write them.

use std::collections::BTreeMap;

use crate::reader::GgufFile;
use crate::types::GgmlType;

/// `general.file_type`'s name (`Q4_K_M` …), or the type holding most bytes when it is absent.
pub fn quantization_label(f: &GgufFile) -> Option<String> {
    f.get_u64("general.file_type")
        .ok()
        .flatten()
        .and_then(|t| u32::try_from(t).ok())
        .and_then(ftype_name)
        .map(str::to_string)
        .or_else(|| dominant_type(f).map(|t| t.name().to_string()))
}

/// The type holding most of the file's bytes, for files without `general.file_type`.
pub fn dominant_type(f: &GgufFile) -> Option<GgmlType> {
    let mut bytes: BTreeMap<u32, (GgmlType, u64)> = BTreeMap::new();
    for t in f.tensors() {
        bytes.entry(t.ggml_type.id()).or_insert((t.ggml_type, 0)).1 += t.n_bytes;
    }
    bytes.into_values().max_by_key(|&(_, n)| n).map(|(t, _)| t)
}

/// llama.cpp's `llama_ftype` names (`general.file_type`), without the `MOSTLY_` prefix.
pub fn ftype_name(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4",
        _ => return None,
    })
}

/// A parameter count the way model cards write it: `268M`, `1.5B`.
pub fn format_params(n: u64) -> String {
    let (v, unit) = match n {
        0..=999 => return n.to_string(),
        1_000..=999_999 => (n as f64 / 1e3, "K"),
        1_000_000..=999_999_999 => (n as f64 / 1e6, "M"),
        _ => (n as f64 / 1e9, "B"),
    };
    if v >= 100.0 {
        format!("{v:.0}{unit}")
    } else {
        format!("{v:.1}{unit}")
    }
}
