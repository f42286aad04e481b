//! Budget-aware closing of a JSON document. A small model can loop inside an open-ended
//! schema (an array without `maxItems`, a string without `maxLength`) until `max_tokens` cuts
//! it mid-value, which no client can parse. Within the last [`CLOSING_WINDOW`] tokens, each
//! step measures how many tokens the shortest way out still takes — a dry run on a copy of
//! the parser: the longest closing token (`"`, `}`, `]`, end) where one is allowed; inside a
//! value the grammar will not let close yet (a `format: email` string without its `@`, a
//! `pattern` or `minLength` string, a number before a required `,`), the shortest byte path
//! to a closing byte ([`search`]); else the longest allowed token (a required key). Once that
//! fills the remaining budget, steering narrows each mask to the dry run's choice: the
//! closers, or the next token of the path, or the forced text. The model's free choices are
//! vetoed when they would leave too little room.

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

use llguidance::toktrie::{SimpleVob, TokEnv, TokTrie};

use super::parser::Parser;
use super::search;

/// Tokens before `max_tokens` from which the closing cost is measured.
const CLOSING_WINDOW: usize = 96;

/// Within this many tokens of the last measured cost, every step measures again.
const NEAR: usize = 16;

/// At most this many allowed tokens and no closer: the grammar is spelling out fixed text.
const FORCED_LIMIT: usize = 64;

/// Set bits examined when looking for the longest allowed token (a string's content allows
/// most of the vocabulary; any of it makes progress).
const SCAN_LIMIT: usize = 4096;

/// What ends a string, and what ends a value outside one (a number, a literal).
const STRING_GOALS: &[u8] = b"\"";
const VALUE_GOALS: &[u8] = b"}],";

/// Tokens to wait after a search found nothing before searching again (a failed search is
/// the expensive kind: it ran into its limits).
const SEARCH_RETRY: usize = 8;

/// Where the JSON text so far ends: inside a string or not (the grammar guarantees the rest of
/// the syntax). A token of `}` or `]` closes structure outside a string but is only content
/// inside one, where the closer is `"`.
#[derive(Clone, Copy, Default)]
pub(super) struct JsonState {
    in_string: bool,
    escaped: bool,
}

impl JsonState {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
            } else if b == b'"' {
                self.in_string = true;
            }
        }
    }

    /// Rank of closer `bytes` here (higher first; 0: not a closer here): the end first; inside
    /// a string only tokens starting with the closing quote; outside, tokens starting with
    /// `}`/`]` before a quote that opens a (then immediately closed) string.
    fn closer_rank(self, bytes: &[u8]) -> usize {
        match (self.in_string, bytes.first()) {
            // An end token (special: marker byte first), where the grammar allows the end.
            (_, Some(&TokTrie::SPECIAL_TOKEN_MARKER)) => 3,
            (true, Some(b'"')) => 2,
            (false, Some(b'}' | b']')) => 2,
            (false, Some(b'"')) => 1,
            _ => 0,
        }
    }
}

/// The way out the dry run and steering take from one state.
enum Way {
    /// The allowed closers of this (rank, length), the best here, and one of them.
    Closers((usize, usize), u32),
    /// The next token of a searched path.
    Path(u32),
    /// The longest allowed tokens (forced text, or any progress).
    Longest,
}

/// A cost measured ahead of the step it belongs to, and the dry run's tokens.
type Measured = (usize, Vec<u32>);

pub(super) struct Closing {
    env: TokEnv,
    /// Tokens that only close JSON (`"`, `}`, `]` and runs of them) plus every end token.
    closers: Arc<[u32]>,
    /// Bytes a searched path may use inside a string ([`search::alphabet`]), and outside one
    /// (the same and `"`: a value may have to open a string).
    alphabet: Arc<[u8]>,
    value_alphabet: Vec<u8>,
    /// No search before this many committed tokens (set when one fails).
    search_after: Cell<usize>,
    pub(super) budget: usize,
    used: usize,
    /// String state after the committed tokens.
    json: JsonState,
    /// Steering has begun (it stays on until the end).
    steering: bool,
    /// The last dry run's cost, to skip dry runs while the budget is far from it.
    last_need: Option<usize>,
    /// The last complete dry run's tokens: when the model takes the first, the next cost is
    /// known without another dry run.
    dry: Vec<u32>,
    /// `veto`'s dry run after the token it let through, for when that token is committed.
    vetted: Option<(u32, Measured)>,
    /// The cost for the state after the last commit, if already known.
    measured: Option<Measured>,
    /// The rest of the searched path steering follows (bytes not yet committed).
    path: Vec<u8>,
    /// The narrowed mask (reused across steps; valid while `narrowed`).
    scratch: SimpleVob,
    narrowed: bool,
    /// Whether steering ever narrowed a mask (the output was shaped by the budget).
    pub(super) steered: bool,
}

