//! The shortest way out of a value the grammar will not let close yet: a breadth-first search
//! over bytes through llguidance's own recognizer (lexer and Earley parser), from the
//! sequence's current state, for the fewest bytes after which a closing byte is accepted. A
//! `format: email` string the model has not finished, a `pattern` or `minLength` string, a
//! number before a required `,` all end this way (`a@a"`, `AA"`, `0,` …).
//!
//! States are told apart by the lexer's DFA state (derivre's, one per regex derivative).
//! Inside one lexeme — a JSON string is one — the parser's row is fixed, so two paths that
//! reach the same lexer state have the same futures and only the first (shortest) is kept;
//! that keeps the search to a handful of states per byte of depth. Across a lexeme boundary
//! the key is coarser (rows are not part of it), which can only hide a path, never yield an
//! invalid one: every byte is pushed through the real parser.

use std::collections::HashSet;

use llguidance::derivre::StateID;
use llguidance::earley::ParserRecognizer;
use llguidance::toktrie::{Recognizer, SimpleVob, TokTrie};
use llguidance::TokenParser;

/// Longest path searched: further than a closing window's worth of tokens is no help.
const MAX_PATH: usize = 64;

/// Bytes pushed per search at most (measured: an email completion takes a few hundred, a
/// 20-character `minLength` about 2000; a push costs nanoseconds once the DFA state exists).
const MAX_PUSHES: usize = 60_000;

/// Lexer fuel a search may spend building new DFA states. llguidance gives the lexer a fuel
/// budget per mask (200 000) and puts it into a permanent error state when that runs out, so
/// the search must stay well inside what the mask computation left. About 1.5 ms of work.
const MAX_FUEL: usize = 20_000;

/// Bytes a completion may use, in order of preference (the first shortest path in this order
/// wins): lowercase letters, digits from 1 (a date's year `1111`, month `11`: never 0000 or
/// 00), uppercase letters, then the rest of printable ASCII. `"` and `\` are left out: they
/// end or escape a string (a search outside a string adds `"` back). Bytes without a
/// single-byte token are left out too, so every path can be spelled in tokens.
pub(super) fn alphabet(trie: &TokTrie) -> Vec<u8> {
    let order = (b'a'..=b'z')
        .chain(b'1'..=b'9')
        .chain([b'0'])
        .chain(b'A'..=b'Z')
        .chain((0x20..=0x7e).filter(|b: &u8| !b.is_ascii_alphanumeric()));
    order
        .filter(|&b| b != b'"' && b != b'\\' && trie.token_id(&[b]).is_some())
        .collect()
}

/// Shortest bytes from `tp`'s state that end in one of `goals` (the goal byte included);
/// `None` when there are none within [`MAX_PATH`] bytes, [`MAX_PUSHES`] pushes and
/// [`MAX_FUEL`]. The parser is left as it was: each node is expanded in llguidance's
/// speculative mode, like a mask computation.
pub(super) fn shortest_exit(
    tp: &mut TokenParser,
    alphabet: &[u8],
    goals: &[u8],
) -> Option<Vec<u8>> {
    let fuel0 = tp.parser.lexer_stats().total_fuel_spent;
    let root = tp.parser.with_recognizer(|r| r.lexer_state());
    let mut nodes = vec![Node {
        parent: u32::MAX,
        byte: 0,
    }];
    let mut seen = HashSet::from([root]);
    let mut level = 0..1;
    let mut pushes = 0;
    let mut path = Vec::with_capacity(MAX_PATH + 1);
    for depth in 0..=MAX_PATH {
        let end = nodes.len();
        for i in level.clone() {
            path_to(&nodes, i, &mut path);
            let grow = depth < MAX_PATH;
            // A goal byte inside a string the path opened is only content (a `}` in `"}`):
            // goals count where the path's quotes are balanced (it has no `\`).
            let balanced = path.iter().filter(|&&b| b == b'"').count() % 2 == 0;
            let goals = if balanced { goals } else { &[] };
            let found = tp.parser.with_recognizer(|r| {
                r.trie_started("closing search");
                let found = expand(r, &path, goals, grow.then_some(alphabet), |s, b| {
                    if seen.insert(s) {
                        nodes.push(Node {
                            parent: i as u32,
                            byte: b,
                        });
                    }
                });
                r.trie_finished();
                found
            });
            if let Some(g) = found {
                path.push(g);
                return Some(path);
            }
            pushes += path.len() + goals.len() + alphabet.len();
            let fuel = tp.parser.lexer_stats().total_fuel_spent - fuel0;
            if pushes > MAX_PUSHES || fuel > MAX_FUEL {
                return None;
            }
        }
        if end == nodes.len() {
            return None;
        }
        level = end..nodes.len();
    }
    None
}

