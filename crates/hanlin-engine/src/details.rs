//! What a loaded model reports about itself (Ollama's `/api/tags`, `/api/show`).

use std::path::Path;

use hanlin_api::ModelDetails;
use hanlin_gguf::GgufFile;

/// Details of the model in `file`, loaded from `path`.
pub(crate) fn model_details(file: &GgufFile, path: &Path) -> ModelDetails {
    let params: u64 = file.tensors().iter().map(|t| t.n_elements()).sum();
    let mut by_type: Vec<(hanlin_gguf::GgmlType, u64)> = Vec::new();
    for t in file.tensors() {
        match by_type.iter_mut().find(|(ty, _)| *ty == t.ggml_type) {
            Some((_, n)) => *n += t.n_bytes,
            None => by_type.push((t.ggml_type, t.n_bytes)),
        }
    }
    let quant = by_type
        .iter()
        .max_by_key(|(_, n)| *n)
        .map(|(t, _)| t.name().to_string())
        .unwrap_or_default();
    // Store blobs are named by their content hash, which is the digest clients expect.
    let digest = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("sha256-"))
        .map(|h| format!("sha256:{h}"))
        .unwrap_or_default();
    ModelDetails {
        family: file
            .get_str("general.architecture")
            .ok()
            .flatten()
            .unwrap_or_default()
            .to_string(),
        parameter_size: format_params(params),
        quantization_level: quant,
        size_bytes: file.file_len(),
        digest,
        chat_template: file
            .get_str("tokenizer.chat_template")
            .ok()
            .flatten()
            .map(str::to_string),
    }
}

/// `268M`, `1.2B` …
fn format_params(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{}M", (n as f64 / 1e6).round()),
        n if n >= 1_000 => format!("{}K", (n as f64 / 1e3).round()),
        n => n.to_string(),
    }
}
