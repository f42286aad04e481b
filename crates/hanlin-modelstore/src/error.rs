//! Errors of the model store; each says what failed, where, and what to do about it.

use std::path::PathBuf;

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed (disk full, permissions …).
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("create", "write", "rename" …).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// No home directory could be found to put the store in.
    #[error("cannot locate a home directory for the model store; set HANLIN_HOME")]
    NoHome,
    /// A model name that does not follow `name[:tag]`.
    #[error("invalid model name {name:?}: {why}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// A pull source that cannot be understood.
    #[error("invalid source {spec:?}: {why}")]
    InvalidSource {
        /// The source as given.
        spec: String,
        /// What is wrong with it.
        why: String,
    },
    /// A name that is not in the store.
    #[error("model {name} is not in the store{}", available_hint(available))]
    NotFound {
        /// The (tag-completed) name looked up.
        name: String,
        /// Names that are in the store.
        available: Vec<String>,
    },
    /// A manifest points at a blob that is gone.
    #[error("model {name}: blob {} is missing; pull the model again", path.display())]
    MissingBlob {
        /// Model name.
        name: String,
        /// Expected blob path.
        path: PathBuf,
    },
    /// A manifest that cannot be parsed.
    #[error("corrupt manifest {}: {source}", path.display())]
    BadManifest {
        /// Manifest path.
        path: PathBuf,
        /// Parse error.
        source: serde_json::Error,
    },
    /// The fetched file is not a readable GGUF file.
    #[error("{origin} is not a valid GGUF file: {source}")]
    NotGguf {
        /// Where the file came from.
        origin: String,
        /// Why the GGUF reader rejected it.
        source: hanlin_gguf::GgufError,
    },
    /// The content hash differs from the one published for it.
    #[error("sha256 mismatch for {origin}: expected {expected}, got {actual} (the bad file was deleted)")]
    ShaMismatch {
        /// Where the file came from.
        origin: String,
        /// Published hash.
        expected: String,
        /// Hash of what arrived.
        actual: String,
    },
    /// The content size differs from the one published for it.
    #[error("size mismatch for {origin}: expected {expected} bytes, got {actual} (the bad file was deleted)")]
    SizeMismatch {
        /// Where the file came from.
        origin: String,
        /// Published size.
        expected: u64,
        /// Size of what arrived.
        actual: u64,
    },
    /// The server answered with an error status.
    #[error("HTTP {status} for {url}: {hint}")]
    HttpStatus {
        /// Requested URL.
        url: String,
        /// Status code.
        status: u16,
        /// What it likely means.
        hint: String,
    },
    /// The download failed even after retries.
    #[error("download of {url} failed: {message}")]
    Download {
        /// Requested URL.
        url: String,
        /// Last failure.
        message: String,
    },
    /// Python or its pip module is not usable.
    #[error("cannot run pip with {python:?}: {why}; install Python 3 with pip, or point HANLIN_PYTHON at one")]
    PipMissing {
        /// The Python command tried.
        python: String,
        /// What went wrong.
        why: String,
    },
    /// pip reported that a package (or version) does not exist.
    #[error("PyPI package not found: {packages}: {detail}")]
    PackageNotFound {
        /// The requested packages.
        packages: String,
        /// pip's own words.
        detail: String,
    },
    /// pip failed for another reason (network, index …).
    #[error("pip download of {packages} failed ({status}): {detail}")]
    PipFailed {
        /// The requested packages.
        packages: String,
        /// Exit status.
        status: String,
        /// The end of pip's error output.
        detail: String,
    },
    /// A wheel that does not contain what it should.
    #[error("wheel {wheel}: {why}")]
    Wheel {
        /// Wheel file or package name.
        wheel: String,
        /// What is wrong.
        why: String,
    },
}

fn available_hint(available: &[String]) -> String {
    if available.is_empty() {
        " (the store is empty)".to_string()
    } else {
        format!(" (available: {})", available.join(", "))
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Attaches the action and path to an I/O error.
pub(crate) trait IoContext<T> {
    /// Maps an `io::Error` into [`StoreError::Io`].
    fn ctx(self, action: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::result::Result<T, std::io::Error> {
    fn ctx(self, action: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            action,
            path: path.to_path_buf(),
            source,
        })
    }
}
