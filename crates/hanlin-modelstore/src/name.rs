//! Model names: `name[:tag]`, where a missing tag means `latest`.
//!
//! Names are case-insensitive (stored lower-case) and become directory names, so they are
//! restricted to characters that are safe in paths on every platform.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Result, StoreError};

/// The tag a name gets when none is written.
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 200;
const MAX_TAG_LEN: usize = 128;

/// A parsed, normalised model name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModelName {
    name: String,
    tag: String,
}

impl ModelName {
    /// Parses `name[:tag]`; `name` may have `/`-separated namespace segments.
    pub fn parse(input: &str) -> Result<Self> {
        let s = input.trim().to_ascii_lowercase();
        let bad = |why: &str| StoreError::InvalidName {
            name: input.to_string(),
            why: why.into(),
        };
        // The tag separator is the first ':' after the last '/', so namespaces stay intact.
        let last_slash = s.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match s[last_slash..].find(':') {
            Some(i) => (&s[..last_slash + i], &s[last_slash + i + 1..]),
            None => (s.as_str(), DEFAULT_TAG),
        };
        if name.is_empty() {
            return Err(bad("the name is empty"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(bad(&format!("longer than {MAX_NAME_LEN} characters")));
        }
        for seg in name.split('/') {
            check_segment(seg).map_err(|why| bad(&format!("segment {seg:?} {why}")))?;
        }
        if tag.len() > MAX_TAG_LEN {
            return Err(bad(&format!("tag longer than {MAX_TAG_LEN} characters")));
        }
        check_segment(tag).map_err(|why| bad(&format!("tag {tag:?} {why}")))?;
        Ok(ModelName {
            name: name.to_string(),
            tag: tag.to_string(),
        })
    }

    /// Builds a valid name from free text (a file stem, a package name), tag `latest`.
    pub fn from_stem(stem: &str) -> Self {
        let mut name: String = stem
            .to_ascii_lowercase()
            .chars()
            .map(|c| if is_name_char(c) { c } else { '-' })
            .collect();
        let start = name
            .find(|c: char| c.is_ascii_alphanumeric())
            .unwrap_or(name.len());
        name.drain(..start);
        name.truncate(MAX_NAME_LEN);
        if name.is_empty() {
            name = "model".to_string();
        }
        ModelName {
            name,
            tag: DEFAULT_TAG.to_string(),
        }
    }

    /// The part before the tag.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The manifest's path relative to the manifests directory: `<name>/<tag>.json`.
    pub(crate) fn manifest_rel_path(&self) -> PathBuf {
        let mut p: PathBuf = self.name.split('/').collect();
        p.push(format!("{}.json", self.tag));
        p
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')
}

/// Segments must start alphanumeric so that `.`, `..` and hidden files are impossible.
fn check_segment(seg: &str) -> std::result::Result<(), &'static str> {
    match seg.chars().next() {
        None => Err("is empty"),
        Some(c) if !c.is_ascii_alphanumeric() => Err("must start with a letter or digit"),
        _ if !seg.chars().all(is_name_char) => {
            Err("may only contain letters, digits, '.', '-' and '_'")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_name_gets_latest() {
        let n = ModelName::parse("gemma3").unwrap();
        assert_eq!((n.name(), n.tag()), ("gemma3", "latest"));
        assert_eq!(n.to_string(), "gemma3:latest");
    }

    #[test]
    fn tag_and_case_and_whitespace() {
        let n = ModelName::parse("  Gemma3:270M ").unwrap();
        assert_eq!(n.to_string(), "gemma3:270m");
    }

    #[test]
    fn namespaces_keep_colons_out_of_the_name() {
        let n = ModelName::parse("hf.co/unsloth/qwen3-0.6b:q4_k_m").unwrap();
        assert_eq!(n.name(), "hf.co/unsloth/qwen3-0.6b");
        assert_eq!(n.tag(), "q4_k_m");
        assert_eq!(
            n.manifest_rel_path(),
            PathBuf::from("hf.co")
                .join("unsloth")
                .join("qwen3-0.6b")
                .join("q4_k_m.json")
        );
    }

    #[test]
    fn rejects_unsafe_or_empty_names() {
        for bad in [
            "", ":tag", "a:", "../x", "a/../b", "a//b", "/abs", ".hidden", "a b", "a:b:c", "a:-x",
            "név",
        ] {
            assert!(ModelName::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = "a".repeat(201);
        assert!(ModelName::parse(&long).is_err());
    }

    #[test]
    fn error_names_the_input() {
        let e = ModelName::parse("a b").unwrap_err().to_string();
        assert!(e.contains("\"a b\""), "{e}");
    }

    #[test]
    fn from_stem_sanitises() {
        assert_eq!(
            ModelName::from_stem("Gemma-3-270M-Q4_K_M").to_string(),
            "gemma-3-270m-q4_k_m:latest"
        );
        assert_eq!(
            ModelName::from_stem("--my model (v2)").to_string(),
            "my-model--v2-:latest"
        );
        assert_eq!(ModelName::from_stem("***").to_string(), "model:latest");
        // Whatever from_stem builds must parse back to itself.
        for s in ["x y", "._a", "Ü-ber", "q:4"] {
            let n = ModelName::from_stem(s);
            assert_eq!(ModelName::parse(&n.to_string()).unwrap(), n);
        }
    }
}
