//! Grammar-constrained decoding with llguidance: JSON schemas, Lark grammars and regexes
//! become a per-sequence matcher that says which tokens may come next.
//!
//! The token environment (id → bytes) is built once per model from the tokenizer; control,
//! unused and byte-less tokens are "special" (llguidance's `0xFF` marker), so grammars never
//! allow them by accident. Any end-of-generation token ends a sequence whose grammar accepts.
//! Grammars compile on the caller's thread ([`GrammarEnv::compile`]), so a bad one is a 400
//! before anything is queued; masks are computed on the engine thread right after each
//! sampled token is committed, so a finished grammar stops the sequence without another
//! forward pass.

use std::sync::Arc;

use hanlin_api::{BackendError, Constraint, OutputConstraint};
use hanlin_tokenizer::{TokenKind, Tokenizer};
use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{ApproximateTokEnv, SimpleVob, TokEnv, TokRxInfo, TokTrie};
use llguidance::{Matcher, ParserFactory};
use serde_json::{json, Value};

/// Per-model grammar compiler: the token trie and llguidance's parser factory.
pub(crate) struct GrammarEnv {
    factory: ParserFactory,
    eos: u32,
    eog: Arc<[u32]>,
    /// Tokens that only close JSON (`"`, `}`, `]` and runs of them) plus every end token:
    /// what a JSON sequence is steered to when its `max_tokens` runs out.
    closers: Arc<SimpleVob>,
    /// Token id → bytes, to follow a JSON sequence's nesting depth.
    env: TokEnv,
}

impl std::fmt::Debug for GrammarEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrammarEnv")
            .field("eos", &self.eos)
            .finish()
    }
}

impl GrammarEnv {
    /// Builds the token environment for a model with `n_vocab` logits.
    pub(crate) fn new(tokenizer: &Tokenizer, n_vocab: usize) -> Result<Self, String> {
        let eog: Vec<u32> = tokenizer.eog_ids().iter().copied().collect();
        let eos = tokenizer
            .eos_id()
            .or_else(|| eog.first().copied())
            .ok_or("the tokenizer has no end-of-sequence token")?;
        let mut words = Vec::with_capacity(n_vocab);
        for id in 0..n_vocab as u32 {
            let kind = tokenizer.token_kind(id);
            // Turn markers can be stored as user-defined text; they must still never appear
            // inside, say, a JSON string.
            let normal = matches!(
                kind,
                Some(TokenKind::Normal | TokenKind::UserDefined | TokenKind::Byte)
            ) && !tokenizer.is_eog(id)
                && tokenizer.bos_id() != Some(id);
            let piece = if normal {
                tokenizer.token_to_piece(id, false)
            } else {
                Vec::new()
            };
            if piece.is_empty() {
                // Special: marker byte + name, so grammars can only name it explicitly.
                let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                match tokenizer.token_text(id) {
                    Some(t) if !t.is_empty() => w.extend_from_slice(t.as_bytes()),
                    _ => w.extend_from_slice(format!("<[{id}]>").as_bytes()),
                }
                words.push(w);
            } else {
                words.push(piece);
            }
        }
        let mut closers = SimpleVob::alloc(n_vocab);
        for (id, w) in words.iter().enumerate() {
            if !w.is_empty() && w.iter().all(|b| matches!(b, b'"' | b'}' | b']')) {
                closers.allow_token(id as u32);
            }
        }
        for &t in &eog {
            if (t as usize) < n_vocab {
                closers.allow_token(t);
            }
        }
        let mut info = TokRxInfo::new(n_vocab as u32, eos);
        info.tok_bos = tokenizer.bos_id();
        info.tok_end_of_turn = tokenizer.eot_id();
        let trie = TokTrie::from(&info, &words);
        let env: TokEnv = Arc::new(ApproximateTokEnv::new(trie));
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| e.to_string())?;
        factory.quiet();
        Ok(GrammarEnv {
            factory,
            eos,
            eog: eog.into(),
            closers: Arc::new(closers),
            env,
        })
    }

    /// Compiles `c` into a fresh matcher; errors name `c.param`.
    pub(crate) fn compile(&self, c: &Constraint) -> Result<SeqGrammar, BackendError> {
        let grammar = match &c.kind {
            OutputConstraint::JsonObject => {
                TopLevelGrammar::from_json_schema(with_json_defaults(json!({"type": "object"})))
            }
            OutputConstraint::JsonSchema(s) => {
                TopLevelGrammar::from_json_schema(with_json_defaults(s.clone()))
            }
            OutputConstraint::Lark(g) => TopLevelGrammar::from_lark(g.clone()),
            OutputConstraint::Regex(r) => TopLevelGrammar::from_regex(r),
        };
        let bad = |e: String| BackendError::InvalidRequest {
            param: Some(keyword_param(&c.param, &e)),
            message: format!("Invalid '{}': cannot be enforced: {e}", c.param),
        };
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| bad(e.to_string()))?;
        let mut matcher = Matcher::new(Ok(parser));
        // The first mask also proves the grammar can produce something at all.
        let mask = matcher.compute_mask().map_err(|e| bad(e.to_string()))?;
        if mask.is_zero() {
            return Err(bad("the grammar allows no output".into()));
        }
        let json = matches!(
            c.kind,
            OutputConstraint::JsonObject | OutputConstraint::JsonSchema(_)
        );
        let mut g = SeqGrammar {
            matcher,
            mask,
            eos: self.eos,
            eog: Arc::clone(&self.eog),
            closing: json.then(|| Closing {
                closers: Arc::clone(&self.closers),
                env: self.env.clone(),
                budget: usize::MAX,
                used: 0,
                json: JsonState::default(),
                steering: false,
                last_need: None,
                narrowed: None,
                steered: false,
            }),
        };
        g.widen_eos();
        Ok(g)
    }
}

