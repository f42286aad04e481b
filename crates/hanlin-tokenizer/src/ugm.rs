//! SentencePiece Unigram (`t5` vocabularies) as llama.cpp runs it (`llm_tokenizer_ugm`):
//! normalize with the model's precompiled character map, then pick the tokenization with
//! the highest total piece score (Viterbi over byte offsets).

use hanlin_gguf::GgufFile;

use crate::error::TokenizerError;
use crate::unicode::utf8_len;
use crate::vocab::{attr, Vocab};

const KEY_CHARSMAP: &str = "tokenizer.ggml.precompiled_charsmap";
/// Penalty below the lowest piece score for a character no piece covers.
const UNKNOWN_PENALTY: f64 = 10.0;

/// Unigram tables: the normalizer's double array and replacement strings, score bounds.
#[derive(Debug)]
pub(crate) struct Ugm {
    xcda: Vec<u32>,
    replacements: Vec<u8>,
    unknown_score: f64,
    /// Longest user-defined token, in bytes (0: none).
    max_user_defined: usize,
}

impl Ugm {
    pub(crate) fn new(v: &Vocab, g: &GgufFile) -> Result<Self, TokenizerError> {
        let mut xcda = Vec::new();
        let mut replacements = Vec::new();
        if let Some(arr) = g.get_array(KEY_CHARSMAP)? {
            let bytes: Vec<u8> = arr
                .iter()
                .map(|x| x.as_i64().map(|b| b as u8))
                .collect::<Option<_>>()
                .ok_or_else(|| TokenizerError::BadMetadata {
                    key: KEY_CHARSMAP,
                    msg: "is not a byte array".to_string(),
                })?;
            let bad = |msg: &str| TokenizerError::BadMetadata {
                key: KEY_CHARSMAP,
                msg: msg.to_string(),
            };
            let head: [u8; 4] = bytes
                .get(..4)
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| bad("too small for its size header"))?;
            let blob = u32::from_le_bytes(head) as usize;
            if blob + 4 >= bytes.len() {
                return Err(bad("double-array size is out of bounds"));
            }
            xcda = bytes[4..4 + blob]
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            replacements = bytes[4 + blob..].to_vec();
        }
        let mut min_score = f32::MAX;
        let mut max_user_defined = 0;
        for t in &v.tokens {
            if t.attr & attr::NORMAL != 0 {
                min_score = min_score.min(t.score);
            }
            if t.attr & attr::USER_DEFINED != 0 {
                max_user_defined = max_user_defined.max(t.text.len());
            }
        }
        Ok(Ugm {
            xcda,
            replacements,
            unknown_score: f64::from(min_score) - UNKNOWN_PENALTY,
            max_user_defined,
        })
    }

    fn node(&self, i: usize) -> Result<u32, TokenizerError> {
        self.xcda
            .get(i)
            .copied()
            .ok_or_else(|| TokenizerError::BadMetadata {
                key: KEY_CHARSMAP,
                msg: format!("double-array index {i} out of bounds"),
            })
    }

    /// Longest user-defined token at the start of `s`, in bytes.
    fn user_defined_prefix(&self, v: &Vocab, s: &str) -> usize {
        (1..=self.max_user_defined.min(s.len()))
            .rev()
            .filter(|&n| s.is_char_boundary(n))
            .find(|&n| {
                v.text_to_token(&s[..n])
                    .is_some_and(|id| v.attr(id) & attr::USER_DEFINED != 0)
            })
            .unwrap_or(0)
    }

    /// Normalization of the longest prefix of `s` the character map knows:
    /// `(replacement, bytes consumed)`.
    fn normalize_prefix<'a>(
        &'a self,
        v: &Vocab,
        s: &'a str,
    ) -> Result<(&'a [u8], usize), TokenizerError> {
        let ud = self.user_defined_prefix(v, s);
        if ud > 0 {
            return Ok((&s.as_bytes()[..ud], ud));
        }
        let mut longest = 0;
        let mut longest_off = 0;
        if !self.xcda.is_empty() {
            let base = |p: u32| (p >> 10) << ((p & (1 << 9)) >> 6);
            let mut node = base(self.node(0)?) as usize;
            for (k, &c) in s.as_bytes().iter().enumerate() {
                if c == 0 {
                    break;
                }
                node ^= c as usize;
                let packed = self.node(node)?;
                if packed & ((1 << 31) | 0xff) != u32::from(c) {
                    break;
                }
                let leaf = (packed >> 8) & 1 == 1;
                node ^= base(packed) as usize;
                if leaf {
                    longest = k + 1;
                    longest_off = (self.node(node)? & ((1 << 31) - 1)) as usize;
                }
            }
        }
        if longest > 0 {
            let rest = self.replacements.get(longest_off..).ok_or_else(|| {
                TokenizerError::BadMetadata {
                    key: KEY_CHARSMAP,
                    msg: "replacement offset out of bounds".to_string(),
                }
            })?;
            let len =
                rest.iter()
                    .position(|&b| b == 0)
                    .ok_or_else(|| TokenizerError::BadMetadata {
                        key: KEY_CHARSMAP,
                        msg: "unterminated replacement string".to_string(),
                    })?;
            return Ok((&rest[..len], longest));
        }
        let n = s.chars().next().map_or(0, char::len_utf8);
        Ok((&s.as_bytes()[..n], n))
    }

    fn normalize(&self, v: &Vocab, input: &str) -> Result<String, TokenizerError> {
        let space: &[u8] = if v.escape_whitespaces {
            "\u{2581}".as_bytes()
        } else {
            b" "
        };
        let prepend = !v.treat_whitespace_as_suffix && v.add_space_prefix;
        let append = v.treat_whitespace_as_suffix && v.add_space_prefix;
        let merge = v.remove_extra_whitespaces;
        let mut out: Vec<u8> = Vec::with_capacity(input.len() * 3);
        let mut prepended = false;
        let mut in_word = false;
        let mut off = 0;
        while off < input.len() {
            let (norm, consumed) = self.normalize_prefix(v, &input[off..])?;
            for &c in norm {
                if c != b' ' {
                    if !in_word {
                        in_word = true;
                        if (prepend && !prepended) || merge {
                            out.extend_from_slice(space);
                            prepended = true;
                        }
                    }
                    out.push(c);
                } else {
                    in_word = false;
                    if !merge {
                        out.extend_from_slice(space);
                    }
                }
            }
            off += consumed.max(1);
            while off < input.len() && !input.is_char_boundary(off) {
                off += 1;
            }
        }
        if append {
            out.extend_from_slice(space);
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Tokenizes one raw-text fragment, appending ids to `out`.
    pub(crate) fn tokenize(
        &self,
        v: &Vocab,
        text: &str,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        let norm = self.normalize(v, text)?;
        let len = norm.len();
        if len == 0 {
            return Ok(());
        }
        #[derive(Clone, Copy)]
        struct Best {
            id: Option<u32>,
            from: usize,
            score: f64,
        }
        let mut best = vec![
            Best {
                id: v.unk,
                from: 0,
                score: f64::MIN,
            };
            len + 1
        ];
        best[0].score = 0.0;
        let b = norm.as_bytes();
        let mut off = 0;
        while off < len {
            let n_char = utf8_len(b[off]).min(len - off);
            let cur = best[off];
            let mut single = false;
            let max = v.max_token_len.min(len - off);
            for n in 1..=max {
                if !norm.is_char_boundary(off + n) {
                    continue;
                }
                let Some(id) = v.text_to_token(&norm[off..off + n]) else {
                    continue;
                };
                let a = v.attr(id);
                if a & (attr::NORMAL | attr::USER_DEFINED | attr::UNUSED) == 0 {
                    continue;
                }
                if n == n_char {
                    single = true;
                }
                let s = if a & attr::USER_DEFINED != 0 {
                    0.0
                } else {
                    f64::from(v.tokens[id as usize].score)
                };
                let challenger = cur.score + s;
                if challenger > best[off + n].score {
                    best[off + n] = Best {
                        id: Some(id),
                        from: off,
                        score: challenger,
                    };
                }
            }
            if !single {
                let challenger = cur.score + self.unknown_score;
                if challenger > best[off + n_char].score {
                    best[off + n_char] = Best {
                        id: v.unk,
                        from: off,
                        score: challenger,
                    };
                }
            }
            off += n_char;
        }
        // Walk back from the end; runs of unknown pieces become one unknown token.
        let start = out.len();
        let mut prev_unknown = false;
        let mut t = best[len];
        loop {
            let unknown = t.id == v.unk;
            if !(prev_unknown && unknown) {
                out.extend(t.id);
            }
            if t.from == 0 {
                break;
            }
            prev_unknown = unknown;
            t = best[t.from];
        }
        out[start..].reverse();
        Ok(())
    }
}
