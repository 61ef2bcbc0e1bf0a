//! Diagnostics: every problem found in a template, with the file and line it is
//! on and a message that says what is wrong and how to fix it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How bad a [`Diagnostic`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The template is wrong: it must not be used until this is fixed.
    Error,
    /// The template is usable, but something is probably not what the author meant.
    Warning,
}

impl Severity {
    /// The lowercase word used in rendered diagnostics: `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem in a template.
///
/// Rendered with [`Display`](fmt::Display) as `path:line: error|warning: message`
/// (`:line` is left out when there is no line, and `path:` when the path is empty,
/// which is the case for the pure parse functions that do not know the file name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The file the problem is in, relative to the template directory
    /// (e.g. `container-configs/files/nginx.conf.path`).
    pub file: PathBuf,
    /// The 1-based line in `file`, when the problem is on one line.
    pub line: Option<u32>,
    /// Error or warning.
    pub severity: Severity,
    /// Lowercase message saying what is wrong and how to fix it.
    pub message: String,
}

impl Diagnostic {
    /// An error in `file` at `line`.
    pub fn error(file: impl Into<PathBuf>, line: Option<u32>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.into(),
            line,
            severity: Severity::Error,
            message: message.into(),
        }
    }

    /// A warning in `file` at `line`.
    pub fn warning(
        file: impl Into<PathBuf>,
        line: Option<u32>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.into(),
            line,
            severity: Severity::Warning,
            message: message.into(),
        }
    }

    /// True for [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The same diagnostic, attributed to `file` (used to place the output of the
    /// pure parse functions, which do not know where their text came from).
    pub fn in_file(mut self, file: impl AsRef<Path>) -> Self {
        self.file = file.as_ref().to_path_buf();
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let has_file = !self.file.as_os_str().is_empty();
        match (has_file, self.line) {
            (true, Some(line)) => write!(f, "{}:{}: ", self.file.display(), line)?,
            (true, None) => write!(f, "{}: ", self.file.display())?,
            (false, Some(line)) => write!(f, "line {line}: ")?,
            (false, None) => {}
        }
        write!(f, "{}: {}", self.severity, self.message)
    }
}

/// True if any of `diagnostics` is an error.
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(Diagnostic::is_error)
}

/// Converts a 0-based line index into the 1-based line number used in diagnostics,
/// saturating instead of overflowing on absurdly long inputs.
pub(crate) fn line_no(index: usize) -> Option<u32> {
    Some(
        u32::try_from(index)
            .unwrap_or(u32::MAX - 1)
            .saturating_add(1),
    )
}
