//! Special tokens llama.cpp derives from token texts, and the prompt partition that splits
//! special-token texts out of raw text before tokenizing.
//!
//! Converted GGUF files often lack `eot_token_id` and friends, so llama.cpp recognises
//! well-known texts (`<|eot_id|>`, `<end_of_turn>`, ...), marks them as control tokens and
//! collects an end-of-generation set. We follow the same lists so that generation stops
//! on the same tokens.

use aho_corasick::AhoCorasick;
use hanlin_gguf::GgufFile;

use crate::error::TokenizerError;
use crate::vocab::{attr, Vocab};

const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Fills in EOT/EOM/FIM ids found by text, marks unused tokens, builds the EOG set and
/// applies the per-model strip attributes.
pub(crate) fn derive_special(v: &mut Vocab, g: &GgufFile) -> Result<(), TokenizerError> {
    // llama.cpp walks an unordered map and keeps the first hit. With libstdc++ that
    // visits later ids first (Qwen 2 gets <|im_end|>, Llama 3 <|eot_id|>, Phi-3 <|end|>
    // rather than <|endoftext|>), so search from the highest id down.
    let n = v.tokens.len() as u32;
    type Slot = fn(&mut Vocab) -> &mut Option<u32>;
    let slots: [(&[&str], Slot); 8] = [
        (EOT_TEXTS, |v| &mut v.eot),
        (EOM_TEXTS, |v| &mut v.eom),
        (FIM_PRE_TEXTS, |v| &mut v.fim.pre),
        (FIM_SUF_TEXTS, |v| &mut v.fim.suf),
        (FIM_MID_TEXTS, |v| &mut v.fim.mid),
        (FIM_PAD_TEXTS, |v| &mut v.fim.pad),
        (FIM_REP_TEXTS, |v| &mut v.fim.rep),
        (FIM_SEP_TEXTS, |v| &mut v.fim.sep),
    ];
    for (texts, slot) in slots {
        if slot(v).is_some() {
            continue;
        }
        if let Some(id) = (0..n)
            .rev()
            .find(|&id| texts.contains(&v.tokens[id as usize].text.as_str()))
        {
            *slot(v) = Some(id);
            v.tokens[id as usize].attr |= attr::CONTROL;
        }
    }

    // Control tokens named "unused" are unused.
    for t in &mut v.tokens {
        if t.attr & attr::CONTROL != 0 && t.text.contains("unused") {
            t.attr |= attr::UNUSED;
        }
    }

    let mut eog = std::collections::BTreeSet::new();
    eog.extend([v.fim.pad, v.fim.rep, v.fim.sep].into_iter().flatten());
    for (id, t) in v.tokens.iter_mut().enumerate() {
        if EOG_TEXTS.contains(&t.text.as_str()) {
            eog.insert(id as u32);
            t.attr |= attr::CONTROL;
        }
        // gpt-oss channel markers are always rendered.
        if matches!(
            t.text.as_str(),
            "<|channel|>" | "<|message|>" | "<|start|>" | "<|constrain|>"
        ) {
            t.attr = attr::USER_DEFINED;
        }
    }
    eog.extend([v.eos, v.eot, v.eom].into_iter().flatten());

    // o200k_harmony / solar-open: "<|end|>" ends a message, not the generation.
    let find = |eog: &std::collections::BTreeSet<u32>, text: &str| {
        eog.iter()
            .find(|&&id| v.tokens[id as usize].text == text)
            .copied()
    };
    let end = find(&eog, "<|end|>");
    let call = find(&eog, "<|call|>").or(find(&eog, "<|calls|>"));
    let ret = find(&eog, "<|return|>");
    let flush = find(&eog, "<|flush|>");
    let end_not_eog = end.filter(|_| call.is_some() && (ret.is_some() || flush.is_some()));
    // Gemma 4 and PaddleOCR: "</s>" is an ordinary token there.
    let s_not_eog = find(&eog, "</s>").filter(|_| find(&eog, "<|tool_response>").is_some());
    if let Some(end) = end_not_eog {
        eog.remove(&end);
        v.tokens[end as usize].attr = attr::USER_DEFINED;
    }
    if let Some(s) = s_not_eog {
        eog.remove(&s);
        v.tokens[s as usize].attr = attr::NORMAL;
    }
    v.eog = eog;

    // Per-model strip attributes, keyed on names as llama.cpp does.
    let name = g
        .get_str("general.name")?
        .unwrap_or("")
        .to_ascii_lowercase();
    let pre = g.get_str("tokenizer.ggml.pre")?.unwrap_or("");
    let arch = g.get_str("general.architecture")?.unwrap_or("");
    let contains_any = |s: &str, subs: &[&str]| subs.iter().any(|x| s.contains(x));
    if contains_any(pre, &["jina-v2-de", "jina-v2-es", "jina-v2-code"])
        || contains_any(arch, &["nomic-bert-moe", "jina-bert-v3"])
    {
        if let Some(id) = v.text_to_token("<mask>") {
            v.tokens[id as usize].attr |= attr::LSTRIP;
        }
    } else if contains_any(&name, &["phi-3", "phi3"]) {
        for t in &mut v.tokens {
            if t.attr & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0 {
                t.attr |= attr::RSTRIP;
            }
        }
        if let Some(id) = v.text_to_token("</s>") {
            v.tokens[id as usize].attr |= attr::RSTRIP;
        }
        for text in ["<unk>", "<s>", "<|endoftext|>"] {
            if let Some(id) = v.text_to_token(text) {
                v.tokens[id as usize].attr &= !attr::RSTRIP;
            }
        }
    } else if name.contains("modern-bert") {
        if let Some(id) = v.text_to_token("[MASK]") {
            v.tokens[id as usize].attr |= attr::LSTRIP;
        }
    }
    Ok(())
}

