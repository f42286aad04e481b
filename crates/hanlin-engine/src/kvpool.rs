//! Bookkeeping of the paged KV cache: which blocks are free, owned, shared or cached, the
//! prefix cache that finds earlier requests' blocks by content, and admission reservations.
//! The keys and values themselves live in a `hanlin_models::KvPool`; this module only deals
//! in block ids.
//!
//! A full block is known by a chain hash of (hash of the blocks before it, its token ids): a
//! model instance's keys and values depend on nothing else, so equal chains hold equal data.
//! Lookups also compare the stored tokens and parent hash, so a hash collision costs a cache
//! miss, never wrong keys. Full blocks are shared read-only (refcounted). When the last user
//! lets go, a block stays cached (refcount 0) in a least-recently-used list until the pool
//! needs the space. A sequence's partial last block is never shared; on release it is kept as
//! the "tail" of its chain.
//!
//! Reuse is token-granular: after the whole matching blocks, the most recent cached block
//! continuing the chain (full or tail) may match the prompt part-way. A tail is taken over
//! whole and overwritten from where the tokens differ; a full block may be shared, so its
//! matching positions are copied into a fresh block instead (copy-on-write, done by the
//! caller, which owns the keys and values).
//!
//! Admission reserves, for every running sequence, every block it may still need (prompt plus
//! `max_tokens`, capped at the context), so a running sequence never runs out and is never
//! preempted; a request that does not fit waits in the queue until enough blocks are freed.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// End of the LRU list.
const NIL: u32 = u32::MAX;

/// What a block holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// On the free list.
    Free,
    /// Written by one sequence, not findable by others.
    Private,
    /// A full block in the prefix cache under this chain hash.
    Full(u64),
    /// A partial block kept for the chain ending in this hash (refcount 0 always).
    Tail,
}

/// Counts for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PoolUse {
    /// Blocks some running sequence holds.
    pub in_use: usize,
    /// Blocks nobody holds that the prefix cache can still hand out.
    pub cached: usize,
    /// Blocks on the free list.
    pub free: usize,
}

/// A cached block continuing a hit's chain whose leading positions match the prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Partial {
    /// The block.
    pub block: u32,
    /// Matching positions.
    pub tokens: usize,
    /// Whether those positions must be copied (a full block others may share) rather than
    /// the block taken over (a tail).
    pub copy: bool,
}

/// A prefix-cache hit: shared full blocks, then maybe part of one more block.
#[derive(Debug, Default)]
pub(crate) struct Hit {
    /// Full blocks matching the prompt's leading blocks, in order.
    pub blocks: Vec<u32>,
    /// Chain hash of each of them.
    pub hashes: Vec<u64>,
    /// A block continuing the chain that matches part-way.
    pub partial: Option<Partial>,
}

impl Hit {
    /// Prompt tokens whose keys and values the hit provides.
    pub fn tokens(&self, block: usize) -> usize {
        self.blocks.len() * block + self.partial.map_or(0, |p| p.tokens)
    }
}

/// Block states, refcounts, the prefix cache and the LRU of evictable cached blocks.
#[derive(Debug)]
pub(crate) struct BlockPool {
    block: usize,
    refs: Vec<u32>,
    state: Vec<State>,
    /// Chain hash of the blocks before each cached block.
    parent: Vec<u64>,
    /// Token ids of cached blocks: `[block id][pos in block]`.
    tokens: Vec<u32>,
    /// Positions of a cached block that hold keys (the block size unless a tail).
    fill: Vec<usize>,
    /// Intrusive doubly linked LRU of refcount-0 cached blocks (head: evicted first).
    prev: Vec<u32>,
    next: Vec<u32>,
    head: u32,
    tail: u32,
    free: Vec<u32>,
    /// Cached full blocks by chain hash.
    full: HashMap<u64, u32>,
    /// The latest cached block (full or tail) after each chain hash, for part-block matches.
    children: HashMap<u64, u32>,
    in_use: usize,
    cached: usize,
    /// Blocks admitted sequences may still take.
    reserved: usize,
}