/// A search node: the byte that reached it and its parent (`u32::MAX` for the root).
struct Node {
    parent: u32,
    byte: u8,
}

/// Pushes `path`, then: the first of `goals` accepted after it, if any; else each byte of
/// `alphabet` accepted after it is reported to `child` with the lexer state it leads to.
fn expand(
    r: &mut ParserRecognizer<'_>,
    path: &[u8],
    goals: &[u8],
    alphabet: Option<&[u8]>,
    mut child: impl FnMut(StateID, u8),
) -> Option<u8> {
    // Nodes are only recorded after their path was accepted; a replay cannot fail.
    let replayed = path.iter().take_while(|&&b| r.try_push_byte(b)).count();
    let mut found = None;
    if replayed == path.len() {
        found = goals.iter().copied().find(|&g| {
            let ok = r.try_push_byte(g);
            if ok {
                r.pop_bytes(1);
            }
            ok
        });
        if found.is_none() {
            for &b in alphabet.unwrap_or_default() {
                if r.try_push_byte(b) {
                    let s = r.lexer_state();
                    r.pop_bytes(1);
                    child(s, b);
                }
            }
        }
    }
    r.pop_bytes(replayed);
    found
}

/// The bytes from the root to node `i`.
fn path_to(nodes: &[Node], mut i: usize, path: &mut Vec<u8>) {
    path.clear();
    while let Some(n) = nodes.get(i).filter(|n| n.parent != u32::MAX) {
        path.push(n.byte);
        i = n.parent as usize;
    }
    path.reverse();
}

