//! Code-point classes, case and NFD helpers, and the GPT-2 byte <-> char table.
//!
//! These reproduce llama.cpp's `unicode.cpp` tables (generated from UnicodeData.txt):
//! one category flag per code point, the Unicode `White_Space` set, the simple
//! lowercase mapping and "first code point of the NFD form". Tokenizers depend on the
//! exact classes, so they live in one place.

use std::sync::OnceLock;

use unicode_general_category::{get_general_category, GeneralCategory as Gc};

/// Category and whitespace flags of one code point (llama.cpp `unicode_cpt_flags`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CptFlags(u16);

impl CptFlags {
    pub(crate) const UNDEFINED: u16 = 0x0001;
    pub(crate) const NUMBER: u16 = 0x0002;
    pub(crate) const LETTER: u16 = 0x0004;
    pub(crate) const SEPARATOR: u16 = 0x0008;
    pub(crate) const ACCENT_MARK: u16 = 0x0010;
    pub(crate) const PUNCTUATION: u16 = 0x0020;
    pub(crate) const SYMBOL: u16 = 0x0040;
    pub(crate) const CONTROL: u16 = 0x0080;
    const CATEGORIES: u16 = 0x00FF;
    const WHITESPACE: u16 = 0x0100;

    /// Flags of a code point.
    pub(crate) fn of(c: char) -> Self {
        let cat = match get_general_category(c) {
            Gc::UppercaseLetter
            | Gc::LowercaseLetter
            | Gc::TitlecaseLetter
            | Gc::ModifierLetter
            | Gc::OtherLetter => Self::LETTER,
            Gc::DecimalNumber | Gc::LetterNumber | Gc::OtherNumber => Self::NUMBER,
            Gc::NonspacingMark | Gc::SpacingMark | Gc::EnclosingMark => Self::ACCENT_MARK,
            Gc::ConnectorPunctuation
            | Gc::DashPunctuation
            | Gc::OpenPunctuation
            | Gc::ClosePunctuation
            | Gc::InitialPunctuation
            | Gc::FinalPunctuation
            | Gc::OtherPunctuation => Self::PUNCTUATION,
            Gc::MathSymbol | Gc::CurrencySymbol | Gc::ModifierSymbol | Gc::OtherSymbol => {
                Self::SYMBOL
            }
            Gc::SpaceSeparator | Gc::LineSeparator | Gc::ParagraphSeparator => Self::SEPARATOR,
            Gc::Control | Gc::Format | Gc::PrivateUse | Gc::Surrogate => Self::CONTROL,
            _ => Self::UNDEFINED,
        };
        let ws = if is_whitespace(c) {
            Self::WHITESPACE
        } else {
            0
        };
        CptFlags(cat | ws)
    }

    /// Flags of an optional code point; `None` (outside the text) has no flag at all.
    pub(crate) fn of_opt(c: Option<char>) -> Self {
        c.map_or(CptFlags(0), Self::of)
    }

    pub(crate) fn is_whitespace(self) -> bool {
        self.0 & Self::WHITESPACE != 0
    }
    pub(crate) fn is_letter(self) -> bool {
        self.0 & Self::LETTER != 0
    }
    pub(crate) fn is_number(self) -> bool {
        self.0 & Self::NUMBER != 0
    }
    pub(crate) fn is_punctuation(self) -> bool {
        self.0 & Self::PUNCTUATION != 0
    }
    pub(crate) fn is_symbol(self) -> bool {
        self.0 & Self::SYMBOL != 0
    }
    pub(crate) fn is_control(self) -> bool {
        self.0 & Self::CONTROL != 0
    }
    pub(crate) fn is_accent_mark(self) -> bool {
        self.0 & Self::ACCENT_MARK != 0
    }
    /// Any flag set (llama.cpp `as_uint() != 0`); false only outside the text.
    pub(crate) fn any(self) -> bool {
        self.0 != 0
    }
    /// The category part alone (llama.cpp `category_flag()`).
    pub(crate) fn category(self) -> u16 {
        self.0 & Self::CATEGORIES
    }
}

/// Unicode `White_Space`, the set llama.cpp lists by hand.
pub(crate) fn is_whitespace(c: char) -> bool {
    matches!(
        c as u32,
        0x09..=0x0D
            | 0x20
            | 0x85
            | 0xA0
            | 0x1680
            | 0x2000..=0x200A
            | 0x2028
            | 0x2029
            | 0x202F
            | 0x205F
            | 0x3000
    )
}

/// Simple lowercase mapping (first code point of the full mapping, as llama.cpp's table).
pub(crate) fn to_lower(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// First code point of the canonical decomposition: llama.cpp's `unicode_cpts_normalize_nfd`
/// maps each code point to that single code point (dropping the marks that follow).
pub(crate) fn nfd_first(c: char) -> char {
    let mut first = None;
    unicode_normalization::char::decompose_canonical(c, |d| {
        if first.is_none() {
            first = Some(d);
        }
    });
    first.unwrap_or(c)
}

/// GPT-2's byte -> printable char table and its inverse.
struct ByteTables {
    to_char: [char; 256],
    to_byte: std::collections::HashMap<char, u8>,
}

fn byte_tables() -> &'static ByteTables {
    static T: OnceLock<ByteTables> = OnceLock::new();
    T.get_or_init(|| {
        let mut to_char = ['\0'; 256];
        let mut assigned = [false; 256];
        for b in (0x21..=0x7E).chain(0xA1..=0xAC).chain(0xAE..=0xFF) {
            to_char[b] = char::from(b as u8);
            assigned[b] = true;
        }
        let mut n = 0u32;
        for b in 0..256 {
            if !assigned[b] {
                // 256 + n < 0x200 is always a valid scalar value.
                to_char[b] = char::from_u32(256 + n).unwrap_or('\u{FFFD}');
                n += 1;
            }
        }
        let to_byte = to_char
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        ByteTables { to_char, to_byte }
    })
}

/// The printable char GPT-2 byte-level BPE uses for a raw byte.
pub(crate) fn byte_to_char(b: u8) -> char {
    byte_tables().to_char[b as usize]
}

/// The raw byte behind a GPT-2 byte-level char, if it is one.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    byte_tables().to_byte.get(&c).copied()
}

/// Byte length of the UTF-8 sequence a lead byte announces (llama.cpp `unicode_len_utf8`).
pub(crate) fn utf8_len(lead: u8) -> usize {
    const LOOKUP: [usize; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
    LOOKUP[(lead >> 4) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_byte_table_is_a_bijection() {
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'a'), 'a');
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b));
        }
    }

    #[test]
    fn classes() {
        assert!(CptFlags::of('a').is_letter());
        assert!(CptFlags::of('人').is_letter());
        assert!(CptFlags::of('½').is_number());
        assert!(CptFlags::of(' ').is_whitespace());
        assert!(CptFlags::of('\u{3000}').is_whitespace());
        assert!(CptFlags::of('~').is_symbol());
        assert!(CptFlags::of('\u{200D}').is_control());
        assert!(!CptFlags::of_opt(None).any());
        assert_eq!(nfd_first('Ä'), 'A');
        assert_eq!(to_lower('Ä'), 'ä');
    }
}
