//! Tidy checks over the repository (in the spirit of rust-analyzer's `xtask tidy`), run by
//! `cargo test`: the layer rule between `web/` and `api/`, a `//!` header on every source file
//! of the workspace, and no committed file that `.gitignore` excludes (tool caches).

use std::path::{Path, PathBuf};

/// Files allowed to break the web/api rule, each with the reason. Keep this empty.
const LAYER_EXCEPTIONS: &[(&str, &str)] = &[];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether `source` names module `layer` of this crate (`crate::api`, `crate::web`) in code.
fn imports_layer(source: &str, layer: &str) -> bool {
    let needle = format!("crate::{layer}");
    source.lines().any(|line| {
        let code = line.split("//").next().unwrap_or("");
        code.match_indices(&needle).any(|(i, _)| {
            let next = code[i + needle.len()..].chars().next();
            !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    })
}

#[test]
fn web_and_api_never_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    for (dir, other) in [("web", "api"), ("api", "web")] {
        let mut files = Vec::new();
        rust_files(&src.join(dir), &mut files);
        assert!(!files.is_empty(), "no files under src/{dir}");
        for file in files {
            let rel = file
                .strip_prefix(&src)
                .unwrap_or(&file)
                .to_string_lossy()
                .replace('\\', "/");
            if LAYER_EXCEPTIONS.iter().any(|(f, _)| *f == rel) {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if imports_layer(&text, other) {
                offenders.push(format!("src/{rel} uses crate::{other}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "web/ and api/ are siblings over the use-case modules and never import each other; \
         move the shared code into a domain module:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn every_source_file_has_a_module_header() {
    let root = workspace_root();
    let mut files = Vec::new();
    let crates = std::fs::read_dir(root.join("crates")).expect("crates/ directory");
    for krate in crates.flatten() {
        rust_files(&krate.path().join("src"), &mut files);
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text
                .lines()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.starts_with("//!"))
        })
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "every module begins with a `//!` comment saying what it owns; missing in:\n{}",
        missing.join("\n")
    );
}

#[test]
fn no_committed_file_is_gitignored() {
    let root = workspace_root();
    let output = std::process::Command::new("git")
        .args(["ls-files", "-i", "-c", "--exclude-standard"])
        .current_dir(&root)
        .output();
    let output = match output {
        Ok(o) if o.status.success() => o,
        // Not a git checkout (a source tarball): nothing is committed, nothing to check.
        _ => {
            eprintln!(
                "skipped: `git ls-files` is not available in {}",
                root.display()
            );
            return;
        }
    };
    let listed = String::from_utf8_lossy(&output.stdout);
    let files: Vec<&str> = listed.lines().filter(|l| !l.is_empty()).collect();
    assert!(
        files.is_empty(),
        "committed files match .gitignore (caches or build output); `git rm --cached` them:\n{}",
        files.join("\n")
    );
}

#[test]
fn the_layer_check_sees_paths_not_words() {
    assert!(imports_layer("use crate::api::v1::buckets;", "api"));
    assert!(imports_layer(
        "    crate::api::v1::settings::require_admin(&u)?;",
        "api"
    ));
    assert!(!imports_layer("use crate::apis;", "api"));
    assert!(!imports_layer("// see crate::api for the JSON side", "api"));
}
