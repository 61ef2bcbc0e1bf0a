//! Logging setup: `tracing` with human or JSON output, filtered by `log_level` or `RUST_LOG`;
//! colours only when stderr is a terminal.
//! The human output escapes control characters inside an event ([`Escaping`]): guest output
//! that reaches a log message (a failed step's last lines) cannot start a new line, rewind one
//! (`\r`) or drive the terminal. JSON output is escaped by its encoder.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls are ignored (tests call it repeatedly).
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let _ = match format {
        LogFormat::Human => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi)
            .with_writer(Escaping::new(std::io::stderr, ansi))
            .try_init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .try_init(),
    };
}

/// A writer for the human log: each event arrives in one write and ends with one newline;
/// every other control character in it is written escaped (`\n`, `\r`, `\x1b`, …). With
/// `ansi`, the formatter's own colour codes (`ESC [ digits ; m`) pass.
#[derive(Clone, Debug)]
pub struct Escaping<M> {
    inner: M,
    ansi: bool,
}

impl<M> Escaping<M> {
    /// Wraps `inner`.
    pub fn new(inner: M, ansi: bool) -> Self {
        Self { inner, ansi }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Escaping<M> {
    type Writer = EscapingWriter<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter {
            inner: self.inner.make_writer(),
            ansi: self.ansi,
        }
    }
}

/// The writer of [`Escaping`].
#[derive(Debug)]
pub struct EscapingWriter<W> {
    inner: W,
    ansi: bool,
}

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write_all(&escape_event(buf, self.ansi))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `event` with every control character but a final newline (and, with `ansi`, SGR colour
/// sequences) escaped.
pub fn escape_event(event: &[u8], ansi: bool) -> Vec<u8> {
    let (body, end) = match event.strip_suffix(b"\n") {
        Some(body) => (body, &b"\n"[..]),
        None => (event, &b""[..]),
    };
    let mut out = Vec::with_capacity(event.len() + 16);
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if b == 0x1b
            && ansi
            && let Some(len) = sgr_len(&body[i..])
        {
            out.extend_from_slice(&body[i..i + len]);
            i += len;
            continue;
        }
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.push(b'\t'),
            0x00..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            _ => out.push(b),
        }
        i += 1;
    }
    out.extend_from_slice(end);
    out
}

/// `line` with its control characters written escaped (`\r`, `\x1b`, …; a tab stays): a
/// line of guest output shown on a terminal (`ctforge ct … --follow`) cannot move the cursor,
/// rewrite what was printed or send the terminal escape sequences.
pub fn escape_controls(line: &str) -> String {
    if !line.chars().any(|c| c.is_control() && c != '\t') {
        return line.to_owned();
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        match c {
            '\t' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Length of a colour sequence (`ESC [ [0-9;]* m`) at the start of `s`.
fn sgr_len(s: &[u8]) -> Option<usize> {
    if s.get(1) != Some(&b'[') {
        return None;
    }
    let digits = s[2..]
        .iter()
        .take_while(|c| c.is_ascii_digit() || **c == b';')
        .count();
    (s.get(2 + digits) == Some(&b'm')).then_some(3 + digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn guest_output_cannot_forge_log_lines() {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(Escaping::new(move || sink.clone(), false))
            .finish();
        let forged = "exited with 1; last lines:\nok\r2026-01-01T00:00:00Z  INFO ctforge: admin signed in\n\x1b[2Jgone";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(job_id = 7, error = %forged, "job step failed");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default();
        assert_eq!(text.lines().count(), 1, "one event, one line: {text:?}");
        assert!(!text.contains('\r') && !text.contains('\x1b'), "{text:?}");
        assert!(text.contains("last lines:\\nok\\r2026"), "{text:?}");
        assert!(text.contains("\\x1b[2Jgone"), "{text:?}");
    }

    #[test]
    fn terminal_lines_have_their_controls_escaped() {
        assert_eq!(escape_controls("plain\ttext"), "plain\ttext");
        assert_eq!(
            escape_controls("50%\r\x1b]0;owned\x07done"),
            "50%\\r\\x1b]0;owned\\x07done"
        );
    }

    #[test]
    fn colour_codes_of_the_formatter_pass_with_ansi() {
        let out = escape_event(b"\x1b[32mINFO\x1b[0m x\x1b[2J\n", true);
        assert_eq!(out, b"\x1b[32mINFO\x1b[0m x\\x1b[2J\n");
    }
}