impl BlockPool {
    /// `n_blocks` free blocks of `block` positions.
    pub fn new(n_blocks: usize, block: usize) -> Self {
        BlockPool {
            block,
            refs: vec![0; n_blocks],
            state: vec![State::Free; n_blocks],
            parent: vec![0; n_blocks],
            tokens: vec![0; n_blocks * block],
            fill: vec![0; n_blocks],
            prev: vec![NIL; n_blocks],
            next: vec![NIL; n_blocks],
            head: NIL,
            tail: NIL,
            // Popped from the end: low ids first, so the touched part of the arena stays compact.
            free: (0..n_blocks as u32).rev().collect(),
            // Never more entries than blocks, so inserting never reallocates.
            full: HashMap::with_capacity(n_blocks),
            children: HashMap::with_capacity(n_blocks),
            in_use: 0,
            cached: 0,
            reserved: 0,
        }
    }

    /// Positions per block.
    pub fn block_size(&self) -> usize {
        self.block
    }

    /// Current use.
    pub fn usage(&self) -> PoolUse {
        PoolUse {
            in_use: self.in_use,
            cached: self.cached,
            free: self.free.len(),
        }
    }

    /// Hash of the empty prefix (the parent of every chain's first block).
    pub fn root(&self) -> u64 {
        let mut h = DefaultHasher::new();
        ("hanlin-kv", self.block).hash(&mut h);
        h.finish()
    }

    /// Chain hash of a full block of `tokens` after the chain hashed `parent`.
    pub fn chain(parent: u64, tokens: &[u32]) -> u64 {
        let mut h = DefaultHasher::new();
        parent.hash(&mut h);
        tokens.hash(&mut h);
        h.finish()
    }

    fn block_tokens(&self, id: u32) -> &[u32] {
        let o = id as usize * self.block;
        &self.tokens[o..o + self.block]
    }

    /// The longest cached prefix of `prompt`, at most `max_blocks` full blocks, then a tail
    /// for at most `max_tokens` tokens in all. Fills `hit` (its vectors are reused).
    pub fn lookup(&self, prompt: &[u32], max_blocks: usize, max_tokens: usize, hit: &mut Hit) {
        hit.blocks.clear();
        hit.hashes.clear();
        hit.partial = None;
        let mut parent = self.root();
        for chunk in prompt.chunks_exact(self.block).take(max_blocks) {
            let h = Self::chain(parent, chunk);
            let Some(&id) = self.full.get(&h) else { break };
            if self.parent[id as usize] != parent || self.block_tokens(id) != chunk {
                break;
            }
            hit.blocks.push(id);
            hit.hashes.push(h);
            parent = h;
        }
        let done = hit.blocks.len() * self.block;
        if let Some(&id) = self.children.get(&parent) {
            let i = id as usize;
            let stored = &self.block_tokens(id)[..self.fill[i]];
            let rest = &prompt[done..max_tokens.clamp(done, prompt.len())];
            let n = stored.iter().zip(rest).take_while(|(a, b)| a == b).count();
            if n > 0 && self.parent[i] == parent {
                hit.partial = Some(Partial {
                    block: id,
                    tokens: n,
                    copy: self.state[i] != State::Tail,
                });
            }
        }
    }

    /// Whether a sequence can start with `hit` and `need` more blocks beside the shared ones,
    /// without taking blocks reserved by running sequences.
    pub fn can_admit(&self, hit: &Hit, need: usize) -> bool {
        // A block copied from is held only while its copy is allocated, and is free to evict
        // again right after: counting it would refuse a request that needs the whole pool (a
        // second chat turn in one full-context slot). Where the copy cannot be allocated, the
        // engine recomputes those positions instead.
        let idle_hits = hit
            .blocks
            .iter()
            .filter(|&&id| self.refs[id as usize] == 0)
            .count();
        let available = self.free.len() + self.cached;
        available >= idle_hits + self.reserved + need
    }

    /// Reserves `n` blocks for a sequence being admitted.
    pub fn reserve(&mut self, n: usize) {
        self.reserved += n;
    }

    /// Returns reservations a finished sequence did not use.
    pub fn unreserve(&mut self, n: usize) {
        self.reserved = self.reserved.saturating_sub(n);
    }

    /// Shares cached full block `id` with one more sequence.
    pub fn acquire(&mut self, id: u32) {
        let i = id as usize;
        if self.refs[i] == 0 {
            self.lru_remove(id);
            self.in_use += 1;
        }
        self.refs[i] += 1;
    }

