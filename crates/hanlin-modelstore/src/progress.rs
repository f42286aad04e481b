//! Progress reporting for long pulls, decoupled from how it is drawn.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Receives progress of a pull; implementations must tolerate calls in any order.
pub trait Progress: Sync {
    /// A new phase begins (`downloading …`), with its total in bytes when known.
    fn start(&self, label: &str, total: Option<u64>);
    /// Bytes done so far in the current phase.
    fn set(&self, done: u64);
    /// Replaces the short status text of the current phase.
    fn message(&self, msg: &str);
    /// Prints a line that stays (resumed downloads, warnings).
    fn note(&self, line: &str);
    /// The current phase is over.
    fn finish(&self);
}

/// Reports nothing (tests, library callers that do not care).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _label: &str, _total: Option<u64>) {}
    fn set(&self, _done: u64) {}
    fn message(&self, _msg: &str) {}
    fn note(&self, _line: &str) {}
    fn finish(&self) {}
}

/// Draws an indicatif bar (or spinner when the total is unknown) on stderr.
#[derive(Debug, Default)]
pub struct BarProgress {
    bar: Mutex<Option<ProgressBar>>,
}

impl BarProgress {
    /// A reporter that draws nothing until the first phase starts.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        // A poisoned lock only means a panic elsewhere; drawing may go on.
        let guard = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = guard.as_ref() {
            f(bar);
        }
    }
}

impl Progress for BarProgress {
    fn start(&self, label: &str, total: Option<u64>) {
        let bar = match total {
            Some(n) => {
                let bar = ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr());
                let style = ProgressStyle::with_template(
                    "{prefix} {bar:30.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style.progress_chars("=> "));
                bar
            }
            None => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                let style = ProgressStyle::with_template("{prefix} {spinner} {elapsed} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
                bar.set_style(style);
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            }
        };
        bar.set_prefix(label.to_string());
        let mut guard = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = guard.replace(bar) {
            old.finish_and_clear();
        }
    }

    fn set(&self, done: u64) {
        self.with_bar(|b| b.set_position(done));
    }

    fn message(&self, msg: &str) {
        self.with_bar(|b| b.set_message(msg.to_string()));
    }

    fn note(&self, line: &str) {
        let guard = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(b) if !b.is_hidden() => b.println(line),
            _ => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        let mut guard = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = guard.take() {
            b.finish_and_clear();
        }
    }
}
