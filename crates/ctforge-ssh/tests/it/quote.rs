//! Quoting: property tests against `shell_words` and a real `/bin/sh`, plus
//! the nasty names provisioning must survive.
#![allow(clippy::unwrap_used)]

use ctforge_ssh::{command_line, quote};
use proptest::prelude::*;

const NASTY: &[&str] = &[
    "",
    " ",
    "with space",
    "it's",
    "'",
    "''",
    "\"double\"",
    "$(reboot)",
    "`reboot`",
    "a;reboot",
    "a && b || c | d & e",
    "line1\nline2",
    "\n",
    "-rf",
    "--help",
    "-",
    "~root",
    "*",
    "?[a]",
    "x=1",
    "$HOME ${HOME} $0 $@ $*",
    "back\\slash\\",
    "tab\there",
    "#comment",
    "!history",
    "{a,b}",
    "<in >out 2>&1",
    "ünïcødé ✓",
    "all 'of' \"them\" $(x) `y`; z\n#",
];

/// Echo `arg` through a real POSIX shell: `sh -c "printf %s <quoted>"`.
fn through_sh(arg: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf %s {}", quote(arg)))
        .output()
        .unwrap();
    assert!(out.status.success(), "{arg:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn nasty_names_round_trip() {
    for s in NASTY {
        assert_eq!(
            shell_words::split(&quote(s)).unwrap(),
            vec![s.to_string()],
            "{s:?}"
        );
        assert_eq!(&through_sh(s), s, "{s:?}");
    }
    let line = command_line(NASTY);
    assert_eq!(shell_words::split(&line).unwrap(), NASTY);
}

#[test]
fn nested_quoting_survives_two_shells() {
    // What PctChannel does: the node's shell parses the line, `sh -c` the script.
    for s in NASTY {
        let script = format!("printf %s {}", quote(s));
        let line = command_line(&["sh", "-c", &script]);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), *s, "{line}");
    }
}

proptest! {
    #[test]
    fn split_of_quote_is_identity(s in any::<String>()) {
        prop_assert_eq!(shell_words::split(&quote(&s)).unwrap(), vec![s]);
    }

    #[test]
    fn command_line_splits_back(args in proptest::collection::vec(any::<String>(), 0..6)) {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        prop_assert_eq!(shell_words::split(&command_line(&refs)).unwrap(), args);
    }

    #[test]
    fn shell_like_strings(s in "[ -~\\n\\t]{0,40}") {
        prop_assert_eq!(shell_words::split(&quote(&s)).unwrap(), vec![s]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn real_sh_agrees(s in "[^\\x00]{0,24}") {
        prop_assert_eq!(through_sh(&s), s);
    }
}