/// Compact JSON unless the schema says otherwise: free whitespace lets a small model pad
/// forever instead of finishing the object. Integral floats in count keywords (`"maxItems":
/// 2.0`, legal JSON Schema) become integers, which llguidance insists on.
fn with_json_defaults(mut schema: Value) -> Value {
    integral_counts(&mut schema);
    if let Value::Object(m) = &mut schema {
        m.entry("x-guidance").or_insert_with(
            || json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
        );
    }
    schema
}

const COUNT_KEYWORDS: [&str; 6] = [
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
];

fn integral_counts(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x.as_f64() {
                    Some(f)
                        if COUNT_KEYWORDS.contains(&k.as_str())
                            && f >= 0.0
                            && f.fract() == 0.0
                            && !x.is_u64() =>
                    {
                        *x = Value::from(f as u64);
                    }
                    _ => integral_counts(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(integral_counts),
        _ => {}
    }
}

/// llguidance reports unimplemented schema keywords as `Unimplemented keys: ["x"]`; point the
/// error's `param` at the keyword when it does.
fn keyword_param(param: &str, err: &str) -> String {
    err.split("Unimplemented keys: [\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map_or_else(|| param.to_string(), |k| format!("{param}.{k}"))
}

/// What a sequence's grammar says after a token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Sample under [`SeqGrammar::mask`].
    Sample,
    /// The grammar is complete and allows nothing but the end.
    Done,
}

/// One sequence's matcher and the mask for its next token.
pub(crate) struct SeqGrammar {
    matcher: Matcher,
    mask: SimpleVob,
    eos: u32,
    eog: Arc<[u32]>,
    /// JSON only: steering to a valid end before `max_tokens` cuts the document.
    closing: Option<Closing>,
}

/// Budget-aware closing of a JSON document. A small model can loop inside an open-ended
/// schema (an array without `maxItems`, a string without `maxLength`) until `max_tokens` cuts
/// it mid-value, which no client can parse. Within the last [`CLOSING_WINDOW`] tokens, each
/// step measures how many tokens the shortest way out still takes (a greedy dry run on a copy
/// of the matcher: the longest closing token where one is allowed, else the longest allowed
/// token, e.g. a required key), and once that fills the remaining budget the allowed tokens are
/// narrowed to closers (`"`, `}`, `]`, end) whenever the grammar allows one. Strings end,
/// optional members are skipped, containers close; where the grammar allows no closer (a
/// required member, `minItems`, `minLength`), the model keeps choosing.
struct Closing {
    closers: Arc<SimpleVob>,
    env: TokEnv,
    budget: usize,
    used: usize,
    /// String state after the committed tokens.
    json: JsonState,
    /// Steering has begun (it stays on until the end).
    steering: bool,
    /// The last dry run's cost, to skip dry runs while the budget is far from it.
    last_need: Option<usize>,
    /// The mask narrowed to closers, while steering and the grammar allows one.
    narrowed: Option<SimpleVob>,
    /// Whether steering ever narrowed a mask (the output was shaped by the budget).
    steered: bool,
}

/// Where the JSON text so far ends: inside a string or not (the grammar guarantees the rest of
/// the syntax). A token of `}` or `]` closes structure outside a string but is only content
/// inside one, where the closer is `"`.
#[derive(Clone, Copy, Default)]
struct JsonState {
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

    /// Rank of closer `bytes` here (higher first; 0: not a closer here): the end first; inside a string
    /// only tokens starting with the closing quote; outside, tokens starting with `}`/`]`
    /// before a quote that opens a (then immediately closed) string.
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

/// Tokens before `max_tokens` from which the closing cost is measured.
const CLOSING_WINDOW: usize = 96;

/// Set bits examined when looking for the longest allowed token (a string's content allows
/// most of the vocabulary; any of it makes progress).
const SCAN_LIMIT: usize = 4096;

impl Closing {
    fn left(&self) -> usize {
        self.budget.saturating_sub(self.used)
    }

    /// The best closers allowed by `mask` in state `st` (highest rank, then longest), as a
    /// mask; `None` when the grammar allows no closer here.
    fn best_closers(&self, mask: &SimpleVob, st: JsonState) -> Option<SimpleVob> {
        let mut m = mask.clone();
        m.and(&self.closers);
        if m.is_zero() {
            return None;
        }
        let trie = self.env.tok_trie();
        let key = |t: usize| {
            let b = trie.token(t as u32);
            (st.closer_rank(b), b.len())
        };
        let mut best = (0, 0);
        m.iter_set_entries(|t| best = best.max(key(t)));
        if best.0 == 0 {
            return None;
        }
        let mut keep = m.clone();
        m.iter_set_entries(|t| {
            if key(t) != best {
                keep.disallow_token(t as u32);
            }
        });
        Some(keep)
    }

    /// The token the dry run takes: a best closer, else the longest allowed token.
    fn pick(&self, mask: &SimpleVob, st: JsonState) -> Option<u32> {
        if let Some(c) = self.best_closers(mask, st) {
            return c.first_bit_set().map(|t| t as u32);
        }
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

    /// Tokens the greedy dry run needs to end the document from `matcher`'s state (whose
    /// next-token mask is `mask`); `cap` when it takes at least that many.
    fn cost(
        &self,
        matcher: &Matcher,
        mask: &SimpleVob,
        st: JsonState,
        eos: u32,
        cap: usize,
    ) -> usize {
        let mut m = matcher.deep_clone();
        let mut mask = mask.clone();
        let mut st = st;
        let trie = self.env.tok_trie();
        for steps in 0..cap {
            if mask.is_allowed(eos) {
                return steps + 1;
            }
            let Some(t) = self.pick(&mask, st) else {
                return cap;
            };
            if m.consume_token(t).is_err() {
                return cap;
            }
            st.feed(trie.token(t));
            if m.is_stopped() {
                return steps + 1;
            }
            match m.compute_mask() {
                Ok(next) if !next.is_zero() => mask = next,
                _ => return cap,
            }
        }
        cap
    }

    /// Whether the budget is near enough to the last measured cost to measure again.
    fn near(&self) -> bool {
        let left = self.left();
        left <= CLOSING_WINDOW && self.last_need.is_none_or(|n| left <= n + NEAR)
    }

    /// Decides whether to steer from here and narrows `mask` if so.
    fn update(&mut self, matcher: &Matcher, mask: &SimpleVob, eos: u32) {
        self.narrowed = None;
        let left = self.left();
        if !self.steering && self.near() {
            let need = self.cost(matcher, mask, self.json, eos, left);
            self.last_need = Some(need);
            // Slack for the model's free step before steering bites; `veto` covers a free step
            // that costs more than that (e.g. opening another member).
            self.steering = need + 2 >= left;
            tracing::trace!(left, need, steering = self.steering, "json closing cost");
        }
        self.narrow(mask);
    }

    fn narrow(&mut self, mask: &SimpleVob) {
        if !self.steering {
            return;
        }
        // Follow the dry run's path: the best closers, else (forced text such as a required
        // key) the longest allowed tokens; free content (many choices) stays the model's.
        if let Some(c) = self.best_closers(mask, self.json) {
            self.steered = true;
            self.narrowed = Some(c);
            return;
        }
        if mask.num_set() > FORCED_LIMIT {
            return;
        }
        let trie = self.env.tok_trie();
        let mut longest = 0;
        mask.iter_set_entries(|t| longest = longest.max(trie.token(t as u32).len()));
        let mut keep = mask.clone();
        mask.iter_set_entries(|t| {
            if trie.token(t as u32).len() < longest {
                keep.disallow_token(t as u32);
            }
        });
        self.steered = true;
        self.narrowed = Some(keep);
    }
}

/// Within this many tokens of the last measured cost, every step measures again.
const NEAR: usize = 16;

/// At most this many allowed tokens and no closer: the grammar is spelling out fixed text.
const FORCED_LIMIT: usize = 64;

impl std::fmt::Debug for SeqGrammar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqGrammar")
            .field("allowed", &self.mask.num_set())
            .finish()
    }
}

impl SeqGrammar {
    /// Bit `i` of word `i / 32` set: token `i` may come next.
    pub(crate) fn mask(&self) -> &[u32] {
        match self.closing.as_ref().and_then(|c| c.narrowed.as_ref()) {
            Some(m) => m.as_slice(),
            None => self.mask.as_slice(),
        }
    }

    /// Tells a JSON grammar how many tokens the sequence may still produce, so that it closes
    /// the document before they run out (see [`Closing`]).
    pub(crate) fn set_budget(&mut self, max_tokens: usize) {
        if let Some(c) = self.closing.as_mut() {
            c.budget = max_tokens;
            c.update(&self.matcher, &self.mask, self.eos);
        }
    }

    /// Checks a sampled token against the budget before it is committed: when taking it would
    /// leave too few tokens to close the document, steering starts now and the mask to
    /// sample again from is returned (`None`: keep the token).
    pub(crate) fn veto(&mut self, token: u32) -> Option<&[u32]> {
        let c = self.closing.as_mut()?;
        if c.steering || !c.near() || c.narrowed.is_some() {
            return None;
        }
        let left = c.left();
        let mut m = self.matcher.deep_clone();
        let mut st = c.json;
        st.feed(c.env.tok_trie().token(token));
        let fits = m.consume_token(token).is_ok()
            && (m.is_stopped()
                || match m.compute_mask() {
                    Ok(next) if !next.is_zero() => {
                        let rest = left.saturating_sub(1);
                        c.cost(&m, &next, st, self.eos, rest) < rest
                    }
                    _ => false,
                });
        if fits {
            return None;
        }
        c.steering = true;
        c.narrow(&self.mask);
        c.narrowed.as_ref().map(SimpleVob::as_slice)
    }

    /// Whether the budget steered this output to an early close (the document is complete
    /// and valid, but shorter than the model would have made it).
    pub(crate) fn closed_early(&self) -> bool {
        self.closing.as_ref().is_some_and(|c| c.steered)
    }

    /// Commits a sampled (allowed) token and computes the next mask.
    pub(crate) fn commit(&mut self, token: u32) -> Result<Next, String> {
        self.matcher
            .consume_token(token)
            .map_err(|e| e.to_string())?;
        if let Some(c) = self.closing.as_mut() {
            c.used += 1;
            c.json.feed(c.env.tok_trie().token(token));
            c.narrowed = None;
        }
        if self.matcher.is_stopped() {
            return Ok(Next::Done);
        }
        self.mask = self.matcher.compute_mask().map_err(|e| e.to_string())?;
        if self.mask.is_zero() {
            return Err("the grammar allows no further token".into());
        }
        if self.mask.num_set() == 1 && self.mask.is_allowed(self.eos) {
            return Ok(Next::Done);
        }
        self.widen_eos();
        if let Some(c) = self.closing.as_mut() {
            c.update(&self.matcher, &self.mask, self.eos);
        }
        Ok(Next::Sample)
    }

    /// Where the grammar allows the end, every end-of-generation token ends it (a chat model
    /// ends its turn with `<end_of_turn>` or `<|im_end|>`, not `</s>`).
    fn widen_eos(&mut self) {
        if self.mask.is_allowed(self.eos) {
            for &t in self.eog.iter() {
                if (t as usize) < self.mask.len() {
                    self.mask.allow_token(t);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_is_pulled_from_llguidance_errors() {
        assert_eq!(
            keyword_param("format", "Unimplemented keys: [\"uniqueItems\"]"),
            "format.uniqueItems"
        );
        assert_eq!(keyword_param("format", "other"), "format");
    }

    #[test]
    fn json_defaults_do_not_override_the_client() {
        let s = with_json_defaults(
            json!({"type": "object", "x-guidance": {"whitespace_flexible": true}}),
        );
        assert_eq!(s["x-guidance"]["whitespace_flexible"], true);
        let s = with_json_defaults(json!({"type": "object"}));
        assert_eq!(s["x-guidance"]["whitespace_flexible"], false);
        let s = with_json_defaults(json!({"items": {"maxLength": 2.0}, "minItems": 1.5}));
        assert_eq!(s["items"]["maxLength"], json!(2));
        assert_eq!(s["minItems"], json!(1.5));
    }
}
