//! llguidance's token parser, driven directly instead of through its `Matcher` wrapper:
//! closing a JSON document needs the parser's byte-level recognizer (see `search.rs`), which
//! `Matcher` keeps private. What `Matcher` adds is kept: a panic inside llguidance becomes an
//! error (the sequence stops) instead of taking the engine thread down.

use std::panic::AssertUnwindSafe;

use llguidance::panic_utils::catch_unwind;
use llguidance::toktrie::SimpleVob;
use llguidance::TokenParser;

use super::search;

pub(super) struct Parser {
    tp: TokenParser,
    /// Set by a panic: the parser's state is no longer to be trusted.
    broken: Option<String>,
}

impl Parser {
    pub(super) fn new(mut tp: TokenParser) -> Self {
        if tp.is_fresh() {
            tp.start_without_prompt();
        }
        Parser { tp, broken: None }
    }

    fn guard<T>(
        &mut self,
        f: impl FnOnce(&mut TokenParser) -> Result<T, String>,
    ) -> Result<T, String> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        let tp = &mut self.tp;
        match catch_unwind(AssertUnwindSafe(move || Ok(f(tp)))) {
            Ok(r) => r,
            Err(e) => {
                let e = e.to_string();
                self.broken = Some(e.clone());
                Err(e)
            }
        }
    }

    /// An independent copy (it shares the lexer's DFA cache, which is only memoisation) for a
    /// dry run.
    pub(super) fn fork(&self) -> Self {
        Parser {
            tp: self.tp.clone(),
            broken: self.broken.clone(),
        }
    }

    /// Advances by one token, and stops the parser if the grammar is complete.
    pub(super) fn consume(&mut self, token: u32) -> Result<(), String> {
        self.guard(|tp| {
            let back = tp.consume_token(token).map_err(|e| e.to_string())?;
            if back != 0 {
                return Err("unexpected backtracking".into());
            }
            tp.check_stop().map(|_| ()).map_err(|e| e.to_string())
        })
    }

    pub(super) fn compute_mask(&mut self) -> Result<SimpleVob, String> {
        self.guard(|tp| tp.compute_mask().map_err(|e| e.to_string()))
    }

    pub(super) fn is_stopped(&self) -> bool {
        self.broken.is_some() || self.tp.stopped()
    }

    /// Bytes the grammar already pushed past the last token (forced text a tokenizer with
    /// canonical tokenization may have fast-forwarded; empty for ours), which the next tokens
    /// must spell first.
    pub(super) fn pending_bytes(&self) -> Vec<u8> {
        self.tp.parser.currently_forced_bytes().to_vec()
    }

    /// [`search::shortest_exit`] from this state; `None` also when llguidance panics.
    pub(super) fn shortest_exit(&mut self, alphabet: &[u8], goals: &[u8]) -> Option<Vec<u8>> {
        self.guard(|tp| Ok(search::shortest_exit(tp, alphabet, goals)))
            .ok()
            .flatten()
    }
}
