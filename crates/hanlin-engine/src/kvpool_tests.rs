use super::{BlockPool, Hit, Partial, PoolUse};

/// Allocates blocks for `tokens` and registers the full ones, as a sequence would.
fn fill(p: &mut BlockPool, tokens: &[u32]) -> (Vec<u32>, Vec<u64>) {
    let b = p.block_size();
    let n = tokens.len().div_ceil(b);
    p.reserve(n);
    let mut ids = Vec::new();
    let mut hashes = Vec::new();
    let mut parent = p.root();
    for (k, chunk) in tokens.chunks(b).enumerate() {
        let id = p.alloc().unwrap();
        ids.push(id);
        if chunk.len() == b {
            let h = BlockPool::chain(parent, chunk);
            p.register(id, parent, h, chunk);
            hashes.push(h);
            parent = h;
        }
        assert_eq!(ids.len(), k + 1);
    }
    (ids, hashes)
}

/// Releases a sequence's blocks last first, keeping its partial block as a tail.
fn release(p: &mut BlockPool, ids: &[u32], hashes: &[u64], tokens: &[u32]) {
    let b = p.block_size();
    for (k, &id) in ids.iter().enumerate().rev() {
        let tail = (k == hashes.len()).then(|| {
            let parent = if k == 0 { p.root() } else { hashes[k - 1] };
            (parent, &tokens[k * b..])
        });
        p.release(id, tail);
    }
}

#[test]
fn alloc_free_and_refcounts() {
    let mut p = BlockPool::new(4, 2);
    p.reserve(4);
    let a = p.alloc().unwrap();
    let b = p.alloc().unwrap();
    assert_eq!((a, b), (0, 1), "low ids first");
    assert_eq!(
        p.usage(),
        PoolUse {
            in_use: 2,
            cached: 0,
            free: 2
        }
    );
    // A registered block shared by a second sequence survives the first one's release.
    let h = BlockPool::chain(p.root(), &[5, 6]);
    assert!(p.register(a, p.root(), h, &[5, 6]));
    p.acquire(a);
    p.release(a, None);
    assert_eq!(p.usage().in_use, 2);
    p.release(a, None);
    p.release(b, None);
    assert_eq!(
        p.usage(),
        PoolUse {
            in_use: 0,
            cached: 1,
            free: 3
        }
    );
    // Releasing twice is harmless.
    p.release(b, None);
    assert_eq!(p.usage().free, 3);
}

#[test]
fn lru_evicts_the_oldest_cached_block_first() {
    let mut p = BlockPool::new(3, 2);
    let (ids1, h1) = fill(&mut p, &[1, 2]);
    let (ids2, h2) = fill(&mut p, &[3, 4]);
    let (ids3, h3) = fill(&mut p, &[5, 6]);
    release(&mut p, &ids2, &h2, &[3, 4]);
    release(&mut p, &ids1, &h1, &[1, 2]);
    release(&mut p, &ids3, &h3, &[5, 6]);
    assert_eq!(p.usage().cached, 3);
    // Using [1, 2] again moves it out of the LRU; the next two allocations evict [3, 4] then
    // [5, 6], never the block in use.
    let mut hit = Hit::default();
    p.lookup(&[1, 2, 9], 1, 2, &mut hit);
    assert_eq!(hit.blocks, ids1);
    p.acquire(ids1[0]);
    p.reserve(2);
    assert_eq!(p.alloc(), Some(ids2[0]));
    p.lookup(&[3, 4, 9], 1, 2, &mut hit);
    assert!(hit.blocks.is_empty(), "evicted blocks leave the cache");
    assert_eq!(p.alloc(), Some(ids3[0]));
    p.reserve(1);
    assert_eq!(p.alloc(), None, "everything is in use");
    p.lookup(&[1, 2, 9], 1, 2, &mut hit);
    assert_eq!(hit.blocks, ids1, "a block in use stays findable");
}

