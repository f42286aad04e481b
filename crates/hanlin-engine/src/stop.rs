//! Stop strings over streamed text: text that could still become a stop string is held
//! back, so a client never sees part of a stop sequence.

/// Incremental stop-string matcher.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

impl StopMatcher {
    /// A matcher for `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        StopMatcher {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            pending: String::with_capacity(64),
        }
    }

    /// Feeds decoded text and appends what may be shown now to `out`; returns `true` when a
    /// stop string was found (then `out` got everything before it and nothing after).
    pub fn push(&mut self, text: &str, out: &mut String) -> bool {
        self.pending.push_str(text);
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
        {
            out.push_str(&self.pending[..at]);
            self.pending.clear();
            return true;
        }
        // Hold back the longest suffix that is a proper prefix of some stop string.
        let mut hold = 0;
        for s in &self.stops {
            for (i, _) in s.char_indices().skip(1) {
                if self.pending.ends_with(&s[..i]) {
                    hold = hold.max(i);
                }
            }
        }
        let cut = self.pending.len() - hold;
        out.push_str(&self.pending[..cut]);
        self.pending.drain(..cut);
        false
    }

    /// Appends the text still held back when generation ends for another reason.
    pub fn finish(&mut self, out: &mut String) {
        out.push_str(&self.pending);
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `text`, returning (shown now, stopped).
    fn feed(m: &mut StopMatcher, text: &str) -> (String, bool) {
        let mut out = String::new();
        let stopped = m.push(text, &mut out);
        (out, stopped)
    }

    #[test]
    fn holds_back_partial_and_stops_on_full() {
        let mut m = StopMatcher::new(&["\n\nUser:".to_string()]);
        assert_eq!(feed(&mut m, "Hello"), ("Hello".into(), false));
        assert_eq!(feed(&mut m, " world\n"), (" world".into(), false));
        assert_eq!(feed(&mut m, "\nUs"), ("".into(), false));
        assert_eq!(feed(&mut m, "er: hi"), ("".into(), true));
    }

    #[test]
    fn false_alarm_is_released() {
        let mut m = StopMatcher::new(&["END".to_string()]);
        assert_eq!(feed(&mut m, "the EN"), ("the ".into(), false));
        assert_eq!(feed(&mut m, "D"), ("".into(), true));
        let mut m = StopMatcher::new(&["END".to_string()]);
        assert_eq!(feed(&mut m, "EN"), ("".into(), false));
        assert_eq!(feed(&mut m, "Ough"), ("ENOugh".into(), false));
        assert_eq!(feed(&mut m, "E"), ("".into(), false));
        let mut rest = String::new();
        m.finish(&mut rest);
        assert_eq!(rest, "E");
    }

    #[test]
    fn multibyte_stop_strings() {
        let mut m = StopMatcher::new(&["。结束".to_string()]);
        assert_eq!(feed(&mut m, "好的。"), ("好的".into(), false));
        assert_eq!(feed(&mut m, "结束了"), ("".into(), true));
    }
}
