//! Grammar-constrained decoding with llguidance: JSON schemas, Lark grammars and regexes
//! become a per-sequence matcher that says which tokens may come next.
//!
//! The token environment (id → bytes) is built once per model from the tokenizer; control,
//! unused and byte-less tokens are "special" (llguidance's `0xFF` marker), so grammars never
//! allow them by accident. Any end-of-generation token ends a sequence whose grammar accepts.
//! Grammars compile on the caller's thread ([`GrammarEnv::compile`]), so a bad one is a 400
//! before anything is queued; masks are computed on the engine thread right after each
//! sampled token is committed, so a finished grammar stops the sequence without another
//! forward pass. A JSON document is closed before `max_tokens` cuts it ([`closing`]).

mod closing;
mod parser;
mod search;

use std::sync::Arc;

use hanlin_api::{BackendError, Constraint, OutputConstraint};
use hanlin_tokenizer::{TokenKind, Tokenizer};
use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{ApproximateTokEnv, SimpleVob, TokEnv, TokRxInfo, TokTrie};
use llguidance::ParserFactory;
use serde_json::{json, Value};

use closing::Closing;
use parser::Parser;

/// Per-model grammar compiler: the token trie and llguidance's parser factory.
pub(crate) struct GrammarEnv {
    factory: ParserFactory,
    eos: u32,
    eog: Arc<[u32]>,
    /// Tokens that only close JSON (`"`, `}`, `]` and runs of them) plus every end token:
    /// what a JSON sequence is steered to when its `max_tokens` runs out.
    closers: Arc<[u32]>,
    /// Bytes a searched way out of a value may use (see [`search::alphabet`]).
    alphabet: Arc<[u8]>,
    /// Token id → bytes, to follow a JSON sequence's string state.
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
        let mut closers: Vec<u32> = (0..n_vocab as u32)
            .filter(|&id| {
                let w = &words[id as usize];
                !w.is_empty() && w.iter().all(|b| matches!(b, b'"' | b'}' | b']'))
            })
            .collect();
        closers.extend(eog.iter().copied().filter(|&t| (t as usize) < n_vocab));
        let mut info = TokRxInfo::new(n_vocab as u32, eos);
        info.tok_bos = tokenizer.bos_id();
        info.tok_end_of_turn = tokenizer.eot_id();
        let trie = TokTrie::from(&info, &words);
        let alphabet = search::alphabet(&trie);
        let env: TokEnv = Arc::new(ApproximateTokEnv::new(trie));
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| e.to_string())?;
        factory.quiet();
        Ok(GrammarEnv {
            factory,
            eos,
            eog: eog.into(),
            closers: closers.into(),
            alphabet: alphabet.into(),
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
        let mut parser = Parser::new(parser);
        // The first mask also proves the grammar can produce something at all.
        let mask = parser.compute_mask().map_err(bad)?;
        if mask.is_zero() {
            return Err(bad("the grammar allows no output".into()));
        }
        let json = matches!(
            c.kind,
            OutputConstraint::JsonObject | OutputConstraint::JsonSchema(_)
        );
        let mut g = SeqGrammar {
            parser,
            mask,
            eos: self.eos,
            eog: Arc::clone(&self.eog),
            closing: json.then(|| {
                Closing::new(
                    self.env.clone(),
                    Arc::clone(&self.closers),
                    Arc::clone(&self.alphabet),
                )
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

/// One sequence's parser and the mask for its next token.
pub(crate) struct SeqGrammar {
    parser: Parser,
    mask: SimpleVob,
    eos: u32,
    eog: Arc<[u32]>,
    /// JSON only: steering to a valid end before `max_tokens` cuts the document.
    closing: Option<Closing>,
}

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
        match self.closing.as_ref().and_then(Closing::narrowed) {
            Some(m) => m.as_slice(),
            None => self.mask.as_slice(),
        }
    }

    /// Tells a JSON grammar how many tokens the sequence may still produce, so that it closes
    /// the document before they run out (see [`closing`]).
    pub(crate) fn set_budget(&mut self, max_tokens: usize) {
        if let Some(c) = self.closing.as_mut() {
            c.budget = max_tokens;
            c.update(&mut self.parser, &self.mask, self.eos);
        }
    }

    /// Checks a sampled token against the budget before it is committed: when taking it would
    /// leave too few tokens to close the document, steering starts now and the mask to
    /// sample again from is returned (`None`: keep the token).
    pub(crate) fn veto(&mut self, token: u32) -> Option<&[u32]> {
        let c = self.closing.as_mut()?;
        if !c.veto(&mut self.parser, &self.mask, token, self.eos) {
            return None;
        }
        c.narrowed().map(SimpleVob::as_slice)
    }

    /// Whether the budget steered this output to an early close (the document is complete
    /// and valid, but shorter than the model would have made it).
    pub(crate) fn closed_early(&self) -> bool {
        self.closing.as_ref().is_some_and(|c| c.steered)
    }

    /// Commits a sampled (allowed) token and computes the next mask.
    pub(crate) fn commit(&mut self, token: u32) -> Result<Next, String> {
        self.parser.consume(token)?;
        if let Some(c) = self.closing.as_mut() {
            c.commit(token);
        }
        if self.parser.is_stopped() {
            return Ok(Next::Done);
        }
        self.mask = self.parser.compute_mask()?;
        if self.mask.is_zero() {
            return Err("the grammar allows no further token".into());
        }
        if self.mask.num_set() == 1 && self.mask.is_allowed(self.eos) {
            return Ok(Next::Done);
        }
        self.widen_eos();
        if let Some(c) = self.closing.as_mut() {
            c.update(&mut self.parser, &self.mask, self.eos);
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
