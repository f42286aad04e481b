//! Splitting text into words before BPE, as llama.cpp's `unicode_regex_split` does it.
//!
//! Patterns are applied one after another; each splits every current piece further, and
//! the text between matches stays a piece of its own. GPT-2's and Llama 3's patterns run
//! as hand-written scanners (llama.cpp's `unicode_regex_split_custom_*`, which is what the
//! reference output comes from). Every other pattern runs on a "collapsed" copy of the text
//! in which each non-ASCII code point is replaced by one stand-in per Unicode category, and
//! `\p{..}` in the pattern by that stand-in plus the category's ASCII members — exactly
//! llama.cpp's trick, so classes agree with it even where they differ from full Unicode
//! (for instance `~` is not in its collapsed `\p{S}`).

use fancy_regex::Regex;

use crate::error::TokenizerError;
use crate::pre::{GPT2, LLAMA3, LLAMA3_ORIG};
use crate::unicode::{byte_to_char, CptFlags};

/// One split pass.
#[derive(Debug)]
enum Rule {
    Gpt2,
    Llama3,
    /// A pattern on the collapsed text (`true`) or on the text with non-ASCII whitespace
    /// turned into `\x0B` (`false`).
    Regex(Box<Regex>, bool),
}

/// A compiled pre-tokenizer.
#[derive(Debug)]
pub(crate) struct Splitter {
    rules: Vec<Rule>,
    byte_encode: bool,
}

/// Stand-ins for non-ASCII code points in the collapsed text, one per category. llama.cpp
/// uses the bytes 0xD0..0xD5; private-use characters play that role in a UTF-8 string.
const COLLAPSED_OTHER: char = '\u{E0D0}';
const COLLAPSED_NUMBER: char = '\u{E0D1}';
const COLLAPSED_LETTER: char = '\u{E0D2}';
const COLLAPSED_PUNCT: char = '\u{E0D3}';
const COLLAPSED_MARK: char = '\u{E0D4}';
const COLLAPSED_SYMBOL: char = '\u{E0D5}';

/// `\p{..}` names llama.cpp understands, with their stand-in and ASCII members.
fn category_class(name: &str) -> Option<(char, &'static str)> {
    const NUMBER: &str = "0-9";
    const LETTER: &str = "A-Za-z";
    const PUNCT: &str = r"!-#%-*,-/:-;?-@\[-\]_\{\}";
    const SYMBOL: &str = r"\$\+<->^`\|";
    Some(match name {
        r"\p{N}" => (COLLAPSED_NUMBER, NUMBER),
        r"\p{L}" | r"\p{Lu}" | r"\p{Ll}" | r"\p{Lt}" | r"\p{Lm}" | r"\p{Lo}" => {
            (COLLAPSED_LETTER, LETTER)
        }
        r"\p{P}" => (COLLAPSED_PUNCT, PUNCT),
        r"\p{M}" => (COLLAPSED_MARK, ""),
        r"\p{S}" => (COLLAPSED_SYMBOL, SYMBOL),
        _ => return None,
    })
}

fn uses_categories(pattern: &str) -> bool {
    ["\\p{N}", "\\p{L}", "\\p{P}", "\\p{M}", "\\p{S}"]
        .iter()
        .any(|c| pattern.contains(c))
}

/// Rewrites `\p{..}` into collapsed-text classes (llama.cpp's loop, including its rule
/// for telling whether we are inside `[...]`).
fn collapse_pattern(pattern: &str) -> Result<String, TokenizerError> {
    if !pattern.is_ascii() {
        return Err(TokenizerError::Pattern {
            pattern: pattern.to_string(),
            msg: "mixes unicode categories and non-ASCII characters".to_string(),
        });
    }
    let b = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len() * 2);
    let mut inside = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'[' && (i == 0 || b[i - 1] != b'\\') {
            out.push('[');
            inside = true;
            i += 1;
            continue;
        }
        if inside && c == b']' && b[i - 1] != b'\\' {
            out.push(']');
            inside = false;
            i += 1;
            continue;
        }
        if c == b'\\' && i + 3 < b.len() && b[i + 1] == b'p' && b[i + 2] == b'{' {
            if let Some(close) = pattern[i + 3..].find('}').map(|p| p + i + 3) {
                if close <= i + 10 {
                    if let Some((stand_in, ascii)) = category_class(&pattern[i..=close]) {
                        if !inside {
                            out.push('[');
                        }
                        out.push(stand_in);
                        out.push_str(ascii);
                        if !inside {
                            out.push(']');
                        }
                        i = close + 1;
                        continue;
                    }
                }
            }
        }
        out.push(char::from(c));
        i += 1;
    }
    Ok(out)
}