/// The token to take next along `path`: the longest token `mask` allows whose bytes start
/// the path (so a path becomes few tokens; single bytes always exist, see [`alphabet`]).
pub(super) fn next_on_path(trie: &TokTrie, mask: &SimpleVob, path: &[u8]) -> Option<u32> {
    trie.all_prefixes(path)
        .into_iter()
        .filter(|&t| mask.is_allowed(t))
        .max_by_key(|&t| trie.token_len(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use llguidance::api::TopLevelGrammar;
    use llguidance::toktrie::ApproximateTokEnv;
    use llguidance::ParserFactory;
    use serde_json::json;

    /// A parser for `schema` after `text`, with one token per byte.
    fn parser(schema: serde_json::Value, text: &str) -> TokenParser {
        let env = ApproximateTokEnv::single_byte_env();
        let mut factory = ParserFactory::new_simple(&env).expect("factory");
        factory.quiet();
        let grammar = TopLevelGrammar::from_json_schema(schema);
        let mut tp = factory.create_parser(grammar).expect("parser");
        tp.start_without_prompt();
        for b in text.bytes() {
            tp.consume_token(u32::from(b)).expect("token");
        }
        tp.compute_mask().expect("mask");
        tp
    }

    /// The shortest exit after `text` under `schema`.
    fn exit(schema: serde_json::Value, text: &str, goals: &[u8]) -> Option<String> {
        let mut tp = parser(schema, text);
        let alphabet = alphabet(tp.token_env.tok_trie());
        let found = shortest_exit(&mut tp, &alphabet, goals)?;
        // The parser is untouched: the same search again gives the same answer.
        assert_eq!(
            shortest_exit(&mut tp, &alphabet, goals).as_ref(),
            Some(&found)
        );
        // This environment's tokenization is canonical, so llguidance pushes bytes the grammar
        // forces ahead of the tokens; they are part of the way out.
        let mut path = tp.parser.currently_forced_bytes().to_vec();
        path.extend_from_slice(&found);
        Some(String::from_utf8(path).expect("utf-8"))
    }

    #[test]
    fn strings_end_by_the_shortest_valid_completion() {
        let email = json!({"type": "string", "format": "email"});
        assert_eq!(exit(email.clone(), "\"", b"\"").as_deref(), Some("a@a\""));
        assert_eq!(exit(email, "\"john.smith", b"\"").as_deref(), Some("@a\""));
        let pattern = json!({"type": "string", "pattern": "^[A-Z]{2,5}-[0-9]{2}$"});
        assert_eq!(exit(pattern, "\"Q", b"\"").as_deref(), Some("A-11\""));
        let long = json!({"type": "string", "minLength": 20});
        assert_eq!(
            exit(long, "\"once upon", b"\"").as_deref(),
            Some("aaaaaaaaaaa\"")
        );
        let date = json!({"type": "string", "format": "date"});
        assert_eq!(exit(date, "\"20", b"\"").as_deref(), Some("11-11-11\""));
    }

    #[test]
    fn values_end_at_the_next_separator() {
        let obj = json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 100}, "s": {"type": "string"}}, "required": ["n", "s"], "additionalProperties": false});
        // A value that must be an object with a string: the `}` that counts closes it.
        let nested = json!({"type": "object", "properties": {"o": {"type": "object", "properties": {"s": {"type": "string", "minLength": 1}}, "required": ["s"]}}, "required": ["o"]});
        let mut quote = alphabet(ApproximateTokEnv::single_byte_env().tok_trie());
        quote.push(b'"');
        let mut tp = parser(nested, "{\"o\":");
        let found = shortest_exit(&mut tp, &quote, b"}],").expect("a way out");
        assert_eq!(String::from_utf8_lossy(&found), "{\"s\":\"a\"}");
        assert_eq!(exit(obj, "{\"n\":1", b"}],").as_deref(), Some("11,"));
        // A forced byte (the only one allowed) comes first.
        let plus = json!({"type": "string", "pattern": "^b+$"});
        assert_eq!(exit(plus, "\"", b"\"").as_deref(), Some("b\""));
        // Nothing in reach: only non-ASCII text completes it, or more than the search goes.
        let greek = json!({"type": "string", "pattern": "^(α|β)+$"});
        assert_eq!(exit(greek, "\"", b"\""), None);
        let long = json!({"type": "string", "minLength": 100});
        assert_eq!(exit(long, "\"", b"\""), None);
    }

    #[test]
    fn a_search_too_big_gives_up_within_the_lexer_fuel() {
        // The DFA of this pattern doubles its states with every byte (it must remember where
        // the last 13 letters had an `a`): the shortest answer (14 bytes) is out of reach.
        let rx = json!({"type": "string", "pattern": "^[a-z]*a[a-z]{12}[0-9]$"});
        let mut tp = parser(rx, "\"");
        let alphabet = alphabet(tp.token_env.tok_trie());
        for _ in 0..3 {
            let fuel0 = tp.parser.lexer_stats().total_fuel_spent;
            let t0 = std::time::Instant::now();
            assert_eq!(shortest_exit(&mut tp, &alphabet, b"\""), None);
            let fuel = tp.parser.lexer_stats().total_fuel_spent - fuel0;
            assert!(fuel < MAX_FUEL + 2_000, "{fuel}");
            assert!(t0.elapsed() < std::time::Duration::from_millis(200));
        }
        // The lexer is not in its error state: the parser goes on.
        assert!(!tp.parser.lexer_stats().error);
        tp.consume_token(u32::from(b'a')).expect("token");
        assert!(tp.compute_mask().expect("mask").is_allowed(u32::from(b'b')));
    }
}
