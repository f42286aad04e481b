//! The vocabulary as llama.cpp builds it from GGUF metadata (`llama_vocab::impl::load`).
//!
//! Loading decides the tokenizer kind, the per-token attributes, the special ids, the
//! add-BOS/EOS flags and the end-of-generation set. Several of these are derived from token
//! *texts* exactly as llama.cpp does (see [`crate::special`]), because converted models
//! routinely lack the metadata and generation must still stop where llama.cpp stops.

use std::collections::{BTreeSet, HashMap};

use hanlin_gguf::{GgufFile, Value};

use crate::error::TokenizerError;
use crate::pre::{bpe_pre, PreSpec};
use crate::split::Splitter;
use crate::text_index::TextIndex;
use crate::ugm::Ugm;

/// Token attribute bits (llama.cpp `llama_token_attr`).
pub(crate) mod attr {
    pub const UNKNOWN: u32 = 1 << 0;
    pub const UNUSED: u32 = 1 << 1;
    pub const NORMAL: u32 = 1 << 2;
    pub const CONTROL: u32 = 1 << 3;
    pub const USER_DEFINED: u32 = 1 << 4;
    pub const BYTE: u32 = 1 << 5;
    pub const LSTRIP: u32 = 1 << 7;
    pub const RSTRIP: u32 = 1 << 8;
}

/// The tokenization algorithm behind a vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VocabKind {
    /// SentencePiece BPE by piece score, byte fallback (`tokenizer.ggml.model = llama`).
    Spm,
    /// Byte-level (or SentencePiece-style) BPE with merge ranks (`gpt2`, `gemma4`).
    Bpe,
    /// BERT WordPiece (`bert`).
    Wpm,
    /// SentencePiece Unigram (`t5`).
    Ugm,
    /// A Hugging Face `tokenizer.json`, run by the `tokenizers` crate.
    HfJson,
}

/// One vocabulary entry.
#[derive(Clone, Debug)]
pub(crate) struct TokenData {
    pub text: String,
    pub score: f32,
    pub attr: u32,
}

/// A loaded GGUF vocabulary and everything derived from it.
#[derive(Debug)]
pub(crate) struct Vocab {
    pub kind: VocabKind,
    pub tokens: Vec<TokenData>,
    pub token_to_id: TextIndex,
    /// BPE merge ranks keyed by `"left right"`.
    pub bpe_ranks: HashMap<String, u32>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    pub fim: Fim,
    pub add_space_prefix: bool,
    pub add_bos: bool,
    pub add_eos: bool,
    pub ignore_merges: bool,
    pub clean_spaces: bool,
    pub remove_extra_whitespaces: bool,
    pub escape_whitespaces: bool,
    pub treat_whitespace_as_suffix: bool,
    pub lowercase: bool,
    pub strip_accents: bool,
    pub max_token_len: usize,
    pub gemma4: bool,
    /// End-of-generation ids.
    pub eog: BTreeSet<u32>,
    /// The BPE word splitter (BPE vocabularies only).
    pub splitter: Option<Splitter>,
    /// Unigram tables (UGM vocabularies only).
    pub ugm: Option<Ugm>,
}

/// Fill-in-the-middle token ids.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Fim {
    pub pre: Option<u32>,
    pub suf: Option<u32>,
    pub mid: Option<u32>,
    pub pad: Option<u32>,
    pub rep: Option<u32>,
    pub sep: Option<u32>,
}

const KEY_MODEL: &str = "tokenizer.ggml.model";
const KEY_PRE: &str = "tokenizer.ggml.pre";
const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_TYPES: &str = "tokenizer.ggml.token_type";
const KEY_MERGES: &str = "tokenizer.ggml.merges";

fn get_bool(g: &GgufFile, key: &str) -> Result<Option<bool>, TokenizerError> {
    Ok(g.get_bool(key)?)
}

/// A token id key; llama.cpp reads it as `uint32_t`.
fn get_id(g: &GgufFile, key: &str) -> Option<u64> {
    g.get(key).and_then(Value::as_u64)
}

/// Overrides `slot` with the id stored under `key` when that id is inside the vocabulary.
fn read_id(g: &GgufFile, key: &str, n: u64, slot: &mut Option<u32>) {
    match get_id(g, key) {
        Some(id) if id < n => *slot = Some(id as u32),
        Some(id) => tracing::warn!("{key} = {id} is outside the vocabulary of {n}"),
        None => {}
    }
}

