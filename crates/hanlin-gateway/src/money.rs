//! Money: integer micro-units (1 unit of currency = 1_000_000), exact decimal parsing and
//! printing, and the cost of one request.

use hanlin_store::Price;

/// Micro-units per currency unit.
pub const MICROS: i64 = 1_000_000;

/// Parses `"12"`, `"0.002"`, `"-3.5"` exactly into micro-units; at most 6 decimals, no floats.
pub fn parse_amount(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 24 {
        return None;
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 6 {
        return None;
    }
    let int_v: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let frac_v: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    let v = int_v.checked_mul(MICROS)?.checked_add(frac_v)?;
    Some(if neg { -v } else { v })
}

/// Prints micro-units as a decimal with trailing zeros trimmed to at least 2 places.
pub fn format_amount(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let int = a / MICROS as u64;
    let frac = format!("{:06}", a % MICROS as u64);
    let trimmed = frac.trim_end_matches('0');
    let frac = if trimmed.len() < 2 {
        &frac[..2]
    } else {
        trimmed
    };
    format!("{sign}{int}.{frac}")
}

/// Token counts of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Prompt tokens, cached included.
    pub prompt: i64,
    /// Of those, served from cache.
    pub cached: i64,
    /// Generated tokens.
    pub completion: i64,
}

impl Tokens {
    /// All tokens.
    pub fn total(&self) -> i64 {
        self.prompt + self.completion
    }
}

/// The cost of `t` at `p`, scaled by the group's `ratio_bp` (10_000 = full price), rounded up
/// to the next micro-unit so that rounding never gives tokens away.
pub fn cost(p: &Price, t: Tokens, ratio_bp: i64) -> i64 {
    let cached = t.cached.clamp(0, t.prompt.max(0)) as i128;
    let uncached = (t.prompt.max(0) as i128) - cached;
    let per_1k = uncached * p.prompt_per_1k as i128
        + cached * p.cached_per_1k as i128
        + t.completion.max(0) as i128 * p.completion_per_1k as i128;
    let base = (per_1k + 999) / 1000 + p.per_request as i128;
    let scaled = (base * ratio_bp.max(0) as i128 + 9_999) / 10_000;
    scaled.min(i64::MAX as i128) as i64
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hanlin_store::Currency;

    fn price() -> Price {
        Price {
            model: "m".into(),
            currency: Currency::Cny,
            prompt_per_1k: 2_000,
            completion_per_1k: 8_000,
            cached_per_1k: 500,
            per_request: 0,
            rpm: 0,
            tpm: 0,
            updated_ms: 0,
        }
    }

    #[test]
    fn amounts_parse_exactly() {
        assert_eq!(parse_amount("12"), Some(12_000_000));
        assert_eq!(parse_amount("0.002"), Some(2_000));
        assert_eq!(parse_amount("-3.5"), Some(-3_500_000));
        assert_eq!(parse_amount(".5"), Some(500_000));
        assert_eq!(parse_amount("1.0000001"), None);
        assert_eq!(parse_amount("1e3"), None);
        assert_eq!(parse_amount("1; DROP TABLE x"), None);
        assert_eq!(parse_amount("99999999999999999999"), None);
        assert_eq!(format_amount(12_345_000), "12.345");
        assert_eq!(format_amount(-2_000), "-0.002");
        assert_eq!(format_amount(5_000_000), "5.00");
    }

    #[test]
    fn cost_counts_each_kind_and_rounds_up() {
        // 1000 prompt of which 400 cached, 500 completion:
        // 600*2000/1000 + 400*500/1000 + 500*8000/1000 = 1200 + 200 + 4000.
        let t = Tokens {
            prompt: 1000,
            cached: 400,
            completion: 500,
        };
        assert_eq!(cost(&price(), t, 10_000), 5_400);
        assert_eq!(cost(&price(), t, 7_500), 4_050);
        // One prompt token at 2000/1K is 2 micro-units; 1 at 1/1K rounds up to 1.
        let one = Tokens {
            prompt: 1,
            cached: 0,
            completion: 0,
        };
        assert_eq!(cost(&price(), one, 10_000), 2);
        let mut cheap = price();
        cheap.prompt_per_1k = 1;
        assert_eq!(cost(&cheap, one, 10_000), 1);
        cheap.per_request = 100;
        assert_eq!(cost(&cheap, Tokens::default(), 10_000), 100);
    }
}
