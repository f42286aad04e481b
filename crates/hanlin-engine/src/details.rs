//! What a loaded model reports about itself (Ollama's `/api/tags`, `/api/show`).

use std::path::Path;

use hanlin_api::ModelDetails;
use hanlin_gguf::GgufFile;

/// Details of the model in `file`, loaded from `path`.
pub(crate) fn model_details(file: &GgufFile, path: &Path) -> ModelDetails {
    let params: u64 = file.tensors().iter().map(|t| t.n_elements()).sum();
    let quant = hanlin_gguf::quantization_label(file).unwrap_or_default();
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
        parameter_size: hanlin_gguf::format_params(params),
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