#[test]
fn hash_chain_lookup_matches_whole_blocks_in_order() {
    let mut p = BlockPool::new(8, 3);
    let prompt = [10, 11, 12, 13, 14, 15, 16, 17];
    let (ids, hashes) = fill(&mut p, &prompt);
    release(&mut p, &ids, &hashes, &prompt);
    let mut hit = Hit::default();
    // Same leading blocks: two full blocks, then the tail [16, 17].
    p.lookup(&[10, 11, 12, 13, 14, 15, 16, 99, 1], 9, 8, &mut hit);
    assert_eq!(hit.blocks, ids[..2]);
    let tail = Partial {
        block: ids[2],
        tokens: 1,
        copy: false,
    };
    assert_eq!(hit.partial, Some(tail));
    assert_eq!(hit.tokens(3), 7);
    // Past `max_blocks`, the next full block matches as a part-block copy.
    p.lookup(&prompt, 1, 8, &mut hit);
    assert_eq!(hit.blocks, ids[..1]);
    let copy = Partial {
        block: ids[1],
        tokens: 3,
        copy: true,
    };
    assert_eq!(hit.partial, Some(copy));
    p.lookup(&[10, 11, 12, 13, 14, 0], 1, 5, &mut hit);
    assert_eq!(hit.partial.map(|p| p.tokens), Some(2));
    // Nothing beyond `max_tokens`.
    p.lookup(&prompt, 2, 6, &mut hit);
    assert_eq!((hit.blocks.len(), hit.partial), (2, None));
    // A block with the same tokens after a different prefix is a different block.
    p.lookup(&[13, 14, 15], 1, 3, &mut hit);
    assert!(hit.blocks.is_empty());
    p.lookup(&[10, 11, 0, 13, 14, 15], 2, 6, &mut hit);
    assert!(hit.blocks.is_empty());
    // Taking the tail over makes it private: nobody else finds it.
    p.lookup(&prompt, 2, 7, &mut hit);
    assert_eq!(hit.partial, Some(tail));
    p.reserve(1);
    p.take_tail(tail.block);
    p.lookup(&prompt, 2, 7, &mut hit);
    assert_eq!(hit.partial, None);
    // A newer tail after the same chain replaces (and frees) an older one.
    let free = p.usage().free;
    let (ids2, h2) = fill(&mut p, &[10, 11, 12, 13, 14, 15, 20]);
    release(&mut p, &ids2, &h2, &[10, 11, 12, 13, 14, 15, 20]);
    p.release(tail.block, Some((h2[1], &[16, 17])));
    assert_eq!(
        p.usage().free,
        free,
        "the duplicate full blocks and the replaced tail are free again"
    );
    p.lookup(&prompt, 2, 7, &mut hit);
    assert_eq!(hit.partial, Some(tail));
}

#[test]
fn admission_respects_reservations() {
    let mut p = BlockPool::new(4, 2);
    let hit = Hit::default();
    assert!(p.can_admit(&hit, 4));
    p.reserve(3);
    assert!(p.can_admit(&hit, 1));
    assert!(!p.can_admit(&hit, 2));
    // Blocks allocated against a reservation do not count twice.
    p.alloc().unwrap();
    p.alloc().unwrap();
    assert!(p.can_admit(&hit, 1));
    assert!(!p.can_admit(&hit, 2));
    p.unreserve(1);
    assert!(p.can_admit(&hit, 2));
}

#[test]
fn duplicate_blocks_stay_private_and_are_freed() {
    let mut p = BlockPool::new(4, 2);
    let (a, ha) = fill(&mut p, &[1, 2]);
    let (b, hb) = fill(&mut p, &[1, 2]);
    assert_eq!(ha, hb);
    release(&mut p, &b, &[], &[1, 2]);
    release(&mut p, &a, &ha, &[1, 2]);
    assert_eq!(
        p.usage(),
        PoolUse {
            in_use: 0,
            cached: 1,
            free: 3
        }
    );
}
