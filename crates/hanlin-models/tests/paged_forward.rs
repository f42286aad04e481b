//! `Model::forward_paged` through scrambled block tables gives the same logits, bit for bit, as
//! `forward_batch` over contiguous caches: chunked prefill and decode, f16 and q8_0, GQA, with
//! two sequences reading a shared prefix block.

#![allow(clippy::unwrap_used)]

use hanlin_gguf::GgufFile;
use hanlin_models::{BatchRow, BlockTables, KvType, Model};

/// Rows for `seqs[i]` tokens `from..to` (prefill chunk), logits on the last one.
fn rows(seqs: &[Vec<u32>], ranges: &[(usize, usize)]) -> Vec<BatchRow> {
    let mut out = Vec::new();
    for (i, &(from, to)) in ranges.iter().enumerate() {
        for (pos, &token) in seqs[i].iter().enumerate().take(to).skip(from) {
            out.push(BatchRow {
                token,
                seq: i,
                pos,
                logits: pos + 1 == to,
            });
        }
    }
    out
}

#[test]
fn paged_forward_equals_contiguous_forward() {
    let Some(vocab) = hanlin_test_support::stories_vocab() else {
        return;
    };
    let shape = &hanlin_test_support::shapes()[0];
    let model = Model::from_gguf(
        GgufFile::from_bytes(hanlin_test_support::synthetic_f16(shape, &vocab, 7)).unwrap(),
    )
    .unwrap();
    let block = 5;
    let shared = 2 * block;
    let a: Vec<u32> = (0..41).map(|i| (i * 37 % 500 + 3) as u32).collect();
    // The second sequence starts like the first for two blocks.
    let b: Vec<u32> = a[..shared]
        .iter()
        .copied()
        .chain((0..23).map(|i| (i * 11 % 400 + 9) as u32))
        .collect();
    let seqs = [a, b];
    // Prefill in uneven chunks, then two decode steps side by side.
    let steps: Vec<Vec<(usize, usize)>> = vec![
        vec![(0, 13), (shared, 14)],
        vec![(13, 38), (14, 31)],
        vec![(38, 39), (31, 32)],
        vec![(39, 40), (32, 33)],
    ];
    for ty in [KvType::F16, KvType::Q8_0] {
        let mut s = model.scratch(16);
        let mut c0 = model.kv_cache_typed(64, ty).unwrap();
        let mut c1 = model.kv_cache_typed(64, ty).unwrap();
        // The shared prefix runs once per contiguous cache ...
        let prefix = rows(&seqs, &[(0, 0), (0, shared)]);
        model
            .forward_batch(&prefix, &mut [&mut c0, &mut c1], &mut s)
            .unwrap();
        // ... and once for both paged sequences, whose first blocks are the same ids.
        let n_blocks = 20;
        let mut pool = model.kv_pool(block, n_blocks, ty).unwrap();
        let mut tables = BlockTables::new(2, 64usize.div_ceil(block));
        let mut ids = (0..n_blocks as u32)
            .rev()
            .map(|i| (i * 3) % n_blocks as u32);
        for k in 0..seqs[0].len().div_ceil(block) {
            tables.push(0, ids.next().unwrap());
            if k * block < shared {
                tables.push(1, tables.seq(0)[k]);
            }
        }
        for _ in shared / block..seqs[1].len().div_ceil(block) {
            tables.push(1, ids.next().unwrap());
        }
        let mut t1_only = BlockTables::new(1, 64usize.div_ceil(block));
        for &id in tables.seq(1) {
            t1_only.push(0, id);
        }
        let prefix1 = rows(&seqs[1..], &[(0, shared)]);
        model
            .forward_paged(&prefix1, &mut pool, &t1_only, &mut s)
            .unwrap();
        for step in &steps {
            let r = rows(&seqs, step);
            let want = model
                .forward_batch(&r, &mut [&mut c0, &mut c1], &mut s)
                .unwrap()
                .to_vec();
            let got = model
                .forward_paged(&r, &mut pool, &tables, &mut s)
                .unwrap()
                .to_vec();
            let differ = want
                .iter()
                .zip(&got)
                .position(|(x, y)| x.to_bits() != y.to_bits());
            assert_eq!(differ, None, "{ty:?} step {step:?}");
        }
        // A row past the blocks in its table is an error, not a panic.
        let past = [BatchRow {
            token: 1,
            seq: 1,
            pos: tables.seq(1).len() * block,
            logits: true,
        }];
        assert!(model
            .forward_paged(&past, &mut pool, &tables, &mut s)
            .is_err());
    }
}
