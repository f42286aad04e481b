//! Turning a `--model` argument (a path or a store name) into a file path.

use std::path::PathBuf;

use hanlin_modelstore::{catalog, catalog_lookup, BarProgress, ModelName, Store, StoreError};

/// Resolves a model argument: an existing file path, a name in the local store, or a
/// catalog name, which is pulled on first use.
pub fn resolve_model(model: &str) -> anyhow::Result<PathBuf> {
    let p = PathBuf::from(model);
    if p.is_file() {
        return Ok(p);
    }
    let store = Store::open_default()?;
    match store.resolve(model) {
        Ok(path) => Ok(path),
        Err(e @ (StoreError::NotFound { .. } | StoreError::MissingBlob { .. })) => {
            if let Some(entry) = ModelName::parse(model)
                .ok()
                .and_then(|n| catalog_lookup(&n))
            {
                eprintln!("pulling {} (first use of {model}) …", entry.name);
                return Ok(store.ensure(model, &BarProgress::new())?);
            }
            let StoreError::NotFound { available, .. } = e else {
                return Err(e.into());
            };
            let looks_like_path =
                model.contains(['/', '\\']) || model.to_ascii_lowercase().ends_with(".gguf");
            let have = if available.is_empty() {
                "none".to_string()
            } else {
                available.join(", ")
            };
            let cat: Vec<&str> = catalog().iter().map(|e| e.name).collect();
            anyhow::bail!(
                "model {model:?} is {}not in the store (stored models: {have}; \
                 catalog: {}); pull one with `hanlin pull SOURCE`",
                if looks_like_path {
                    "not an existing file and "
                } else {
                    ""
                },
                cat.join(", ")
            )
        }
        Err(e) => Err(e.into()),
    }
}
