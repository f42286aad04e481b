//! Manifests (what the store knows about a model) and the GGUF facts they are built from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hanlin_gguf::{GgufFile, Value};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// Version of the manifest layout written by this crate.
pub const MANIFEST_SCHEMA: u32 = 1;

/// One model in the store: `models/manifests/<name>/<tag>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version ([`MANIFEST_SCHEMA`]).
    pub schema_version: u32,
    /// `name:tag`.
    pub name: String,
    /// Where the file came from (a path, `hf:…`, `pypi:…`, `catalog:…`).
    pub source: String,
    /// sha256 of the GGUF file, which is also its blob name.
    pub sha256: String,
    /// File size in bytes.
    pub size: u64,
    /// `general.architecture`.
    pub architecture: Option<String>,
    /// `general.name`.
    pub general_name: Option<String>,
    /// Quantisation / file type (`Q4_K_M`, `F16` …).
    pub file_type: Option<String>,
    /// Total tensor elements, i.e. the parameter count.
    pub parameter_count: u64,
    /// When the manifest was written, RFC 3339 UTC.
    pub created: String,
}

impl Manifest {
    /// The blob file name, `sha256-<hex>`.
    pub fn blob_name(&self) -> String {
        format!("sha256-{}", self.sha256)
    }
}

/// What `show` reports beyond the manifest.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GgufSummary {
    /// GGUF format version.
    pub version: u32,
    /// Number of tensors.
    pub tensor_count: usize,
    /// Number of metadata keys.
    pub metadata_count: usize,
    /// `general.size_label` (`270M` …).
    pub size_label: Option<String>,
    /// `<arch>.context_length`.
    pub context_length: Option<u64>,
    /// `<arch>.embedding_length`.
    pub embedding_length: Option<u64>,
    /// `<arch>.block_count`.
    pub block_count: Option<u64>,
    /// `<arch>.attention.head_count`.
    pub head_count: Option<u64>,
    /// `<arch>.attention.head_count_kv`.
    pub head_count_kv: Option<u64>,
    /// `tokenizer.ggml.model`.
    pub tokenizer: Option<String>,
    /// Length of `tokenizer.ggml.tokens`.
    pub vocab_size: Option<usize>,
    /// Whether `tokenizer.chat_template` is present.
    pub has_chat_template: bool,
    /// Tensor count per element type.
    pub tensor_types: BTreeMap<String, usize>,
}

/// `show`'s answer: the manifest, where the file is, and a summary of its contents.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelInfo {
    /// The manifest.
    pub manifest: Manifest,
    /// Path of the blob.
    pub path: PathBuf,
    /// Summary of the GGUF file.
    pub gguf: GgufSummary,
}

/// Facts read from a GGUF file for a manifest.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GgufFacts {
    pub architecture: Option<String>,
    pub general_name: Option<String>,
    pub file_type: Option<String>,
    pub parameter_count: u64,
}

/// Opens `path` as GGUF; `origin` names the file in errors.
pub(crate) fn open_gguf(path: &Path, origin: &str) -> Result<GgufFile> {
    GgufFile::open(path).map_err(|source| StoreError::NotGguf {
        origin: origin.to_string(),
        source,
    })
}

fn str_key(f: &GgufFile, key: &str) -> Option<String> {
    f.get_str(key).ok().flatten().map(str::to_string)
}

fn u64_key(f: &GgufFile, key: &str) -> Option<u64> {
    f.get_u64(key).ok().flatten()
}

/// Reads the manifest facts out of an opened file.
pub(crate) fn facts(f: &GgufFile) -> GgufFacts {
    let file_type = hanlin_gguf::quantization_label(f);
    GgufFacts {
        architecture: str_key(f, "general.architecture"),
        general_name: str_key(f, "general.name"),
        file_type,
        parameter_count: f.tensors().iter().map(|t| t.n_elements()).sum(),
    }
}