fn collapse_char(c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    let f = CptFlags::of(c);
    if f.is_whitespace() {
        return '\x0B';
    }
    match f.category() {
        CptFlags::NUMBER => COLLAPSED_NUMBER,
        CptFlags::LETTER => COLLAPSED_LETTER,
        CptFlags::PUNCTUATION => COLLAPSED_PUNCT,
        CptFlags::ACCENT_MARK => COLLAPSED_MARK,
        CptFlags::SYMBOL => COLLAPSED_SYMBOL,
        _ => COLLAPSED_OTHER,
    }
}

/// A transformed copy of the text with the byte offset of every code point (and the end).
struct Mapped {
    text: String,
    offs: Vec<usize>,
}

impl Mapped {
    fn new(cpts: &[char], f: impl Fn(char) -> char) -> Self {
        let mut text = String::with_capacity(cpts.len());
        let mut offs = Vec::with_capacity(cpts.len() + 1);
        for &c in cpts {
            offs.push(text.len());
            text.push(f(c));
        }
        offs.push(text.len());
        Mapped { text, offs }
    }

    /// Code-point index of a byte offset that starts a code point.
    fn cpt_at(&self, byte: usize) -> usize {
        self.offs.partition_point(|&o| o < byte)
    }
}

impl Splitter {
    /// Compiles the patterns of one pre-tokenizer.
    pub(crate) fn new(patterns: &[&str], byte_encode: bool) -> Result<Self, TokenizerError> {
        let mut rules = Vec::with_capacity(patterns.len());
        for &p in patterns {
            let rule = if p == GPT2 {
                Rule::Gpt2
            } else if p == LLAMA3 || p == LLAMA3_ORIG {
                Rule::Llama3
            } else {
                let collapsed = uses_categories(p);
                let src = if collapsed {
                    collapse_pattern(p)?
                } else {
                    p.to_string()
                };
                let re = Regex::new(&src).map_err(|e| TokenizerError::Pattern {
                    pattern: p.to_string(),
                    msg: e.to_string(),
                })?;
                Rule::Regex(Box::new(re), collapsed)
            };
            rules.push(rule);
        }
        Ok(Splitter { rules, byte_encode })
    }

    /// Whether words come out GPT-2 byte-encoded.
    pub(crate) fn byte_encode(&self) -> bool {
        self.byte_encode
    }

    /// Splits `text` into words (GPT-2 byte-encoded when the vocabulary is byte-level).
    pub(crate) fn split(&self, text: &str) -> Result<Vec<String>, TokenizerError> {
        let cpts: Vec<char> = text.chars().collect();
        let mut pieces = vec![cpts.len()];
        let mut collapsed: Option<Mapped> = None;
        let mut wide: Option<Mapped> = None;
        for rule in &self.rules {
            pieces = match rule {
                Rule::Gpt2 => split_gpt2(&cpts, &pieces),
                Rule::Llama3 => split_llama3(&cpts, &pieces),
                Rule::Regex(re, true) => {
                    let m = collapsed.get_or_insert_with(|| Mapped::new(&cpts, collapse_char));
                    split_regex(re, m, &pieces)?
                }
                Rule::Regex(re, false) => {
                    let m = wide.get_or_insert_with(|| {
                        Mapped::new(&cpts, |c| {
                            if !c.is_ascii() && CptFlags::of(c).is_whitespace() {
                                '\x0B'
                            } else {
                                c
                            }
                        })
                    });
                    split_regex(re, m, &pieces)?
                }
            };
        }
        let mut words = Vec::with_capacity(pieces.len());
        let mut start = 0;
        for len in pieces {
            let word: String = cpts[start..start + len].iter().collect();
            start += len;
            if self.byte_encode {
                words.push(word.bytes().map(byte_to_char).collect());
            } else {
                words.push(word);
            }
        }
        Ok(words)
    }
}

