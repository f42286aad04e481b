//! Store behaviour with local files: manifests, listing, refcounted removal, resolution.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns panic on setup failure by design

mod common;

use common::{files_in, sha256, tiny_gguf};
use hanlin_modelstore::{NoProgress, Store, StoreError};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("home")).unwrap();
    (dir, store)
}

#[test]
fn pull_local_file_writes_blob_and_manifest() {
    let (dir, store) = store();
    let bytes = tiny_gguf("llama", 1, 64);
    let src = dir.path().join("Tiny-Llama.Q8.gguf");
    std::fs::write(&src, &bytes).unwrap();

    let m = store
        .pull(src.to_str().unwrap(), None, &NoProgress)
        .unwrap();
    assert_eq!(m.name, "tiny-llama.q8:latest");
    assert_eq!(m.sha256, sha256(&bytes));
    assert_eq!(m.size, bytes.len() as u64);
    assert_eq!(m.architecture.as_deref(), Some("llama"));
    assert_eq!(m.general_name.as_deref(), Some("Tiny llama 1"));
    assert_eq!(m.file_type.as_deref(), Some("F32"));
    assert_eq!(m.parameter_count, 64);
    assert_eq!(
        m.source,
        std::fs::canonicalize(&src).unwrap().display().to_string()
    );

    let home = store.home();
    let blob = home
        .join("models/blobs")
        .join(format!("sha256-{}", m.sha256));
    assert_eq!(std::fs::read(&blob).unwrap(), bytes);
    assert_eq!(
        files_in(&home.join("models/blobs")),
        vec![format!("sha256-{}", m.sha256)]
    );
    let on_disk: serde_json::Value = serde_json::from_slice(
        &std::fs::read(home.join("models/manifests/tiny-llama.q8/latest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(on_disk["sha256"], m.sha256.as_str());
    assert_eq!(on_disk["size"], bytes.len());

    assert_eq!(store.list().unwrap(), vec![m.clone()]);
    assert_eq!(store.resolve("tiny-llama.q8").unwrap(), blob);
    assert_eq!(store.resolve("TINY-LLAMA.Q8:latest").unwrap(), blob);
}

#[test]
fn remove_keeps_shared_blobs_until_the_last_reference() {
    let (dir, store) = store();
    let bytes = tiny_gguf("qwen2", 2, 32);
    let src = dir.path().join("m.gguf");
    std::fs::write(&src, &bytes).unwrap();
    let a = store
        .pull(src.to_str().unwrap(), Some("team/a:v1"), &NoProgress)
        .unwrap();
    let b = store
        .pull(src.to_str().unwrap(), Some("b"), &NoProgress)
        .unwrap();
    assert_eq!(a.sha256, b.sha256);
    let blob = store.blob_path(&a.sha256);

    let names: Vec<String> = store.list().unwrap().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["b:latest", "team/a:v1"]);

    let r = store.remove("team/a:v1", &NoProgress).unwrap();
    assert!(!r.blob_deleted);
    assert!(blob.is_file());
    // The empty namespace directory is tidied away.
    assert!(!store.home().join("models/manifests/team").exists());

    let r = store.remove("b", &NoProgress).unwrap();
    assert!(r.blob_deleted);
    assert!(!blob.exists());
    assert!(store.list().unwrap().is_empty());
    assert!(matches!(
        store.remove("b", &NoProgress),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn repulling_a_name_with_new_content_frees_the_old_blob() {
    let (dir, store) = store();
    let src = dir.path().join("m.gguf");
    std::fs::write(&src, tiny_gguf("llama", 1, 32)).unwrap();
    let old = store
        .pull(src.to_str().unwrap(), Some("m"), &NoProgress)
        .unwrap();
    std::fs::write(&src, tiny_gguf("llama", 2, 32)).unwrap();
    let new = store
        .pull(src.to_str().unwrap(), Some("m"), &NoProgress)
        .unwrap();
    assert_ne!(old.sha256, new.sha256);
    assert!(!store.blob_path(&old.sha256).exists());
    assert!(store.blob_path(&new.sha256).is_file());
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn resolve_prefers_paths_then_names_then_catalog_aliases() {
    let (dir, store) = store();
    let src = dir.path().join("g.gguf");
    std::fs::write(&src, tiny_gguf("gemma3", 3, 32)).unwrap();
    // A path always wins, even when it is not in the store.
    assert_eq!(store.resolve(src.to_str().unwrap()).unwrap(), src);

    let m = store
        .pull(src.to_str().unwrap(), Some("gemma3:270m"), &NoProgress)
        .unwrap();
    let blob = store.blob_path(&m.sha256);
    for name in ["gemma3:270m", "gemma3", "gemma3:latest"] {
        assert_eq!(store.resolve(name).unwrap(), blob, "{name}");
    }
    // An explicit gemma3:latest shadows the alias.
    let other = dir.path().join("o.gguf");
    std::fs::write(&other, tiny_gguf("gemma3", 4, 32)).unwrap();
    let latest = store
        .pull(other.to_str().unwrap(), Some("gemma3"), &NoProgress)
        .unwrap();
    assert_eq!(
        store.resolve("gemma3").unwrap(),
        store.blob_path(&latest.sha256)
    );

    match store.resolve("nope:1b") {
        Err(e @ StoreError::NotFound { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("nope:1b") && msg.contains("gemma3:270m"),
                "{msg}"
            );
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        store.resolve("./missing/dir/x.gguf"),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn show_summarises_the_file() {
    let (dir, store) = store();
    let src = dir.path().join("s.gguf");
    std::fs::write(&src, tiny_gguf("llama", 5, 64)).unwrap();
    store
        .pull(src.to_str().unwrap(), None, &NoProgress)
        .unwrap();
    let info = store.show("s").unwrap();
    assert_eq!(info.manifest.name, "s:latest");
    assert_eq!(info.gguf.context_length, Some(256));
    assert_eq!(info.gguf.tensor_count, 1);
    assert_eq!(info.path, store.blob_path(&info.manifest.sha256));
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["manifest"]["architecture"], "llama");

    std::fs::remove_file(&info.path).unwrap();
    assert!(matches!(
        store.show("s"),
        Err(StoreError::MissingBlob { .. })
    ));
    assert!(matches!(
        store.resolve("s"),
        Err(StoreError::MissingBlob { .. })
    ));
}

#[test]
fn a_non_gguf_file_is_rejected_and_leaves_nothing_behind() {
    let (dir, store) = store();
    let src = dir.path().join("notes.gguf");
    std::fs::write(&src, b"definitely not GGUF, just text").unwrap();
    let err = store
        .pull(src.to_str().unwrap(), None, &NoProgress)
        .unwrap_err();
    assert!(matches!(err, StoreError::NotGguf { .. }), "{err:?}");
    assert!(err.to_string().contains("not a valid GGUF"), "{err}");
    assert!(files_in(&store.home().join("models/blobs")).is_empty());
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn bad_names_and_sources_are_clear_errors() {
    let (dir, store) = store();
    let src = dir.path().join("x.gguf");
    std::fs::write(&src, tiny_gguf("llama", 1, 32)).unwrap();
    let e = store
        .pull(src.to_str().unwrap(), Some("../evil"), &NoProgress)
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidName { .. }), "{e:?}");
    let e = store.pull("no-such-thing", None, &NoProgress).unwrap_err();
    assert!(matches!(e, StoreError::InvalidSource { .. }), "{e:?}");
}

#[test]
fn corrupt_manifests_are_skipped_by_list() {
    let (dir, store) = store();
    let src = dir.path().join("ok.gguf");
    std::fs::write(&src, tiny_gguf("llama", 1, 32)).unwrap();
    store
        .pull(src.to_str().unwrap(), None, &NoProgress)
        .unwrap();
    let manifests = store.home().join("models/manifests");
    std::fs::create_dir_all(manifests.join("broken")).unwrap();
    std::fs::write(manifests.join("broken/latest.json"), b"{not json").unwrap();
    std::fs::write(manifests.join("stray.txt"), b"ignored").unwrap();
    let names: Vec<String> = store.list().unwrap().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["ok:latest"]);
    assert!(matches!(
        store.get("broken"),
        Err(StoreError::BadManifest { .. })
    ));
}

#[test]
fn concurrent_pulls_of_one_model_agree() {
    let (dir, store) = store();
    let bytes = tiny_gguf("llama", 9, 200_000);
    let src = dir.path().join("big.gguf");
    std::fs::write(&src, &bytes).unwrap();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let store = store.clone();
                let src = src.clone();
                // Half the threads use a second name for the same content.
                let name = if i % 2 == 0 { "big" } else { "big:copy" };
                s.spawn(move || store.pull(src.to_str().unwrap(), Some(name), &NoProgress))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results {
        assert_eq!(r.as_ref().unwrap().sha256, sha256(&bytes));
    }
    let blobs = files_in(&store.home().join("models/blobs"));
    assert_eq!(
        blobs,
        vec![format!("sha256-{}", sha256(&bytes))],
        "one blob, no temporaries"
    );
    assert_eq!(
        std::fs::read(store.blob_path(&sha256(&bytes))).unwrap(),
        bytes
    );
    assert_eq!(store.list().unwrap().len(), 2);
}
