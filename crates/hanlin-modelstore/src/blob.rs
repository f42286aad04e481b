//! Staging files on their way into `blobs/`: hashing copies, and advisory locks.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tempfile::TempPath;

use crate::error::{IoContext, Result, StoreError};
use crate::progress::Progress;

const BUF: usize = 1 << 20;

/// A complete file in the blobs directory that is not yet a blob; deleted on drop.
#[derive(Debug)]
pub(crate) struct Staged {
    /// The temporary file.
    pub path: TempPath,
    /// Its sha256, lower-case hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Which side of a copy failed: the source is blamed differently from the store's disk.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// Reading the source failed.
    Read(std::io::Error),
    /// Writing the destination failed.
    Write(std::io::Error),
}

/// Copies `r` into `w` while hashing, reporting `base + copied` to `progress`.
pub(crate) fn copy_hashed(
    r: &mut impl Read,
    w: &mut impl Write,
    hasher: &mut Sha256,
    progress: &dyn Progress,
    base: u64,
) -> std::result::Result<u64, CopyError> {
    let mut buf = vec![0u8; BUF];
    let mut n_total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(n_total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        w.write_all(&buf[..n]).map_err(CopyError::Write)?;
        hasher.update(&buf[..n]);
        n_total += n as u64;
        progress.set(base + n_total);
    }
}

/// Hashes the first `len` bytes of `path` into `hasher`.
pub(crate) fn hash_prefix(
    path: &Path,
    len: u64,
    hasher: &mut Sha256,
    progress: &dyn Progress,
) -> Result<()> {
    let f = File::open(path).ctx("read", path)?;
    match copy_hashed(&mut f.take(len), &mut std::io::sink(), hasher, progress, 0) {
        Ok(_) => Ok(()),
        Err(CopyError::Read(e) | CopyError::Write(e)) => Err(e).ctx("read", path),
    }
}

/// A new empty temporary file inside `dir` (same filesystem as the blobs, so rename works).
pub(crate) fn temp_in(dir: &Path) -> Result<(File, TempPath)> {
    let f = tempfile::Builder::new()
        .prefix("tmp-")
        .tempfile_in(dir)
        .ctx("create a temporary file in", dir)?;
    Ok(f.into_parts())
}

/// Copies a local file into a staged temp file, hashing as it goes.
pub(crate) fn stage_copy(src: &Path, dir: &Path, progress: &dyn Progress) -> Result<Staged> {
    let mut input = File::open(src).ctx("open", src)?;
    let total = input.metadata().ctx("stat", src)?.len();
    let (file, path) = temp_in(dir)?;
    progress.start("copying", Some(total));
    let mut out = std::io::BufWriter::with_capacity(BUF, file);
    let mut hasher = Sha256::new();
    let copied = copy_hashed(&mut input, &mut out, &mut hasher, progress, 0);
    progress.finish();
    let size = match copied {
        Ok(n) => n,
        Err(CopyError::Read(e)) => return Err(e).ctx("read", src),
        Err(CopyError::Write(e)) => return Err(e).ctx("write", &path),
    };
    let file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .ctx("write", &path)?;
    file.sync_all().ctx("sync", &path)?;
    Ok(Staged {
        path,
        sha256: hex::encode(hasher.finalize()),
        size,
    })
}

/// Makes a store file world-readable like any downloaded file (temp files start as 0600).
pub(crate) fn make_readable(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .ctx("set permissions of", path)?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes `bytes` to `path` atomically: temp file in the same directory, fsync, rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).ctx("create", dir)?;
    let (mut file, tmp) = temp_in(dir)?;
    file.write_all(bytes).ctx("write", &tmp)?;
    file.sync_all().ctx("sync", &tmp)?;
    drop(file);
    make_readable(&tmp)?;
    tmp.persist(path).map_err(|e| StoreError::Io {
        action: "rename into",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// An exclusive advisory lock held until dropped.
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
    path: PathBuf,
}

impl FileLock {
    /// Takes the lock at `path`, telling `progress` when another process holds it.
    pub fn acquire(path: &Path, waiting_for: &str, progress: &dyn Progress) -> Result<FileLock> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).ctx("create", dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .ctx("open lock file", path)?;
        if !fs4::fs_std::FileExt::try_lock_exclusive(&file).ctx("lock", path)? {
            progress.note(&format!(
                "waiting for another hanlin process ({waiting_for}) …"
            ));
            fs4::fs_std::FileExt::lock_exclusive(&file).ctx("lock", path)?;
        }
        tracing::debug!(path = %path.display(), "lock taken");
        Ok(FileLock {
            _file: file,
            path: path.to_path_buf(),
        })
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Closing the descriptor releases the lock; the file stays so waiters keep their inode.
        tracing::debug!(path = %self.path.display(), "lock released");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;

    #[test]
    fn stage_copy_hashes_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let staged = stage_copy(&src, dir.path(), &NoProgress).unwrap();
        assert_eq!(staged.size, data.len() as u64);
        assert_eq!(staged.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(std::fs::read(&staged.path).unwrap(), data);
        let p = staged.path.to_path_buf();
        drop(staged);
        assert!(!p.exists(), "a dropped staged file is deleted");
    }

    #[test]
    fn write_atomic_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o644
            );
        }
        assert_eq!(
            std::fs::read_dir(p.parent().unwrap()).unwrap().count(),
            1,
            "no temp files left"
        );
    }

    #[test]
    fn lock_excludes_a_second_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let held = FileLock::acquire(&p, "test", &NoProgress).unwrap();
        let other = File::options().write(true).open(&p).unwrap();
        assert!(!fs4::fs_std::FileExt::try_lock_exclusive(&other).unwrap());
        drop(held);
        assert!(fs4::fs_std::FileExt::try_lock_exclusive(&other).unwrap());
    }
}
