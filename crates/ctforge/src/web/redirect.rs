//! Redirect targets taken from input (`next` of the sign-in, `back` of action forms): resolved
//! the way a browser resolves a `Location` (the WHATWG URL parser: tabs and newlines dropped,
//! `\` read as `/`) against our own origin, and kept only when they stay on it. What is sent
//! is the resolved path, query and fragment, never the raw input.

use url::{Position, Url};

/// Stand-in for our own origin: only its identity matters, since every accepted target is
/// sent back as a path.
const BASE: &str = "http://ctforge.invalid/";

/// The same-origin path (with query and fragment) `raw` leads to, or `None` when it leads
/// anywhere else (`//host`, `/\host`, `/\t/host`, `https:…`, `javascript:…`).
pub fn same_origin(raw: &str) -> Option<String> {
    let base = Url::parse(BASE).ok()?;
    let trimmed = raw.trim_matches(|c: char| c.is_ascii_control() || c == ' ');
    // Only paths: an absolute URL or a scheme-relative one is refused even if it would parse
    // to our stand-in origin.
    let path_like = trimmed.replace(['\t', '\n', '\r'], "");
    if !path_like.starts_with('/') {
        return None;
    }
    let resolved = base.join(trimmed).ok()?;
    if resolved.origin() != base.origin() || resolved.host_str() != base.host_str() {
        return None;
    }
    Some(resolved[Position::BeforePath..].to_owned())
}

/// A redirect target from input, `/` when it would leave the site.
pub fn local_or_root(raw: Option<&str>) -> String {
    raw.and_then(same_origin).unwrap_or_else(|| "/".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_are_kept() {
        assert_eq!(same_origin("/").as_deref(), Some("/"));
        assert_eq!(
            same_origin("/containers/sim:100?tab=services#x").as_deref(),
            Some("/containers/sim:100?tab=services#x")
        );
        assert_eq!(same_origin("/jobs?page=2").as_deref(), Some("/jobs?page=2"));
    }

    #[test]
    fn anything_leaving_the_site_is_refused() {
        for evil in [
            "//evil.example/phish",
            "/\t/evil.example/phish",
            "/\n/evil.example",
            "\t//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\\/evil.example",
            "https://evil.example/",
            "http://ctforge.invalid/",
            "javascript:alert(1)",
            "evil.example",
            "",
        ] {
            assert_eq!(local_or_root(Some(evil)), "/", "{evil:?}");
        }
        assert_eq!(local_or_root(None), "/");
    }

    #[test]
    fn what_is_sent_has_no_control_characters() {
        let sent = local_or_root(Some("/a\u{1b}b c"));
        assert!(!sent.chars().any(|c| c.is_control() || c == ' '), "{sent}");
    }
}
