//! The provisioning channel into one container: [`RemoteExec`] and its data types.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;

use crate::SshError;

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of command output (without its line terminator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    /// Where it came from.
    pub stream: Stream,
    /// The text, invalid UTF-8 replaced.
    pub text: String,
}

/// Default number of lines kept in [`ExecOutput::tail`].
pub const DEFAULT_TAIL_LINES: usize = 50;

/// Result of a command that ran: exit code and the last lines of its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code (255 when killed by a signal, see [`ExecOutput::signal`]).
    pub exit_code: u32,
    /// Signal name when the command was killed by one.
    pub signal: Option<String>,
    /// The last lines of stdout and stderr, interleaved in arrival order.
    pub tail: Vec<OutputLine>,
    /// Wall time of the command, channel open to close.
    pub duration: Duration,
}

impl ExecOutput {
    /// Whether the command exited 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0 && self.signal.is_none()
    }

    /// The tail as text, one line each.
    pub fn tail_text(&self) -> String {
        let mut s = String::new();
        for l in &self.tail {
            s.push_str(&l.text);
            s.push('\n');
        }
        s
    }

    /// The tail lines of one stream, joined with newlines (each line terminated).
    pub fn stream_text(&self, stream: Stream) -> String {
        let mut s = String::new();
        for l in self.tail.iter().filter(|l| l.stream == stream) {
            s.push_str(&l.text);
            s.push('\n');
        }
        s
    }
}

/// A provisioning channel into one container.
///
/// Implemented over `pct` on the Proxmox node ([`crate::PctChannel`]), over
/// SSH straight into the CT ([`crate::DirectChannel`]) and scripted for tests
/// ([`crate::FakeRemote`]).
#[async_trait]
pub trait RemoteExec: Send + Sync {
    /// Run a shell script in the container. Every stdout/stderr line is given to
    /// `on_line` as it arrives; the exit code (non-zero is not an error) and the
    /// last lines come back in [`ExecOutput`].
    async fn exec(
        &self,
        cmd: &str,
        on_line: &mut (dyn for<'l> FnMut(Stream, &'l str) + Send),
    ) -> Result<ExecOutput, SshError>;

    /// Write `content` to the absolute path `dest` in the container, with an
    /// optional mode (e.g. `0o600`) and owner `(user, group)`. Parent directories
    /// must exist. The content never appears in logs or errors.
    async fn push(
        &self,
        content: &[u8],
        dest: &str,
        mode: Option<u32>,
        owner: Option<(&str, &str)>,
    ) -> Result<(), SshError>;

    /// The container state as `pct status` says it: `running`, `stopped`, ….
    async fn status(&self) -> Result<String, SshError>;
}

/// Longest partial line buffered before it is emitted anyway.
const MAX_LINE: usize = 64 * 1024;

/// Splits a byte stream into lines.
#[derive(Debug, Default)]
pub(crate) struct LineBuf {
    buf: Vec<u8>,
}

impl LineBuf {
    /// Add bytes; call `emit` for each complete line.
    pub(crate) fn feed(&mut self, data: &[u8], emit: &mut dyn FnMut(&str)) {
        let mut rest = data;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            self.buf.extend_from_slice(&rest[..i]);
            Self::emit_buf(&mut self.buf, emit);
            rest = &rest[i + 1..];
        }
        self.buf.extend_from_slice(rest);
        while self.buf.len() >= MAX_LINE {
            let rest = self.buf.split_off(MAX_LINE);
            Self::emit_buf(&mut self.buf, emit);
            self.buf = rest;
        }
    }

    /// Emit the last unterminated line, if any.
    pub(crate) fn finish(&mut self, emit: &mut dyn FnMut(&str)) {
        if !self.buf.is_empty() {
            Self::emit_buf(&mut self.buf, emit);
        }
    }

    fn emit_buf(buf: &mut Vec<u8>, emit: &mut dyn FnMut(&str)) {
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        let s = String::from_utf8_lossy(buf);
        emit(&s);
        buf.clear();
    }
}

/// Collects the last `n` lines while forwarding every line to a callback.
pub(crate) struct LineSink<'a> {
    out: LineBuf,
    err: LineBuf,
    tail: VecDeque<OutputLine>,
    n: usize,
    on_line: &'a mut (dyn for<'l> FnMut(Stream, &'l str) + Send),
}

impl<'a> LineSink<'a> {
    pub(crate) fn new(
        n: usize,
        on_line: &'a mut (dyn for<'l> FnMut(Stream, &'l str) + Send),
    ) -> Self {
        LineSink {
            out: LineBuf::default(),
            err: LineBuf::default(),
            tail: VecDeque::with_capacity(n.min(1024)),
            n,
            on_line,
        }
    }

    pub(crate) fn feed(&mut self, stream: Stream, data: &[u8]) {
        let (buf, tail, n, cb) = match stream {
            Stream::Stdout => (&mut self.out, &mut self.tail, self.n, &mut self.on_line),
            Stream::Stderr => (&mut self.err, &mut self.tail, self.n, &mut self.on_line),
        };
        buf.feed(data, &mut |line| Self::push(tail, n, cb, stream, line));
    }

    pub(crate) fn finish(mut self) -> Vec<OutputLine> {
        let n = self.n;
        let cb = &mut self.on_line;
        let tail = &mut self.tail;
        self.out
            .finish(&mut |line| Self::push(tail, n, cb, Stream::Stdout, line));
        self.err
            .finish(&mut |line| Self::push(tail, n, cb, Stream::Stderr, line));
        self.tail.into_iter().collect()
    }

    fn push(
        tail: &mut VecDeque<OutputLine>,
        n: usize,
        cb: &mut &'a mut (dyn for<'l> FnMut(Stream, &'l str) + Send),
        stream: Stream,
        line: &str,
    ) {
        cb(stream, line);
        if n == 0 {
            return;
        }
        if tail.len() == n {
            tail.pop_front();
        }
        tail.push_back(OutputLine {
            stream,
            text: line.to_string(),
        });
    }
}

/// Shorten a command for logs and error messages.
pub(crate) fn truncate(cmd: &str, max: usize) -> String {
    let one_line = cmd.replace('\n', "\\n");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut s: String = one_line.chars().take(max).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks() {
        let mut got = Vec::new();
        let mut cb = |s: Stream, l: &str| got.push((s, l.to_string()));
        let mut sink = LineSink::new(2, &mut cb);
        sink.feed(Stream::Stdout, b"a\nb");
        sink.feed(Stream::Stderr, b"e1\r\n");
        sink.feed(Stream::Stdout, b"c\n\nd");
        let tail = sink.finish();
        assert_eq!(
            got,
            vec![
                (Stream::Stdout, "a".to_string()),
                (Stream::Stderr, "e1".to_string()),
                (Stream::Stdout, "bc".to_string()),
                (Stream::Stdout, String::new()),
                (Stream::Stdout, "d".to_string()),
            ]
        );
        assert_eq!(
            tail.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            vec!["", "d"]
        );
    }

    #[test]
    fn long_lines_are_cut() {
        let mut n = 0;
        let mut cb = |_: Stream, l: &str| {
            assert!(l.len() <= MAX_LINE);
            n += 1;
        };
        let mut sink = LineSink::new(1, &mut cb);
        sink.feed(Stream::Stdout, &vec![b'x'; MAX_LINE + 10]);
        sink.finish();
        assert_eq!(n, 2);
    }

    #[test]
    fn truncates() {
        assert_eq!(truncate("ab\ncd", 10), "ab\\ncd");
        assert_eq!(truncate("abcdef", 3), "abc…");
    }
}