impl Closing {
    pub(super) fn new(env: TokEnv, closers: Arc<[u32]>, alphabet: Arc<[u8]>) -> Self {
        let mut value_alphabet = alphabet.to_vec();
        value_alphabet.push(b'"');
        Closing {
            env,
            closers,
            alphabet,
            value_alphabet,
            search_after: Cell::new(0),
            budget: usize::MAX,
            used: 0,
            json: JsonState::default(),
            steering: false,
            last_need: None,
            dry: Vec::new(),
            vetted: None,
            measured: None,
            path: Vec::new(),
            scratch: SimpleVob::new(),
            narrowed: false,
            steered: false,
        }
    }

    /// The narrowed mask, while steering narrows this step.
    pub(super) fn narrowed(&self) -> Option<&SimpleVob> {
        self.narrowed.then_some(&self.scratch)
    }

    fn left(&self) -> usize {
        self.budget.saturating_sub(self.used)
    }

    /// Whether the budget is near enough to the last measured cost to measure again.
    fn near(&self) -> bool {
        let left = self.left();
        left <= CLOSING_WINDOW && self.last_need.is_none_or(|n| left <= n + NEAR)
    }

    /// The best closer allowed by `mask` in state `st` (rank, then length) and one token of it.
    fn best_closer(&self, mask: &SimpleVob, st: JsonState) -> Option<((usize, usize), u32)> {
        let trie = self.env.tok_trie();
        let mut best: Option<((usize, usize), u32)> = None;
        for &t in self.closers.iter() {
            if mask.is_allowed(t) {
                let b = trie.token(t);
                let key = (st.closer_rank(b), b.len());
                if key.0 > 0 && best.is_none_or(|(k, _)| key > k) {
                    best = Some((key, t));
                }
            }
        }
        best
    }

    /// The longest token `mask` allows (among the first [`SCAN_LIMIT`]).
    fn longest(&self, mask: &SimpleVob) -> Option<u32> {
        let trie = self.env.tok_trie();
        let mut best: Option<(usize, u32)> = None;
        let mut seen = 0;
        for (w, &bits) in mask.as_slice().iter().enumerate() {
            let mut b = bits;
            while b != 0 && seen < SCAN_LIMIT {
                let t = (w * 32) as u32 + b.trailing_zeros();
                b &= b - 1;
                seen += 1;
                let n = trie.token(t).len();
                if best.is_none_or(|(m, _)| n > m) {
                    best = Some((n, t));
                }
            }
            if seen >= SCAN_LIMIT {
                break;
            }
        }
        best.map(|(_, t)| t)
    }

    /// The way out of `parser`'s state (next-token mask `mask`, string state `st`), following
    /// and updating `path` (the rest of a searched path, searched here when needed).
    fn way(&self, parser: &mut Parser, mask: &SimpleVob, st: JsonState, path: &mut Vec<u8>) -> Way {
        if let Some((key, t)) = self.best_closer(mask, st) {
            return Way::Closers(key, t);
        }
        let trie = self.env.tok_trie();
        if !path.is_empty() {
            if let Some(t) = search::next_on_path(trie, mask, path) {
                return Way::Path(t);
            }
            path.clear();
        }
        // A string that cannot end here, or free content (a number): search for the way out.
        // Few allowed tokens outside a string is fixed text (a required key): take it.
        let searchable = st.in_string || mask.num_set() > FORCED_LIMIT;
        if searchable && self.used >= self.search_after.get() {
            let (alphabet, goals) = if st.in_string {
                (&self.alphabet[..], STRING_GOALS)
            } else {
                (&self.value_alphabet[..], VALUE_GOALS)
            };
            let t0 = Instant::now();
            let found = parser.shortest_exit(alphabet, goals);
            tracing::trace!(
                us = t0.elapsed().as_micros() as u64,
                found = ?found.as_deref().map(String::from_utf8_lossy),
                "json closing search"
            );
            let next = found.and_then(|found| {
                let mut p = parser.pending_bytes();
                p.extend_from_slice(&found);
                search::next_on_path(trie, mask, &p).map(|t| (p, t))
            });
            match next {
                Some((p, t)) => {
                    *path = p;
                    return Way::Path(t);
                }
                // Also keeps a dry run from searching again at every step.
                None => self.search_after.set(self.used + SEARCH_RETRY),
            }
        }
        Way::Longest
    }

    /// Tokens the dry run needs to end the document from `parser`'s state (whose next-token
    /// mask is `mask`), with the tokens it took; `cap` (and no tokens) when it takes at least
    /// that many.
    fn cost(
        &self,
        mut parser: Parser,
        mask: &SimpleVob,
        st: JsonState,
        eos: u32,
        cap: usize,
    ) -> Measured {
        let mut mask = Cow::Borrowed(mask);
        let mut st = st;
        let mut path = Vec::new();
        let mut taken = Vec::new();
        let trie = self.env.tok_trie();
        for steps in 0..cap {
            if mask.is_allowed(eos) {
                return (steps + 1, taken);
            }
            let t = match self.way(&mut parser, &mask, st, &mut path) {
                Way::Closers(_, t) | Way::Path(t) => Some(t),
                Way::Longest => self.longest(&mask),
            };
            let Some(t) = t else {
                return (cap, Vec::new());
            };
            if parser.consume(t).is_err() {
                return (cap, Vec::new());
            }
            let bytes = trie.token(t);
            st.feed(bytes);
            follow(&mut path, bytes);
            taken.push(t);
            if parser.is_stopped() {
                return (steps + 1, taken);
            }
            match parser.compute_mask() {
                Ok(next) if !next.is_zero() => mask = Cow::Owned(next),
                _ => return (cap, Vec::new()),
            }
        }
        (cap, Vec::new())
    }

