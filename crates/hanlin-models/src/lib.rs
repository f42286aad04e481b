//! Architecture tables, per-arch forward passes and a naive reference forward.

pub mod arch;
mod attention;
pub mod bert;
pub mod config;
mod error;
pub mod kv;
pub mod linear;
mod model;
pub mod ops;
pub mod reference;
mod repack;
pub mod weights;

pub use bert::BertModel;
pub use config::{Arch, ModelConfig};
pub use error::{ModelError, Result};
pub use kv::{BlockTables, KvCache, KvPool, KvType};
pub use model::{BatchRow, Logits, Model, Scratch, Trace};
pub use reference::ReferenceModel;
