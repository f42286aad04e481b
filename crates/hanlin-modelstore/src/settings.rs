//! Store settings that come from the environment at the CLI layer and from code in tests.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Result, StoreError};

/// The public Hugging Face endpoint.
pub const DEFAULT_HF_ENDPOINT: &str = "https://huggingface.co";

/// How the store reaches the outside world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Base URL of the Hugging Face hub (or a mirror).
    pub hf_endpoint: String,
    /// Token sent as `Authorization: Bearer` to the hub (never to its CDN).
    pub hf_token: Option<String>,
    /// The Python executable whose pip downloads wheels.
    pub python: String,
    /// Download attempts that make no progress before giving up.
    pub download_attempts: u32,
    /// Delay before the first download retry; doubled on each further one.
    pub retry_delay: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            hf_endpoint: DEFAULT_HF_ENDPOINT.to_string(),
            hf_token: None,
            python: "python3".to_string(),
            download_attempts: 8,
            retry_delay: Duration::from_secs(1),
        }
    }
}

fn env_nonempty(key: &str) -> Option<String> {
    std::env::var(key)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl Settings {
    /// Defaults overridden by `HF_ENDPOINT`, `HF_TOKEN` (or `HUGGING_FACE_HUB_TOKEN`) and
    /// `HANLIN_PYTHON`.
    pub fn from_env() -> Self {
        let d = Settings::default();
        Settings {
            hf_endpoint: env_nonempty("HF_ENDPOINT").unwrap_or(d.hf_endpoint),
            hf_token: env_nonempty("HF_TOKEN").or_else(|| env_nonempty("HUGGING_FACE_HUB_TOKEN")),
            python: env_nonempty("HANLIN_PYTHON").unwrap_or(d.python),
            ..d
        }
    }
}

/// `$HANLIN_HOME`, else `~/.hanlin`.
pub fn default_home() -> Result<PathBuf> {
    if let Some(h) = env_nonempty("HANLIN_HOME") {
        return Ok(PathBuf::from(h));
    }
    let home = env_nonempty("HOME")
        .or_else(|| env_nonempty("USERPROFILE"))
        .ok_or(StoreError::NoHome)?;
    Ok(PathBuf::from(home).join(".hanlin"))
}