impl Vocab {
    /// Builds the vocabulary from a GGUF file's `tokenizer.ggml.*` metadata.
    pub(crate) fn from_gguf(g: &GgufFile) -> Result<Self, TokenizerError> {
        let model = g
            .get_str(KEY_MODEL)?
            .ok_or(TokenizerError::MissingKey(KEY_MODEL))?
            .to_string();
        let mut pre_name = g.get_str(KEY_PRE)?.unwrap_or("").to_string();

        // Default special ids per kind (bos, eos, unk, sep, pad, mask); metadata
        // overrides them below.
        type Ids = [Option<u32>; 6];
        let (kind, defaults): (VocabKind, Ids) = match model.as_str() {
            "llama" => (
                VocabKind::Spm,
                [Some(1), Some(2), Some(0), None, None, None],
            ),
            "bert" => (
                VocabKind::Wpm,
                [Some(101), None, Some(100), Some(102), Some(0), Some(103)],
            ),
            "gpt2" => (VocabKind::Bpe, [Some(11), Some(11), None, None, None, None]),
            "gemma4" => {
                pre_name = "gemma4".to_string();
                (VocabKind::Bpe, [None; 6])
            }
            "t5" => (
                VocabKind::Ugm,
                [None, Some(1), Some(2), None, Some(0), None],
            ),
            "no_vocab" | "none" => {
                return Err(TokenizerError::Unsupported(format!(
                    "the model has no vocabulary (tokenizer.ggml.model = {model:?})"
                )))
            }
            other => return Err(TokenizerError::UnknownModel(other.to_string())),
        };
        let [mut bos, mut eos, mut unk, mut sep, mut pad, mut mask] = defaults;

        let mut v = Vocab {
            kind,
            tokens: Vec::new(),
            token_to_id: TextIndex::default(),
            bpe_ranks: HashMap::new(),
            bos: None,
            eos: None,
            eot: None,
            eom: None,
            unk: None,
            sep: None,
            pad: None,
            mask: None,
            fim: Fim::default(),
            add_space_prefix: false,
            add_bos: false,
            add_eos: false,
            ignore_merges: false,
            clean_spaces: false,
            remove_extra_whitespaces: false,
            escape_whitespaces: true,
            treat_whitespace_as_suffix: false,
            lowercase: true,
            strip_accents: true,
            max_token_len: 0,
            gemma4: false,
            eog: BTreeSet::new(),
            splitter: None,
            ugm: None,
        };

        let mut pre: Option<PreSpec> = None;
        match kind {
            VocabKind::Bpe => {
                v.load_merges(g)?;
                let spec = bpe_pre(&pre_name)
                    .ok_or_else(|| TokenizerError::UnknownPre(pre_name.clone()))?;
                if pre_name.is_empty() {
                    tracing::warn!(
                        "GGUF has no tokenizer.ggml.pre: using llama.cpp's default \
                         pre-tokenizer; tokenization may not match the model's"
                    );
                }
                v.add_space_prefix = false;
                v.escape_whitespaces = spec.escape_whitespaces;
                v.clean_spaces = spec.clean_spaces;
                v.ignore_merges = spec.ignore_merges;
                v.add_bos = spec.add_bos;
                v.gemma4 = spec.gemma4;
                if spec.no_bos {
                    bos = None;
                }
                pre = Some(spec);
            }
            VocabKind::Spm => {
                v.add_space_prefix = true;
                v.add_bos = true;
            }
            VocabKind::Wpm => {
                v.clean_spaces = true;
                v.add_bos = true;
            }
            VocabKind::Ugm => {
                v.add_eos = true;
            }
            VocabKind::HfJson => {}
        }
        if let Some(b) = get_bool(g, "tokenizer.ggml.add_space_prefix")? {
            v.add_space_prefix = b;
        }
        if let Some(b) = get_bool(g, "tokenizer.ggml.remove_extra_whitespaces")? {
            v.remove_extra_whitespaces = b;
        }

        v.load_tokens(g)?;
        let n = v.tokens.len() as u64;

        // Special ids: a default outside the vocabulary is dropped; a metadata value outside
        // it is ignored (llama.cpp warns and keeps the default).
        let mut fim = Fim::default();
        let mut eot = None;
        let mut eom = None;
        {
            let slots: [(&str, &mut Option<u32>); 14] = [
                ("tokenizer.ggml.bos_token_id", &mut bos),
                ("tokenizer.ggml.eos_token_id", &mut eos),
                ("tokenizer.ggml.eot_token_id", &mut eot),
                ("tokenizer.ggml.eom_token_id", &mut eom),
                ("tokenizer.ggml.unknown_token_id", &mut unk),
                ("tokenizer.ggml.seperator_token_id", &mut sep),
                ("tokenizer.ggml.padding_token_id", &mut pad),
                ("tokenizer.ggml.mask_token_id", &mut mask),
                ("tokenizer.ggml.fim_pre_token_id", &mut fim.pre),
                ("tokenizer.ggml.fim_suf_token_id", &mut fim.suf),
                ("tokenizer.ggml.fim_mid_token_id", &mut fim.mid),
                ("tokenizer.ggml.fim_pad_token_id", &mut fim.pad),
                ("tokenizer.ggml.fim_rep_token_id", &mut fim.rep),
                ("tokenizer.ggml.fim_sep_token_id", &mut fim.sep),
            ];
            for (key, slot) in slots {
                if slot.is_some_and(|id| u64::from(id) >= n) {
                    *slot = None;
                }
                read_id(g, key, n, slot);
            }
            // Deprecated spellings of the FIM keys, read after (and winning over) the new.
            read_id(g, "tokenizer.ggml.prefix_token_id", n, &mut fim.pre);
            read_id(g, "tokenizer.ggml.suffix_token_id", n, &mut fim.suf);
            read_id(g, "tokenizer.ggml.middle_token_id", n, &mut fim.mid);
        }
        v.bos = bos;
        v.eos = eos;
        v.eot = eot;
        v.eom = eom;
        v.unk = unk;
        v.sep = sep;
        v.pad = pad;
        v.mask = mask;
        v.fim = fim;

        if let Some(b) = get_bool(g, "tokenizer.ggml.add_bos_token")? {
            v.add_bos = b;
        }
        if let Some(b) = get_bool(g, "tokenizer.ggml.add_eos_token")? {
            v.add_eos = b;
        }
        // llama.cpp forces BOS for Gemma 4, whose converted files say otherwise.
        if v.gemma4 {
            v.add_bos = true;
        }
        if v.add_bos && v.bos.is_none() {
            return Err(TokenizerError::BadMetadata {
                key: "tokenizer.ggml.add_bos_token",
                msg: "is true, but tokenizer.ggml.bos_token_id is not set".to_string(),
            });
        }
        if v.add_eos && v.eos.is_none() {
            return Err(TokenizerError::BadMetadata {
                key: "tokenizer.ggml.add_eos_token",
                msg: "is true, but tokenizer.ggml.eos_token_id is not set".to_string(),
            });
        }
        if let Some(b) = get_bool(g, "tokenizer.ggml.normalizer.lowercase")? {
            v.lowercase = b;
            v.strip_accents = b;
        }
        if let Some(b) = get_bool(g, "tokenizer.ggml.normalizer.strip_accents")? {
            v.strip_accents = b;
        }

        crate::special::derive_special(&mut v, g)?;

        if let Some(spec) = pre {
            v.splitter = Some(Splitter::new(&spec.regexes, spec.byte_encode)?);
        }
        if kind == VocabKind::Ugm {
            v.ugm = Some(Ugm::new(&v, g)?);
        }
        Ok(v)
    }

