//! Attention through block tables equals attention over a contiguous cache bit for bit.

use hanlin_kernels::ThreadPool;

use super::{attend, AttnBufs, AttnShape};
use crate::kv::{BlockTables, KvPool, KvType, PagedSeqs};
use crate::model::BatchRow;

/// SplitMix64 uniforms in [-1, 1) (never all zeros).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

struct Case {
    ty: KvType,
    n_head: usize,
    n_head_kv: usize,
    head: (usize, usize),
    block: usize,
    window: Option<usize>,
}

/// Two sequences of `lens` positions with random keys/values, written once into a contiguous
/// layout (one block per sequence) and once into `case.block`-sized blocks in scrambled order,
/// the second sequence sharing the first one's leading blocks; the batch mixes a prefill run
/// of the first sequence with a decode row of the second.
fn check(case: &Case, seed: u64) {
    const LAYERS: usize = 2;
    let mut rng = Rng(seed);
    let (hk, hv) = case.head;
    let (kdim, vdim) = (case.n_head_kv * hk, case.n_head_kv * hv);
    let lens = [45usize, 39];
    let shared = 2 * case.block; // positions the second sequence shares with the first
    let cap = 64;
    let mut flat = KvPool::with_dims(LAYERS, case.n_head_kv, case.head, cap, 2, case.ty).unwrap();
    let mut flat_t = BlockTables::new(2, 1);
    flat_t.push(0, 0);
    flat_t.push(1, 1);
    let n_blocks = 2 * cap.div_ceil(case.block) + 3;
    let mut paged = KvPool::with_dims(
        LAYERS,
        case.n_head_kv,
        case.head,
        case.block,
        n_blocks,
        case.ty,
    )
    .unwrap();
    let mut paged_t = BlockTables::new(2, cap.div_ceil(case.block));
    // Scrambled block ids (Fisher-Yates), so neighbouring positions live far apart.
    let mut order: Vec<u32> = (0..n_blocks as u32).collect();
    for i in (1..order.len()).rev() {
        let j = ((rng.next() + 1.0) * 0.5 * (i + 1) as f32) as usize;
        order.swap(i, j.min(i));
    }
    let mut ids = order.into_iter();
    for _ in 0..lens[0].div_ceil(case.block) {
        paged_t.push(0, ids.next().unwrap());
    }
    for b in 0..lens[1].div_ceil(case.block) {
        let id = if b * case.block < shared {
            paged_t.seq(0)[b]
        } else {
            ids.next().unwrap()
        };
        paged_t.push(1, id);
    }
    let mut kv_rows: Vec<Vec<(Vec<f32>, Vec<f32>)>> = Vec::new();
    for &len in &lens {
        kv_rows.push(
            (0..len * LAYERS)
                .map(|_| (rng.vec(kdim), rng.vec(vdim)))
                .collect(),
        );
    }
    // The shared prefix holds the same keys in both sequences.
    let prefix = kv_rows[0][..shared * LAYERS].to_vec();
    kv_rows[1][..shared * LAYERS].clone_from_slice(&prefix);
    for (seq, rows) in kv_rows.iter().enumerate() {
        for (i, (k, v)) in rows.iter().enumerate() {
            let (pos, layer) = (i / LAYERS, i % LAYERS);
            let b = case.block;
            flat.write(seq, layer, pos, k, v);
            if seq == 1 && pos < shared {
                continue; // read-only shared block
            }
            let blk = paged_t.seq(seq)[pos / b] as usize;
            paged.write(blk, layer, pos % b, k, v);
        }
    }
    let mut rows: Vec<BatchRow> = (25..lens[0])
        .map(|pos| BatchRow {
            token: 0,
            seq: 0,
            pos,
            logits: false,
        })
        .collect();
    rows.insert(
        3,
        BatchRow {
            token: 0,
            seq: 1,
            pos: lens[1] - 1,
            logits: true,
        },
    );
    let q = rng.vec(rows.len() * case.n_head * hk);
    let pool = ThreadPool::new(2);
    for layer in 0..LAYERS {
        let shape = AttnShape {
            layer,
            n_head: case.n_head,
            n_head_kv: case.n_head_kv,
            head_k: hk,
            head_v: hv,
            window: case.window,
            score_scale: 0.125,
        };
        let mut outs = Vec::new();
        for (p, t) in [(&mut flat, &flat_t), (&mut paged, &paged_t)] {
            let mut out = vec![f32::NAN; rows.len() * case.n_head * hv];
            let mut bufs: Vec<AttnBufs> = (0..2).map(|_| AttnBufs::new(hk, 64)).collect();
            let seqs = PagedSeqs { pool: p, tables: t };
            attend(&pool, &shape, &rows, &seqs, &q, &mut out, &mut bufs);
            outs.push(out);
        }
        assert!(outs[0].iter().all(|x| x.is_finite()));
        let differ = outs[0]
            .iter()
            .zip(&outs[1])
            .position(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(
            differ, None,
            "{:?} heads {}/{} dims {:?} block {} window {:?} layer {layer}",
            case.ty, case.n_head, case.n_head_kv, case.head, case.block, case.window
        );
    }
}

#[test]
fn paged_attention_equals_contiguous_f16() {
    for (i, (head, block, window)) in [
        ((64, 64), 16, None),
        ((64, 64), 5, None),
        ((32, 32), 7, Some(9)),
        ((24, 24), 4, None),
        ((24, 40), 3, Some(20)),
    ]
    .into_iter()
    .enumerate()
    {
        let case = Case {
            ty: KvType::F16,
            n_head: 4,
            n_head_kv: 2,
            head,
            block,
            window,
        };
        check(&case, 11 + i as u64);
    }
}

#[test]
fn paged_attention_equals_contiguous_q8_0() {
    for (i, (head, block, window)) in [
        ((64, 64), 16, None),
        ((32, 64), 5, Some(12)),
        ((32, 32), 1, None),
    ]
    .into_iter()
    .enumerate()
    {
        let case = Case {
            ty: KvType::Q8_0,
            n_head: 6,
            n_head_kv: 2,
            head,
            block,
            window,
        };
        check(&case, 101 + i as u64);
    }
}
