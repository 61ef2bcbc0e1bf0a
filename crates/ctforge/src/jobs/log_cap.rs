//! The per-step cap of a job's log (`[job_log]`): the first `head_lines` lines are stored as
//! they come, later ones go through a ring of the last `tail_lines`; what falls out of the
//! ring is counted. When the step ends the count is stored as one "N lines dropped" line and
//! the ring after it. While lines are being dropped a note with the running count is stored
//! at most every [`NOTE_EVERY`], so live viewers (the progress view, SSE) keep seeing progress.
//! Every line is also cut to [`MAX_LINE_BYTES`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::JobLogConfig;

/// Longest line stored; the rest is replaced by a count of the bytes cut.
pub const MAX_LINE_BYTES: usize = 8 * 1024;
/// Least time between two "still running" notes while lines are dropped.
pub const NOTE_EVERY: Duration = Duration::from_secs(1);

/// The cap's state for one step.
#[derive(Debug)]
pub struct LogCap {
    config: JobLogConfig,
    seen: u64,
    tail: VecDeque<String>,
    dropped: u64,
    last_note: Option<Instant>,
}

impl LogCap {
    /// An empty cap.
    pub fn new(config: JobLogConfig) -> Self {
        Self {
            config,
            seen: 0,
            tail: VecDeque::new(),
            dropped: 0,
            last_note: None,
        }
    }

    /// Takes `lines` in; answers the lines to store now.
    pub fn admit(&mut self, lines: impl IntoIterator<Item = String>, now: Instant) -> Vec<String> {
        let head = u64::from(self.config.head_lines);
        let tail = usize::try_from(self.config.tail_lines).unwrap_or(usize::MAX);
        let mut store = Vec::new();
        for line in lines {
            self.seen += 1;
            if self.seen <= head {
                store.push(cut(line));
                continue;
            }
            self.tail.push_back(cut(line));
            while self.tail.len() > tail {
                self.tail.pop_front();
                self.dropped += 1;
            }
        }
        if self.dropped > 0
            && self
                .last_note
                .is_none_or(|at| now.duration_since(at) >= NOTE_EVERY)
        {
            self.last_note = Some(now);
            store.push(format!(
                "… {} lines so far; only the first {} and the last {} are kept, {} dropped until now",
                self.seen, self.config.head_lines, self.config.tail_lines, self.dropped
            ));
        }
        store
    }

    /// The lines still to store when the step ends: the dropped count, then the tail.
    pub fn finish(&mut self) -> Vec<String> {
        let mut store = Vec::with_capacity(self.tail.len() + 1);
        if self.dropped > 0 {
            store.push(format!("[{} lines dropped]", self.dropped));
        }
        store.extend(self.tail.drain(..));
        self.dropped = 0;
        store
    }
}

fn cut(mut line: String) -> String {
    if line.len() <= MAX_LINE_BYTES {
        return line;
    }
    let mut at = MAX_LINE_BYTES;
    while !line.is_char_boundary(at) {
        at -= 1;
    }
    let cut_bytes = line.len() - at;
    line.truncate(at);
    line.push_str(&format!(" … [{cut_bytes} more bytes]"));
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
        range.map(|n| n.to_string()).collect()
    }

    #[test]
    fn keeps_head_and_tail_and_counts_the_rest() {
        let mut cap = LogCap::new(JobLogConfig {
            head_lines: 3,
            tail_lines: 2,
        });
        let t = Instant::now();
        assert_eq!(cap.admit(lines(1..=3), t), lines(1..=3));
        let stored = cap.admit(lines(4..=10), t);
        assert_eq!(stored.len(), 1, "one note: {stored:?}");
        assert!(stored[0].contains("10 lines so far") && stored[0].contains("5 dropped"));
        assert!(
            cap.admit(lines(11..=12), t).is_empty(),
            "notes are throttled"
        );
        assert_eq!(
            cap.admit(lines(13..=13), t + NOTE_EVERY).len(),
            1,
            "the next note after NOTE_EVERY"
        );
        assert_eq!(
            cap.finish(),
            vec!["[8 lines dropped]".to_owned(), "12".into(), "13".into()]
        );
    }

    #[test]
    fn a_short_log_is_kept_whole() {
        let mut cap = LogCap::new(JobLogConfig::default());
        let t = Instant::now();
        assert_eq!(cap.admit(lines(1..=5), t).len(), 5);
        assert!(cap.finish().is_empty());
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let line = "é".repeat(MAX_LINE_BYTES);
        let out = cut(line);
        assert!(out.len() < MAX_LINE_BYTES + 40);
        assert!(out.ends_with(&format!(" … [{} more bytes]", MAX_LINE_BYTES)));
    }
}