/// Reads the `show` summary out of an opened file.
pub(crate) fn summary(f: &GgufFile) -> GgufSummary {
    let arch = str_key(f, "general.architecture").unwrap_or_default();
    let arch_key = |k: &str| u64_key(f, &format!("{arch}.{k}"));
    let mut tensor_types = BTreeMap::new();
    for t in f.tensors() {
        *tensor_types
            .entry(t.ggml_type.name().to_string())
            .or_insert(0) += 1;
    }
    GgufSummary {
        version: f.version(),
        tensor_count: f.tensors().len(),
        metadata_count: f.metadata().len(),
        size_label: str_key(f, "general.size_label"),
        context_length: arch_key("context_length"),
        embedding_length: arch_key("embedding_length"),
        block_count: arch_key("block_count"),
        head_count: arch_key("attention.head_count"),
        head_count_kv: arch_key("attention.head_count_kv"),
        tokenizer: str_key(f, "tokenizer.ggml.model"),
        vocab_size: f
            .get("tokenizer.ggml.tokens")
            .and_then(Value::as_array)
            .map(<[Value]>::len),
        has_chat_template: f.get("tokenizer.chat_template").is_some(),
        tensor_types,
    }
}

/// A byte count with a decimal unit: `253 MB`.
pub fn format_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v >= 10.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hanlin_gguf::{format_params, GgmlType, GgufWriter};

    fn tiny(file_type: Option<u32>) -> GgufFile {
        let mut w = GgufWriter::new();
        w.set("general.architecture", Value::String("llama".into()));
        w.set("general.name", Value::String("Tiny".into()));
        w.set("llama.context_length", Value::U32(128));
        w.set(
            "tokenizer.ggml.tokens",
            Value::Array(
                hanlin_gguf::ValueType::String,
                vec![Value::String("a".into()); 3],
            ),
        );
        if let Some(t) = file_type {
            w.set("general.file_type", Value::U32(t));
        }
        w.add_tensor("a", &[32, 2], GgmlType::Q8_0, vec![1u8; 2 * 34])
            .unwrap();
        w.add_tensor("b", &[4], GgmlType::F32, vec![0u8; 16])
            .unwrap();
        GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap()
    }

    #[test]
    fn facts_from_metadata() {
        let f = facts(&tiny(Some(15)));
        assert_eq!(f.architecture.as_deref(), Some("llama"));
        assert_eq!(f.general_name.as_deref(), Some("Tiny"));
        assert_eq!(f.file_type.as_deref(), Some("Q4_K_M"));
        assert_eq!(f.parameter_count, 68);
    }

    #[test]
    fn file_type_falls_back_to_dominant_tensor_type() {
        assert_eq!(facts(&tiny(None)).file_type.as_deref(), Some("Q8_0"));
        assert_eq!(facts(&tiny(Some(999))).file_type.as_deref(), Some("Q8_0"));
    }

    #[test]
    fn summary_reads_arch_keys() {
        let s = summary(&tiny(None));
        assert_eq!(s.context_length, Some(128));
        assert_eq!(s.vocab_size, Some(3));
        assert_eq!(s.tensor_count, 2);
        assert_eq!(s.tensor_types.get("Q8_0"), Some(&1));
        assert!(!s.has_chat_template);
    }

    #[test]
    fn manifest_json_round_trip() {
        let m = Manifest {
            schema_version: MANIFEST_SCHEMA,
            name: "x:latest".into(),
            source: "/tmp/x.gguf".into(),
            sha256: "ab".repeat(32),
            size: 10,
            architecture: Some("llama".into()),
            general_name: None,
            file_type: Some("F16".into()),
            parameter_count: 5,
            created: "2025-01-02T03:04:05Z".into(),
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), m);
        assert_eq!(m.blob_name(), format!("sha256-{}", "ab".repeat(32)));
    }

    #[test]
    fn formatting() {
        assert_eq!(format_params(268_098_176), "268M");
        assert_eq!(format_params(1_540_000_000), "1.5B");
        assert_eq!(format_params(68), "68");
        assert_eq!(format_size(253_113_024), "253 MB");
        assert_eq!(format_size(1_500), "1.5 KB");
        assert_eq!(format_size(12), "12 B");
    }
}
