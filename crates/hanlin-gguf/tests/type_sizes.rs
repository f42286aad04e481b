//! GgmlType ids, block sizes and block byte sizes against gguf-py's GGML_QUANT_SIZES
//! (fixture printed by scripts/ref/gguf_type_sizes.py).

use hanlin_gguf::{GgmlType, ALL_TYPES};

/// Where gguf-py's table is known to be stale, with ggml's own number and the evidence.
/// Q8_1 was `float d, s` long ago; ggml-common.h now has `ggml_half d, s` and
/// `static_assert(sizeof(block_q8_1) == 2*sizeof(ggml_half) + QK8_1)`, i.e. 36 bytes.
/// Q8_1 never appears in files (it is the activation format for dot products).
const GGUF_PY_STALE: &[(&str, usize)] = &[("Q8_1", 36)];

struct Row {
    name: String,
    id: u32,
    block: usize,
    size: usize,
}

fn fixture() -> Vec<Row> {
    let text = include_str!("../testdata/ggml_type_sizes.txt");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 4, "bad fixture line {l:?}");
            Row {
                name: f[0].to_string(),
                id: f[1].parse().expect("id"),
                block: f[2].parse().expect("block size"),
                size: f[3].parse().expect("type size"),
            }
        })
        .collect()
}

#[test]
fn every_gguf_py_type_is_known_with_the_same_sizes() {
    let rows = fixture();
    assert!(rows.len() >= 34, "fixture has only {} types", rows.len());
    for row in &rows {
        let t = GgmlType::from_id(row.id).unwrap_or_else(|| {
            panic!("gguf-py type {} (id {}) is unknown to us", row.name, row.id)
        });
        assert_eq!(t.name(), row.name, "id {}", row.id);
        assert_eq!(t.block_size(), row.block, "{} block size", row.name);
        match GGUF_PY_STALE.iter().find(|(n, _)| *n == row.name) {
            Some(&(_, ggml_size)) => {
                assert_ne!(
                    row.size, ggml_size,
                    "gguf-py fixed {}; drop the override",
                    row.name
                );
                assert_eq!(t.type_size(), ggml_size, "{} type size", row.name);
            }
            None => assert_eq!(t.type_size(), row.size, "{} type size", row.name),
        }
    }
}

#[test]
fn we_know_no_type_gguf_py_lacks() {
    let rows = fixture();
    for t in ALL_TYPES {
        assert!(
            rows.iter().any(|r| r.id == t.id()),
            "{t} (id {}) is not in gguf-py",
            t.id()
        );
    }
    let mut ids: Vec<u32> = ALL_TYPES.iter().map(|t| t.id()).collect();
    let n = ids.len();
    ids.dedup();
    assert_eq!(
        ids.len(),
        n,
        "ALL_TYPES must be in id order without repeats"
    );
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ALL_TYPES must be in id order"
    );
}

#[test]
fn retired_ids_are_rejected() {
    // Q4_2, Q4_3 and the repacked Q4_0_4_4 … IQ4_NL_8_8 ids were removed from ggml.
    for id in [4, 5, 31, 32, 33, 36, 37, 38, 42, u32::MAX] {
        assert_eq!(GgmlType::from_id(id), None, "id {id}");
    }
}

#[test]
fn bytes_for_whole_blocks_only() {
    assert_eq!(GgmlType::Q4_K.bytes_for(512), Some(288));
    assert_eq!(GgmlType::Q4_K.bytes_for(300), None);
    assert_eq!(GgmlType::F32.bytes_for(u64::MAX), None, "overflow");
    assert_eq!(GgmlType::NVFP4.bytes_for(128), Some(72));
    assert_eq!(GgmlType::Q1_0.bytes_for(128), Some(18));
}
