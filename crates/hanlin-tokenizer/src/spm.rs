//! SentencePiece BPE as llama.cpp runs it (`llm_tokenizer_spm`): start from single
//! characters, repeatedly merge the adjacent pair whose concatenation is the
//! highest-scoring vocabulary piece, and spell whatever is left as `<0xXX>` byte tokens.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::unicode::utf8_len;
use crate::vocab::Vocab;

/// A span of the input; `n == 0` once merged into its left neighbour.
#[derive(Clone, Copy)]
pub(crate) struct Symbol {
    pub prev: Option<usize>,
    pub next: Option<usize>,
    pub start: usize,
    pub n: usize,
}

/// Splits text into one symbol per UTF-8 character, linked left to right.
pub(crate) fn char_symbols(text: &str) -> Vec<Symbol> {
    let b = text.as_bytes();
    let mut syms = Vec::with_capacity(b.len());
    let mut offs = 0;
    while offs < b.len() {
        let n = utf8_len(b[offs]).min(b.len() - offs);
        let i = syms.len();
        syms.push(Symbol {
            prev: i.checked_sub(1),
            next: (offs + n < b.len()).then_some(i + 1),
            start: offs,
            n,
        });
        offs += n;
    }
    syms
}

struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Highest score first; on a tie the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Tokenizes one already space-escaped fragment, appending ids to `out`.
pub(crate) fn tokenize(v: &Vocab, text: &str, out: &mut Vec<u32>) {
    let mut syms = char_symbols(text);
    let mut queue = BinaryHeap::new();
    let try_add =
        |syms: &[Symbol], queue: &mut BinaryHeap<Bigram>, l: Option<usize>, r: Option<usize>| {
            let (Some(l), Some(r)) = (l, r) else { return };
            let (s, size) = (syms[l].start, syms[l].n + syms[r].n);
            let Some(id) = v.text_to_token(&text[s..s + size]) else {
                return;
            };
            queue.push(Bigram {
                left: l,
                right: r,
                score: v.tokens[id as usize].score,
                size,
            });
        };
    for i in 1..syms.len() {
        try_add(&syms, &mut queue, Some(i - 1), Some(i));
    }
    while let Some(bg) = queue.pop() {
        let (l, r) = (syms[bg.left], syms[bg.right]);
        // Stale: one side was merged since this pair was queued.
        if l.n == 0 || r.n == 0 || l.n + r.n != bg.size {
            continue;
        }
        syms[bg.left].n += r.n;
        syms[bg.right].n = 0;
        syms[bg.left].next = r.next;
        if let Some(nx) = r.next {
            syms[nx].prev = Some(bg.left);
        }
        try_add(&syms, &mut queue, syms[bg.left].prev, Some(bg.left));
        try_add(&syms, &mut queue, Some(bg.left), syms[bg.left].next);
    }
    let mut i = if syms.is_empty() { None } else { Some(0) };
    while let Some(k) = i {
        let s = syms[k];
        let piece = &text[s.start..s.start + s.n];
        match v.text_to_token(piece) {
            Some(id) => out.push(id),
            None => push_bytes(v, piece.as_bytes(), out),
        }
        i = s.next;
    }
}

/// Byte fallback: one `<0xXX>` token per byte (the unknown token when a vocabulary has
/// no byte tokens, where llama.cpp would abort).
pub(crate) fn push_bytes(v: &Vocab, bytes: &[u8], out: &mut Vec<u32>) {
    for &b in bytes {
        if let Some(id) = v.byte_to_token(b).or(v.unk) {
            out.push(id);
        }
    }
}