    /// Takes over cached tail block `id` exclusively (uses one reserved block).
    pub fn take_tail(&mut self, id: u32) {
        let i = id as usize;
        if self.state[i] == State::Tail {
            self.forget(id);
            self.lru_remove(id);
        }
        self.state[i] = State::Private;
        self.refs[i] = 1;
        self.in_use += 1;
        self.reserved = self.reserved.saturating_sub(1);
    }

    /// A block for a sequence to write (uses one reserved block): a free one, else the least
    /// recently used cached one, which leaves the prefix cache.
    pub fn alloc(&mut self) -> Option<u32> {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let id = self.head;
                if id == NIL {
                    return None;
                }
                self.lru_remove(id);
                self.forget(id);
                id
            }
        };
        let i = id as usize;
        self.state[i] = State::Private;
        self.refs[i] = 1;
        self.in_use += 1;
        self.reserved = self.reserved.saturating_sub(1);
        Some(id)
    }

    /// Publishes private block `id`, now full of `tokens` after the chain `parent`, under
    /// `hash`; `false` (it stays private) when an equal block is already cached.
    pub fn register(&mut self, id: u32, parent: u64, hash: u64, tokens: &[u32]) -> bool {
        let i = id as usize;
        if self.state[i] != State::Private || self.full.contains_key(&hash) {
            return false;
        }
        self.full.insert(hash, id);
        self.state[i] = State::Full(hash);
        self.parent[i] = parent;
        self.fill[i] = self.block;
        self.tokens[i * self.block..(i + 1) * self.block].copy_from_slice(tokens);
        self.set_child(parent, id);
        true
    }

    /// Makes `id` the block part-block matches after `parent` try; a tail it replaces is
    /// unreachable from then on and freed.
    fn set_child(&mut self, parent: u64, id: u32) {
        if let Some(old) = self.children.insert(parent, id) {
            let o = old as usize;
            if old != id && self.state[o] == State::Tail {
                self.lru_remove(old);
                self.state[o] = State::Free;
                self.free.push(old);
            }
        }
    }

    /// Removes cached block `id` from the lookup maps.
    fn forget(&mut self, id: u32) {
        let i = id as usize;
        if let State::Full(h) = self.state[i] {
            self.full.remove(&h);
        }
        let parent = self.parent[i];
        if self.children.get(&parent) == Some(&id) {
            self.children.remove(&parent);
        }
    }

    /// Drops one reference to `id`. A partial private block with `tail = Some((parent,
    /// tokens))` is kept as that chain's tail; other unregistered blocks go back to the free
    /// list, registered ones to the cache.
    pub fn release(&mut self, id: u32, tail: Option<(u64, &[u32])>) {
        let i = id as usize;
        if self.refs[i] == 0 {
            return;
        }
        self.refs[i] -= 1;
        if self.refs[i] > 0 {
            return;
        }
        self.in_use -= 1;
        match (self.state[i], tail) {
            (State::Full(_), _) => self.lru_push(id),
            (State::Private, Some((parent, toks)))
                if !toks.is_empty() && toks.len() < self.block =>
            {
                self.state[i] = State::Tail;
                self.parent[i] = parent;
                self.fill[i] = toks.len();
                self.tokens[i * self.block..i * self.block + toks.len()].copy_from_slice(toks);
                self.lru_push(id);
                self.set_child(parent, id);
            }
            _ => {
                self.state[i] = State::Free;
                self.free.push(id);
            }
        }
    }

    fn lru_push(&mut self, id: u32) {
        let i = id as usize;
        self.prev[i] = self.tail;
        self.next[i] = NIL;
        if self.tail == NIL {
            self.head = id;
        } else {
            self.next[self.tail as usize] = id;
        }
        self.tail = id;
        self.cached += 1;
    }

    fn lru_remove(&mut self, id: u32) {
        let i = id as usize;
        let (p, n) = (self.prev[i], self.next[i]);
        if p == NIL {
            if self.head != id {
                return; // not in the list
            }
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev[n as usize] = p;
        }
        self.prev[i] = NIL;
        self.next[i] = NIL;
        self.cached -= 1;
    }
}

#[cfg(test)]
#[path = "kvpool_tests.rs"]
mod tests;