/// Special-token texts in llama.cpp's partition order (longest first), with a matcher
/// that finds which of them occur in a prompt at all.
#[derive(Debug)]
pub(crate) struct SpecialTokens {
    /// Ids of control, user-defined and unknown tokens, longest text first.
    ids: Vec<u32>,
    /// Pattern `i` is the text of `ids[i]`.
    matcher: Option<AhoCorasick>,
}

/// A piece of a prompt: raw text (byte range) or an already-resolved token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    Text(usize, usize),
    Token(u32),
}

impl SpecialTokens {
    pub(crate) fn new(v: &Vocab) -> Result<Self, TokenizerError> {
        let mut ids: Vec<u32> = (0..v.tokens.len() as u32)
            .filter(|&id| {
                v.tokens[id as usize].attr & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN)
                    != 0
            })
            .collect();
        // llama.cpp's std::sort leaves ties in an unspecified order; a stable sort keeps
        // ties by id, which only matters for equal-length texts that overlap.
        ids.sort_by_key(|&id| std::cmp::Reverse(v.tokens[id as usize].text.len()));
        let matcher =
            if ids.is_empty() {
                None
            } else {
                let texts = ids.iter().map(|&id| v.tokens[id as usize].text.as_str());
                Some(AhoCorasick::new(texts).map_err(|e| {
                    TokenizerError::Unsupported(format!("special-token matcher: {e}"))
                })?)
            };
        Ok(SpecialTokens { ids, matcher })
    }

    /// Splits `text` at special-token texts (llama.cpp `tokenizer_st_partition`):
    /// token by token in partition order, each one cut out of every remaining text
    /// fragment at all its occurrences. Without `parse_special` only user-defined tokens
    /// are cut out; control and unknown texts stay plain text.
    pub(crate) fn partition(&self, v: &Vocab, text: &str, parse_special: bool) -> Vec<Fragment> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut frags = vec![Fragment::Text(0, text.len())];
        let Some(matcher) = &self.matcher else {
            return frags;
        };
        // Which pattern indices occur anywhere; the exact pass below runs only for those.
        let mut present = vec![false; self.ids.len()];
        let mut any = false;
        for m in matcher.find_overlapping_iter(text) {
            present[m.pattern().as_usize()] = true;
            any = true;
        }
        if !any {
            return frags;
        }
        let bytes = text.as_bytes();
        for (i, &id) in self.ids.iter().enumerate() {
            if !present[i] {
                continue;
            }
            let tok = &v.tokens[id as usize];
            if !parse_special && tok.attr & (attr::CONTROL | attr::UNKNOWN) != 0 {
                continue;
            }
            let needle = tok.text.as_str();
            let mut next = Vec::with_capacity(frags.len() + 2);
            for &f in &frags {
                let Fragment::Text(mut start, end) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(p) = text[start..end].find(needle) {
                    let m = start + p;
                    let mut left_end = m;
                    if tok.attr & attr::LSTRIP != 0 {
                        while left_end > start && c_isspace(bytes[left_end - 1]) {
                            left_end -= 1;
                        }
                    }
                    if left_end > start {
                        next.push(Fragment::Text(start, left_end));
                    }
                    next.push(Fragment::Token(id));
                    start = m + needle.len();
                    if tok.attr & attr::RSTRIP != 0 {
                        while start < end && c_isspace(bytes[start]) {
                            start += 1;
                        }
                    }
                }
                if start < end {
                    next.push(Fragment::Text(start, end));
                }
            }
            frags = next;
        }
        frags
    }
}

/// C `isspace` in the "C" locale (includes vertical tab, unlike `is_ascii_whitespace`).
fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// Whether llama.cpp treats a token with this text as ending generation.
#[cfg(feature = "hf")]
pub(crate) fn is_eog_text(text: &str) -> bool {
    EOG_TEXTS.contains(&text)
}