    /// Decides whether to steer from here and narrows `mask` if so.
    pub(super) fn update(&mut self, parser: &mut Parser, mask: &SimpleVob, eos: u32) {
        self.narrowed = false;
        let measured = self.measured.take();
        let left = self.left();
        if !self.steering && self.near() {
            let t0 = Instant::now();
            let cached = measured.is_some();
            let (need, dry) =
                measured.unwrap_or_else(|| self.cost(parser.fork(), mask, self.json, eos, left));
            self.last_need = Some(need);
            self.dry = dry;
            // Slack for the model's free step before steering bites; `veto` covers a free step
            // that costs more than that (e.g. opening another member).
            self.steering = need + 2 >= left;
            tracing::trace!(
                left,
                need,
                cached,
                us = t0.elapsed().as_micros() as u64,
                steering = self.steering,
                "json closing cost"
            );
        }
        self.narrow(parser, mask);
    }

    /// While steering, narrows to the dry run's way out: the best closers, the next token of
    /// the searched path, or forced text (the longest allowed tokens); free content with no
    /// way found stays the model's.
    fn narrow(&mut self, parser: &mut Parser, mask: &SimpleVob) {
        if !self.steering {
            return;
        }
        let mut path = std::mem::take(&mut self.path);
        let way = self.way(parser, mask, self.json, &mut path);
        self.path = path;
        let trie = self.env.tok_trie();
        if self.scratch.len() != mask.len() {
            self.scratch = SimpleVob::alloc(mask.len());
        } else {
            self.scratch.set_all(false);
        }
        match way {
            Way::Closers(key, _) => {
                for &t in self.closers.iter() {
                    let b = trie.token(t);
                    if mask.is_allowed(t) && (self.json.closer_rank(b), b.len()) == key {
                        self.scratch.allow_token(t);
                    }
                }
            }
            Way::Path(t) => self.scratch.allow_token(t),
            Way::Longest => {
                if mask.num_set() > FORCED_LIMIT {
                    return;
                }
                let mut longest = 0;
                mask.iter_set_entries(|t| longest = longest.max(trie.token(t as u32).len()));
                mask.iter_set_entries(|t| {
                    if trie.token(t as u32).len() == longest {
                        self.scratch.allow_token(t as u32);
                    }
                });
            }
        }
        self.steered = true;
        self.narrowed = true;
    }

    /// Checks a sampled token against the budget before it is committed: when taking it would
    /// leave too few tokens to close the document, steering starts now; returns whether the
    /// token must be sampled again (from [`Closing::narrowed`]).
    pub(super) fn veto(
        &mut self,
        parser: &mut Parser,
        mask: &SimpleVob,
        token: u32,
        eos: u32,
    ) -> bool {
        if self.steering || !self.near() || self.narrowed {
            return false;
        }
        let left = self.left();
        let mut m = parser.fork();
        let mut st = self.json;
        st.feed(self.env.tok_trie().token(token));
        let rest = left.saturating_sub(1);
        let measured = if m.consume(token).is_err() {
            None
        } else if m.is_stopped() {
            Some((0, Vec::new()))
        } else {
            match m.compute_mask() {
                Ok(next) if !next.is_zero() => Some(self.cost(m, &next, st, eos, rest)),
                _ => None,
            }
        };
        match measured {
            // A token that completes the document (cost 0) always fits.
            Some(x) if x.0 < rest || x.0 == 0 => {
                self.vetted = Some((token, x));
                false
            }
            _ => {
                self.steering = true;
                self.narrow(parser, mask);
                self.narrowed
            }
        }
    }

    /// Follows a committed token: budget, string state, the steered path and the cached costs.
    pub(super) fn commit(&mut self, token: u32) {
        self.used += 1;
        let bytes = self.env.tok_trie().token(token);
        self.json.feed(bytes);
        follow(&mut self.path, bytes);
        self.narrowed = false;
        self.measured = match (self.vetted.take(), self.dry.first()) {
            (Some((t, m)), _) if t == token => Some(m),
            (_, Some(&t)) if t == token => {
                let need = self.last_need.map_or(0, |n| n.saturating_sub(1));
                Some((need, self.dry.split_off(1)))
            }
            _ => None,
        };
        self.dry.clear();
    }
}

/// Advances `path` past a token's `bytes`, or drops it when the token left it.
fn follow(path: &mut Vec<u8>, bytes: &[u8]) {
    if path.starts_with(bytes) {
        path.drain(..bytes.len());
    } else {
        path.clear();
    }
}
