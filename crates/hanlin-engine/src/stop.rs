//! Stop strings over streamed text: text that could still become a stop string is held
//! back, so a client never sees part of a stop sequence.

/// Incremental stop-string matcher.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

/// What to do with newly decoded text.
#[derive(Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// Emit this text and continue.
    Continue(String),
    /// Emit this text (everything before the stop string) and finish.
    Stop(String),
}

impl StopMatcher {
    /// A matcher for `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        StopMatcher {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            pending: String::new(),
        }
    }

    /// Feeds decoded text; returns what may be shown now.
    pub fn push(&mut self, text: &str) -> StopOutcome {
        self.pending.push_str(text);
        if self.stops.is_empty() {
            return StopOutcome::Continue(std::mem::take(&mut self.pending));
        }
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
        {
            let out = self.pending[..at].to_string();
            self.pending.clear();
            return StopOutcome::Stop(out);
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
        let out = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        StopOutcome::Continue(out)
    }

    /// Text still held back when generation ends for another reason.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_partial_and_stops_on_full() {
        let mut m = StopMatcher::new(&["\n\nUser:".to_string()]);
        assert_eq!(m.push("Hello"), StopOutcome::Continue("Hello".into()));
        assert_eq!(m.push(" world\n"), StopOutcome::Continue(" world".into()));
        assert_eq!(m.push("\nUs"), StopOutcome::Continue("".into()));
        assert_eq!(m.push("er: hi"), StopOutcome::Stop("".into()));
    }

    #[test]
    fn false_alarm_is_released() {
        let mut m = StopMatcher::new(&["END".to_string()]);
        assert_eq!(m.push("the EN"), StopOutcome::Continue("the ".into()));
        assert_eq!(m.push("D"), StopOutcome::Stop("".into()));
        let mut m = StopMatcher::new(&["END".to_string()]);
        assert_eq!(m.push("EN"), StopOutcome::Continue("".into()));
        assert_eq!(m.push("Ough"), StopOutcome::Continue("ENOugh".into()));
        assert_eq!(m.push("E"), StopOutcome::Continue("".into()));
        assert_eq!(m.finish(), "E");
    }

    #[test]
    fn multibyte_stop_strings() {
        let mut m = StopMatcher::new(&["。结束".to_string()]);
        assert_eq!(m.push("好的。"), StopOutcome::Continue("好的".into()));
        assert_eq!(m.push("结束了"), StopOutcome::Stop("".into()));
    }
}