fn split_regex(re: &Regex, m: &Mapped, pieces: &[usize]) -> Result<Vec<usize>, TokenizerError> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut start = 0usize;
    for &len in pieces {
        let (b0, b1) = (m.offs[start], m.offs[start + len]);
        let sub = &m.text[b0..b1];
        let mut last = start;
        for found in re.find_iter(sub) {
            let found = found.map_err(|e| TokenizerError::Pattern {
                pattern: re.as_str().to_string(),
                // The backtracking matcher bounds its work; only pathological input (a run
                // of about a million whitespace characters) gets here.
                msg: format!("input too long or repetitive to split: {e}"),
            })?;
            let (s, e) = (m.cpt_at(b0 + found.start()), m.cpt_at(b0 + found.end()));
            if s > last {
                out.push(s - last);
            }
            // Empty matches make empty words, which the next pass or BPE drops anyway.
            if e > s {
                out.push(e - s);
            }
            last = e.max(last);
        }
        if last < start + len {
            out.push(start + len - last);
        }
        start += len;
    }
    Ok(out)
}

/// Cursor over one piece: code points outside it read as "nothing" (no flags).
struct Piece<'a> {
    cpts: &'a [char],
    ini: usize,
    end: usize,
    prev_end: usize,
    out: &'a mut Vec<usize>,
}

