//! llama.cpp's tokenizer test vectors (`ggml-vocab-*.gguf` with `.inp`/`.out`): every
//! string must encode to exactly the listed ids (no BOS/EOS, special text as plain text).

// Helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use hanlin_tokenizer::Tokenizer;

const SEPARATOR: &str = "\n__ggml_vocab_test__\n";

fn load(path: &Path) -> Tokenizer {
    let gguf = hanlin_gguf::GgufFile::open(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    Tokenizer::from_gguf(&gguf).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The test strings of an `.inp` file (a final separator is optional).
fn inputs(text: &str) -> Vec<&str> {
    let text = text.strip_suffix(SEPARATOR).unwrap_or(text);
    text.split(SEPARATOR).collect()
}

/// The expected ids of an `.out` file, one line per string.
fn outputs(text: &str) -> Vec<Vec<u32>> {
    text.lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect()
}

#[test]
fn all_vocab_vectors_match_llama_cpp() {
    let Some(dir) = common::testdata() else {
        return;
    };
    let dir = dir.join("vocab");
    let mut ggufs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    ggufs.sort();

    let (mut files, mut files_ok, mut lines, mut lines_ok) = (0, 0, 0, 0);
    let mut report = String::new();
    for path in &ggufs {
        let inp = path.with_extension("gguf.inp");
        let out = path.with_extension("gguf.out");
        let tok = load(path);
        if !inp.is_file() {
            continue;
        }
        let texts = std::fs::read_to_string(&inp).unwrap();
        let texts = inputs(&texts);
        let expected = outputs(&std::fs::read_to_string(&out).unwrap());
        assert_eq!(texts.len(), expected.len(), "{inp:?}: inputs vs outputs");
        files += 1;
        let mut bad = 0;
        for (text, want) in texts.iter().zip(&expected) {
            lines += 1;
            let got = tok.encode(text, false, false).unwrap();
            if &got == want {
                lines_ok += 1;
            } else {
                bad += 1;
                if bad <= 3 {
                    report += &format!(
                        "{}: {text:?}\n  want {want:?}\n  got  {got:?}\n",
                        path.file_name().unwrap().to_string_lossy()
                    );
                }
            }
        }
        if bad == 0 {
            files_ok += 1;
        } else {
            report += &format!("{}: {bad} lines differ\n", path.display());
        }
    }
    eprintln!("vocab vectors: {files_ok}/{files} files, {lines_ok}/{lines} lines identical");
    assert!(files >= 13, "only {files} vector files found");
    assert_eq!((files_ok, lines_ok), (files, lines), "\n{report}");
}

#[test]
fn load_only_vocabularies_load() {
    let Some(dir) = common::testdata() else {
        return;
    };
    for name in ["aquila", "baichuan", "gpt-neox", "nomic-bert-moe"] {
        let tok = load(&dir.join(format!("vocab/ggml-vocab-{name}.gguf")));
        assert!(tok.n_vocab() > 1000, "{name}");
        let ids = tok.encode("Hello world", false, false).unwrap();
        assert!(!ids.is_empty(), "{name}");
    }
}
