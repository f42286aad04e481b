//! Byte-level BPE pre-tokenizers, chosen by `tokenizer.ggml.pre` (llama.cpp's table).
//!
//! Each entry is the list of split patterns llama.cpp applies one after another, plus the
//! vocabulary flags the name implies. The patterns are kept character for character as
//! llama.cpp has them (its "adapted" forms, e.g. `'[sS]` instead of `(?i:'s)`), because
//! [`crate::split`] recognises two of them by text and runs hand-written splitters instead.

/// GPT-2's pattern; split by the hand-written `gpt2` splitter.
pub(crate) const GPT2: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3's pattern (case-insensitive contractions spelled out); hand-written splitter.
pub(crate) const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's pattern as written in tokenizer.json; also mapped to the hand-written splitter.
pub(crate) const LLAMA3_ORIG: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN35: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const JAIS2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}";
const DEEPSEEK_LLM: [&str; 6] = [
    "[\r\n]",
    // Cased letters (Unicode `L&`), as the deepseek-llm tokenizer.json lists them; spelled
    // with escapes because several of its characters change under NFC.
    "\\s?[A-Za-z\u{B5}\u{C0}-\u{D6}\u{D8}-\u{F6}\u{F8}-\u{1BA}\u{1BC}-\u{1BF}\u{1C4}-\u{293}\u{295}-\u{2AF}\u{370}-\u{373}\u{376}\u{377}\u{37B}-\u{37D}\u{37F}\u{386}\u{388}-\u{38A}\u{38C}\u{38E}-\u{3A1}\u{3A3}-\u{3F5}\u{3F7}-\u{481}\u{48A}-\u{52F}\u{531}-\u{556}\u{10A0}-\u{10C5}\u{13A0}-\u{13F5}\u{13F8}-\u{13FD}\u{1C90}-\u{1CBA}\u{1CBD}-\u{1CBF}\u{1D00}-\u{1D2B}\u{1D6B}-\u{1D77}\u{1D79}-\u{1D9A}\u{1E00}-\u{1F15}\u{1F18}-\u{1F1D}\u{1F20}-\u{1F45}\u{1F48}-\u{1F4D}\u{1F50}-\u{1F57}\u{1F59}\u{1F5B}\u{1F5D}\u{1F5F}-\u{1F7D}\u{1F80}-\u{1FB4}\u{1FB6}-\u{1FBC}\u{1FBE}\u{1FC2}-\u{1FC4}\u{1FC6}-\u{1FCC}\u{1FD0}-\u{1FD3}\u{1FD6}-\u{1FDB}\u{1FE0}-\u{1FEC}\u{1FF2}-\u{1FF4}\u{1FF6}-\u{1FFC}\u{2102}\u{2107}\u{210A}-\u{2113}\u{2115}\u{2119}-\u{211D}\u{2124}\u{2126}\u{2128}\u{212A}-\u{212D}\u{212F}-\u{2134}\u{2139}\u{213C}-\u{213F}\u{2145}-\u{2149}\u{214E}\u{2183}\u{2184}\u{2C00}-\u{2C7B}\u{2C7E}-\u{2CE4}\u{2CEB}-\u{2CEE}\u{2CF2}\u{2CF3}\u{A640}-\u{A66D}\u{A680}-\u{A69B}\u{A722}-\u{A76F}\u{A771}-\u{A787}\u{A78B}-\u{A78E}\u{AB70}-\u{ABBF}\u{FB00}-\u{FB06}\u{FB13}-\u{FB17}\u{FF21}-\u{FF3A}\u{FF41}-\u{FF5A}\u{10400}-\u{1044F}\u{104B0}-\u{104D3}\u{104D8}-\u{104FB}\u{10C80}-\u{10CB2}\u{10CC0}-\u{10CF2}\u{118A0}-\u{118DF}\u{1E900}-\u{1E943}]+",
    r"\s?[!-/:-~！-／：-～‘-‟　-。]+",
    r"\s+$",
    r"[一-龥ࠀ-一가-퟿]+",
    r"\p{N}+",
];
const DEEPSEEK3: [&str; 3] = [
    r"\p{N}{1,3}",
    r"[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
];
const SPARK2_5: [&str; 4] = [
    r"\p{N}{1,3}",
    r"[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+|[\r\n]|\\s+(?!\\S)|\\s+",
    r"\p{N}",
];
const YOUTU: [&str; 2] = [
    r"[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
];
const DEEPSEEK_CODER: [&str; 5] = [
    "[\r\n]",
    r"\s?\p{L}+",
    r"\s?\p{P}+",
    r"[一-龥ࠀ-一가-퟿]+",
    r"\p{N}",
];
const FALCON: [&str; 3] = [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"[0-9][0-9][0-9]"];
const STARCODER: [&str; 2] = [r"\p{N}", GPT2];
const DEFAULT: [&str; 4] = [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"];
const PORO: [&str; 1] = [r" ?[^(\s|.,!?…。，、।۔،)]+"];
const VIKING: [&str; 2] = [r" ?[^(\s|.,!?…。，、।۔،)]+", r"\p{N}"];
const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const CHAMELEON: [&str; 6] = [
    r"<sentinel:[0-9]+>",
    r"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
    r"([\t\n]|    |  )",
    r"\p{N}",
    r"[\p{P}!-/:-@\[-`{-~]",
    GPT2,
];
const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GRANITE_EMB_MULTI: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))*((?=[\p{L}\p{M}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))+((?=[\p{L}\p{M}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const TINY_AYA: [&str; 2] = [
    r"\d{1,3}(?=(?:\d{3})*\b)",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
];
const SUPERBPE: [&str; 2] = [r"\p{N}+", r"(?=(\d{3})+(?!\d))"];
const BAILINGMOE: &str = r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";
const SEED_CODER: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+";
const UFAKZEKA: &str =
    r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LAGUNA: [&str; 2] = [r"[^\n]+|[\n]+", QWEN2];
const EXAONE_MOE: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+";
/// SentencePiece-style BPE (Gemma 4, Sarvam): spaces are already `▁`, only newlines split.
const NEWLINES: [&str; 1] = [r"[^\n]+|[\n]+"];
const MINICPM5: [&str; 2] = [
    r"\p{N}{1,3}",
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
];

/// How a BPE vocabulary pre-tokenizes and which flags its pre-tokenizer name implies.
#[derive(Clone, Debug)]
pub(crate) struct PreSpec {
    /// Split patterns, applied in order.
    pub regexes: Vec<&'static str>,
    /// GPT-2 byte-to-char encoding of each word (false: raw UTF-8 with `<0xXX>` fallback).
    pub byte_encode: bool,
    /// A word that is itself a token is taken whole, without merges.
    pub ignore_merges: bool,
    /// Detokenizer removes spaces before punctuation (`clean_up_tokenization_spaces`).
    pub clean_spaces: bool,
    /// Default for `add_bos` before the GGUF key is read.
    pub add_bos: bool,
    /// Spaces become `▁` before splitting (SentencePiece-style BPE).
    pub escape_whitespaces: bool,
    /// The name disables the default BOS id (GLM-4).
    pub no_bos: bool,
    /// Gemma 4 quirks: newline-run words, forced `add_bos`.
    pub gemma4: bool,
}

impl PreSpec {
    fn new(regexes: &[&'static str]) -> Self {
        PreSpec {
            regexes: regexes.to_vec(),
            byte_encode: true,
            ignore_merges: false,
            clean_spaces: true,
            add_bos: false,
            escape_whitespaces: false,
            no_bos: false,
            gemma4: false,
        }
    }
    fn no_clean(mut self) -> Self {
        self.clean_spaces = false;
        self
    }
    fn ignore_merges(mut self) -> Self {
        self.ignore_merges = true;
        self
    }
    fn add_bos(mut self) -> Self {
        self.add_bos = true;
        self
    }
    fn sentencepiece(mut self) -> Self {
        self.byte_encode = false;
        self.escape_whitespaces = true;
        self
    }
}

/// The pre-tokenizer for a `tokenizer.ggml.pre` value (`""` means llama.cpp's default);
/// `None` for names llama.cpp does not know or that need custom code not ported here.
pub(crate) fn bpe_pre(name: &str) -> Option<PreSpec> {
    let spec = match name {
        "" | "default" => PreSpec::new(&DEFAULT),
        "minicpm5" => PreSpec::new(&MINICPM5).ignore_merges(),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => PreSpec::new(&[LLAMA3]).ignore_merges().add_bos(),
        "dbrx" | "smaug-bpe" => PreSpec::new(&[LLAMA3]),
        "deepseek-llm" => PreSpec::new(&DEEPSEEK_LLM).no_clean(),
        "deepseek-coder" => PreSpec::new(&DEEPSEEK_CODER).no_clean(),
        "deepseek-v3" | "hunyuan-dense" | "joyai-llm" | "hy_v4" => {
            PreSpec::new(&DEEPSEEK3).no_clean()
        }
        "spark2_5" => PreSpec::new(&SPARK2_5).no_clean(),
        "youtu" => PreSpec::new(&YOUTU).no_clean().ignore_merges(),
        "falcon" => PreSpec::new(&FALCON),
        "mpt" | "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es"
        | "jina-v2-de" | "a.x-4.0" | "mellum" | "modern-bert" | "exaone4" | "olmo" | "jais"
        | "jina-v1-en" | "jina-v2-code" | "roberta-bpe" => PreSpec::new(&[GPT2]),
        "trillion" | "granite-docling" => PreSpec::new(&[GPT2]).no_clean(),
        "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
            PreSpec::new(&STARCODER)
        }
        "command-r" | "smollm" => PreSpec::new(&STARCODER).no_clean(),
        "jais-2" => PreSpec::new(&[JAIS2]),
        "gemma4" | "granite-embed-multi-311m" => {
            let mut s = PreSpec::new(&NEWLINES).sentencepiece();
            s.gemma4 = true;
            s
        }
        "sarvam-moe" => PreSpec::new(&NEWLINES).sentencepiece().no_clean(),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "hunyuan" | "solar-open" => {
            PreSpec::new(&[QWEN2]).no_clean()
        }
        "stablelm2" | "megrez" => PreSpec::new(&[QWEN2]),
        "qwen35" => PreSpec::new(&[QWEN35]).no_clean(),
        "poro-chat" => PreSpec::new(&PORO).no_clean(),
        "bloom" | "gpt3-finnish" => PreSpec::new(&PORO),
        "glm4" | "chatglm-bpe" => {
            let mut s = PreSpec::new(&[LLAMA3]);
            s.no_bos = true;
            s
        }
        "viking" => PreSpec::new(&VIKING).no_clean(),
        "tekken" => PreSpec::new(&[TEKKEN]).no_clean().ignore_merges().add_bos(),
        "chameleon" => PreSpec::new(&CHAMELEON).no_clean().add_bos(),
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => {
            PreSpec::new(&[GPT4O]).no_clean()
        }
        "granite-embed-multi-97m" => PreSpec::new(&[GRANITE_EMB_MULTI])
            .no_clean()
            .ignore_merges(),
        "tiny_aya" | "cohere2moe" => PreSpec::new(&TINY_AYA).no_clean(),
        "superbpe" => PreSpec::new(&SUPERBPE).no_clean(),
        "bailingmoe" | "bailingmoe2" | "llada-moe" => PreSpec::new(&[BAILINGMOE]).no_clean(),
        "seed-coder" => PreSpec::new(&[SEED_CODER]).no_clean(),
        "ufakzeka" => PreSpec::new(&[UFAKZEKA]).no_clean(),
        "grok-2" => PreSpec::new(&[QWEN2]).no_clean(),
        "laguna" => PreSpec::new(&LAGUNA).no_clean(),
        "exaone-moe" => PreSpec::new(&[EXAONE_MOE]),
        _ => return None,
    };
    Some(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &[
        "default",
        "llama-bpe",
        "dbrx",
        "deepseek-llm",
        "deepseek-coder",
        "deepseek-v3",
        "spark2_5",
        "youtu",
        "falcon",
        "gpt-2",
        "starcoder",
        "jais-2",
        "gemma4",
        "qwen2",
        "qwen35",
        "poro-chat",
        "glm4",
        "viking",
        "tekken",
        "chameleon",
        "gpt-4o",
        "granite-embed-multi-97m",
        "tiny_aya",
        "superbpe",
        "bailingmoe",
        "seed-coder",
        "ufakzeka",
        "laguna",
        "exaone-moe",
        "minicpm5",
    ];

    #[test]
    fn every_pattern_compiles() {
        for name in NAMES {
            let spec = bpe_pre(name).unwrap();
            crate::split::Splitter::new(&spec.regexes, spec.byte_encode)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(bpe_pre("no-such-pre").is_none());
    }
}