impl Piece<'_> {
    fn cpt(&self, pos: usize) -> Option<char> {
        (self.ini <= pos && pos < self.end).then(|| self.cpts[pos])
    }
    fn flags(&self, pos: usize) -> CptFlags {
        CptFlags::of_opt(self.cpt(pos))
    }
    /// Ends the current word at `end`; returns its length.
    fn add(&mut self, end: usize) -> usize {
        let len = end - self.prev_end;
        if len > 0 {
            self.out.push(len);
        }
        self.prev_end = end;
        len
    }
}

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
fn split_gpt2(cpts: &[char], pieces: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut start = 0;
    for &len in pieces {
        let mut p = Piece {
            cpts,
            ini: start,
            end: start + len,
            prev_end: start,
            out: &mut out,
        };
        start += len;
        let mut pos = p.ini;
        while pos < p.end {
            let cpt = p.cpt(pos);
            let flags = p.flags(pos);
            if cpt == Some('\'') && pos + 1 < p.end {
                let next = p.cpt(pos + 1);
                if matches!(next, Some('s' | 't' | 'm' | 'd')) {
                    pos += p.add(pos + 2);
                    continue;
                }
                if pos + 2 < p.end {
                    let next2 = p.cpt(pos + 2);
                    if matches!(
                        (next, next2),
                        (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l'))
                    ) {
                        pos += p.add(pos + 3);
                        continue;
                    }
                }
            }
            let space = usize::from(cpt == Some(' '));
            let mut f2 = if space == 1 { p.flags(pos + 1) } else { flags };
            if f2.is_letter() {
                pos += space;
                while f2.is_letter() {
                    pos += 1;
                    f2 = p.flags(pos);
                }
                p.add(pos);
                continue;
            }
            if f2.is_number() {
                pos += space;
                while f2.is_number() {
                    pos += 1;
                    f2 = p.flags(pos);
                }
                p.add(pos);
                continue;
            }
            if !(f2.is_whitespace() || f2.is_letter() || f2.is_number()) && f2.any() {
                pos += space;
                while !(f2.is_whitespace() || f2.is_letter() || f2.is_number()) && f2.any() {
                    pos += 1;
                    f2 = p.flags(pos);
                }
                p.add(pos);
                continue;
            }
            let mut n_ws = 0;
            while p.flags(pos + n_ws).is_whitespace() {
                n_ws += 1;
            }
            if n_ws > 1 && p.cpt(pos + n_ws).is_some() {
                pos += n_ws - 1;
                p.add(pos);
                continue;
            }
            if n_ws > 0 {
                pos += n_ws;
                p.add(pos);
                continue;
            }
            pos += 1;
            p.add(pos);
        }
    }
    out
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
fn split_llama3(cpts: &[char], pieces: &[usize]) -> Vec<usize> {
    let lower = |c: Option<char>| c.map(crate::unicode::to_lower);
    let is_crlf = |c: Option<char>| matches!(c, Some('\r' | '\n'));
    let mut out = Vec::with_capacity(pieces.len());
    let mut start = 0;
    for &len in pieces {
        let mut p = Piece {
            cpts,
            ini: start,
            end: start + len,
            prev_end: start,
            out: &mut out,
        };
        start += len;
        let mut pos = p.ini;
        while pos < p.end {
            let cpt = p.cpt(pos);
            let flags = p.flags(pos);
            if cpt == Some('\'') && pos + 1 < p.end {
                let next = lower(p.cpt(pos + 1));
                if matches!(next, Some('s' | 't' | 'm' | 'd')) {
                    pos += p.add(pos + 2);
                    continue;
                }
                if pos + 2 < p.end {
                    let next2 = lower(p.cpt(pos + 2));
                    if matches!(
                        (next, next2),
                        (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l'))
                    ) {
                        pos += p.add(pos + 3);
                        continue;
                    }
                }
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(is_crlf(cpt) || flags.is_number())
                && (flags.is_letter() || p.flags(pos + 1).is_letter())
            {
                pos += 1;
                while p.flags(pos).is_letter() {
                    pos += 1;
                }
                p.add(pos);
                continue;
            }
            // \p{N}{1,3}
            if flags.is_number() {
                let mut ini = pos;
                while p.flags(pos).is_number() {
                    pos += 1;
                    if pos - ini >= 3 {
                        p.add(pos);
                        ini = pos;
                    }
                }
                p.add(pos);
                continue;
            }
            // <space>?[^\s\p{L}\p{N}]+[\r\n]*
            let space = usize::from(cpt == Some(' '));
            let mut f2 = if space == 1 { p.flags(pos + 1) } else { flags };
            if !(f2.is_whitespace() || f2.is_letter() || f2.is_number()) && flags.any() {
                pos += space;
                while !(f2.is_whitespace() || f2.is_letter() || f2.is_number()) && f2.any() {
                    pos += 1;
                    f2 = p.flags(pos);
                }
                while is_crlf(p.cpt(pos)) {
                    pos += 1;
                }
                p.add(pos);
                continue;
            }
            let mut n_ws = 0;
            let mut last_crlf_end = 0;
            while p.flags(pos + n_ws).is_whitespace() {
                if is_crlf(p.cpt(pos + n_ws)) {
                    last_crlf_end = pos + n_ws + 1;
                }
                n_ws += 1;
            }
            // \s*[\r\n]+
            if last_crlf_end > 0 {
                pos = last_crlf_end;
                p.add(pos);
                continue;
            }
            // \s+(?!\S)
            if n_ws > 1 && p.cpt(pos + n_ws).is_some() {
                pos += n_ws - 1;
                p.add(pos);
                continue;
            }
            if n_ws > 0 {
                pos += n_ws;
                p.add(pos);
                continue;
            }
            pos += 1;
            p.add(pos);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(patterns: &[&str], text: &str) -> Vec<String> {
        Splitter::new(patterns, false).unwrap().split(text).unwrap()
    }

    #[test]
    fn gpt2_splits_like_the_pattern() {
        assert_eq!(
            words(&[GPT2], "Hello world's  end 123!!"),
            ["Hello", " world", "'s", " ", " end", " 123", "!!"]
        );
    }

    #[test]
    fn llama3_groups_digits_by_three_and_newlines() {
        assert_eq!(
            words(&[LLAMA3], "12345 ab\n\n  x"),
            ["123", "45", " ab", "\n\n", " ", " x"]
        );
    }

    #[test]
    fn collapsed_pattern_matches_non_ascii_letters() {
        assert_eq!(words(&[r"\p{L}+"], "déjà vu"), ["déjà", " ", "vu"]);
        assert_eq!(
            collapse_pattern(r"[^\s\p{L}]").unwrap(),
            "[^\\s\u{E0D2}A-Za-z]"
        );
    }
}
