//! Byte-level BPE (`llm_tokenizer_bpe_session`): split into words, then within each word
//! merge the adjacent pair with the lowest merge rank until none applies.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::error::TokenizerError;
use crate::spm::{char_symbols, Symbol};
use crate::vocab::Vocab;

struct Bigram {
    left: usize,
    right: usize,
    rank: u32,
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
    /// Lowest rank first; on a tie the leftmost pair (BinaryHeap pops the greatest).
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .rank
            .cmp(&self.rank)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Tokenizes one raw-text fragment, appending ids to `out`.
pub(crate) fn tokenize(v: &Vocab, text: &str, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
    let Some(splitter) = &v.splitter else {
        return Err(TokenizerError::Unsupported(
            "BPE vocabulary without a pre-tokenizer".to_string(),
        ));
    };
    let byte_encode = splitter.byte_encode();
    let mut key = String::new();
    for word in splitter.split(text)? {
        let whole = (v.ignore_merges || (v.gemma4 && word.bytes().all(|b| b == b'\n')))
            .then(|| v.text_to_token(&word))
            .flatten();
        let mut syms = if whole.is_some() {
            vec![Symbol {
                prev: None,
                next: None,
                start: 0,
                n: word.len(),
            }]
        } else {
            char_symbols(&word)
        };
        let mut queue = BinaryHeap::new();
        let mut add = |syms: &[Symbol],
                       queue: &mut BinaryHeap<Bigram>,
                       l: Option<usize>,
                       r: Option<usize>| {
            let (Some(l), Some(r)) = (l, r) else { return };
            let (a, b) = (syms[l], syms[r]);
            let left = &word[a.start..a.start + a.n];
            let right = &word[b.start..b.start + b.n];
            if let Some(rank) = v.bpe_rank(&mut key, left, right) {
                queue.push(Bigram {
                    left: l,
                    right: r,
                    rank,
                    size: a.n + b.n,
                });
            }
        };
        for i in 1..syms.len() {
            add(&syms, &mut queue, Some(i - 1), Some(i));
        }
        while let Some(bg) = queue.pop() {
            let (l, r) = (syms[bg.left], syms[bg.right]);
            if l.n == 0 || r.n == 0 || l.n + r.n != bg.size {
                continue;
            }
            syms[bg.left].n += r.n;
            syms[bg.right].n = 0;
            syms[bg.left].next = r.next;
            if let Some(nx) = r.next {
                syms[nx].prev = Some(bg.left);
            }
            add(&syms, &mut queue, syms[bg.left].prev, Some(bg.left));
            add(&syms, &mut queue, Some(bg.left), syms[bg.left].next);
        }
        for s in syms.iter().filter(|s| s.n > 0) {
            let piece = &word[s.start..s.start + s.n];
            if let Some(id) = v.text_to_token(piece) {
                out.push(id);
                continue;
            }
            // No token for the piece: llama.cpp looks each byte up on its own and drops
            // the ones it cannot find.
            for &b in piece.as_bytes() {
                let id = if byte_encode {
                    std::str::from_utf8(&[b])
                        .ok()
                        .and_then(|s| v.text_to_token(s))
                } else {
                    v.text_to_token(&format!("<0x{b:02X}>"))
                };
                out.extend(id);
            }
        }
    }
    Ok(())
}