    fn load_merges(&mut self, g: &GgufFile) -> Result<(), TokenizerError> {
        let merges = g
            .get_array(KEY_MERGES)?
            .ok_or(TokenizerError::MissingKey(KEY_MERGES))?;
        self.bpe_ranks.reserve(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            let s = m.as_str().ok_or_else(|| TokenizerError::BadMetadata {
                key: KEY_MERGES,
                msg: format!("entry {rank} is not a string"),
            })?;
            // llama.cpp splits at the first space after the first byte into (left, right);
            // joined back with a space that is the entry itself. Entries without such a
            // space become ("", ""), which no lookup can ask for.
            let has_space = s.as_bytes().iter().skip(1).any(|&b| b == b' ');
            let key = if has_space {
                s.to_string()
            } else {
                " ".to_string()
            };
            self.bpe_ranks.entry(key).or_insert(rank as u32);
        }
        Ok(())
    }

    fn load_tokens(&mut self, g: &GgufFile) -> Result<(), TokenizerError> {
        let texts = g
            .get_array(KEY_TOKENS)?
            .ok_or(TokenizerError::MissingKey(KEY_TOKENS))?;
        let n = texts.len();
        if n > u32::MAX as usize / 2 {
            return Err(TokenizerError::BadMetadata {
                key: KEY_TOKENS,
                msg: format!("{n} tokens is more than any model has"),
            });
        }
        let scores = g.get_array(KEY_SCORES)?;
        let types = g.get_array(KEY_TYPES)?;
        if let Some(s) = scores {
            if s.len() < n {
                return Err(TokenizerError::BadMetadata {
                    key: KEY_SCORES,
                    msg: format!("{} scores for {n} tokens", s.len()),
                });
            }
        }
        if let Some(t) = types {
            if t.len() < n {
                return Err(TokenizerError::BadMetadata {
                    key: KEY_TYPES,
                    msg: format!("{} token types for {n} tokens", t.len()),
                });
            }
        }
        self.tokens.reserve(n);
        let tokens = &self.tokens;
        self.token_to_id
            .reserve(n, |id| tokens[id as usize].text.as_str());
        for (i, t) in texts.iter().enumerate() {
            let mut text = t
                .as_str()
                .ok_or_else(|| TokenizerError::BadMetadata {
                    key: KEY_TOKENS,
                    msg: format!("entry {i} is not a string"),
                })?
                .to_string();
            if text.is_empty() {
                tracing::warn!("empty token at index {i}");
                text = format!("[EMPTY_{i}]");
            }
            let id = i as u32;
            let tokens = &self.tokens;
            if let Some(first) = self
                .token_to_id
                .get(&text, |id| tokens[id as usize].text.as_str())
            {
                return Err(TokenizerError::DuplicateToken {
                    text,
                    first,
                    second: id,
                });
            }
            self.max_token_len = self.max_token_len.max(text.len());
            let score = scores.and_then(|s| s[i].as_f64()).map_or(0.0, |f| f as f32);
            let attr = match types.and_then(|t| t[i].as_i64()) {
                None => attr::NORMAL,
                Some(ty) => match ty {
                    1 => attr::NORMAL,
                    2 => attr::UNKNOWN,
                    3 => attr::CONTROL,
                    4 => attr::USER_DEFINED,
                    5 => attr::UNUSED,
                    6 => attr::BYTE,
                    _ => 0,
                },
            };
            self.tokens.push(TokenData { text, score, attr });
            let tokens = &self.tokens;
            self.token_to_id
                .insert(id, &tokens[id as usize].text, |id| {
                    tokens[id as usize].text.as_str()
                });
        }
        Ok(())
    }

    /// Number of tokens.
    pub(crate) fn n_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// Attributes of an id (0 when out of range).
    pub(crate) fn attr(&self, id: u32) -> u32 {
        self.tokens.get(id as usize).map_or(0, |t| t.attr)
    }

    /// Exact text lookup.
    pub(crate) fn text_to_token(&self, text: &str) -> Option<u32> {
        self.token_to_id
            .get(text, |id| self.tokens[id as usize].text.as_str())
    }

    /// The token for one raw byte (`<0xXX>`, else the byte as a one-char token).
    pub(crate) fn byte_to_token(&self, b: u8) -> Option<u32> {
        match self.kind {
            VocabKind::Spm | VocabKind::Ugm => {
                self.text_to_token(&format!("<0x{b:02X}>")).or_else(|| {
                    std::str::from_utf8(&[b])
                        .ok()
                        .and_then(|s| self.text_to_token(s))
                })
            }
            _ => {
                let c = crate::unicode::byte_to_char(b);
                self.text_to_token(c.encode_utf8(&mut [0; 4]))
            }
        }
    }

    /// The byte a `<0xXX>` token stands for.
    pub(crate) fn token_to_byte(&self, id: u32) -> Option<u8> {
        let text = &self.tokens.get(id as usize)?.text;
        let hex = text.strip_prefix("<0x")?.get(..2)?;
        u8::from_str_radix(hex, 16).ok()
    }

    /// BPE rank of merging `left` and `right`.
    pub(crate) fn bpe_rank(&self, key: &mut String, left: &str, right: &str) -> Option<u32> {
        key.clear();
        key.push_str(left);
        key.push(' ');
        key.push_str(right);
        self.bpe_ranks.get(key.as_str()).copied()
    }
}
