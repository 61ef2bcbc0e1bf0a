//! Fuzz target: arbitrary bytes into the pure parsers. The first byte picks a
//! package manager; the rest is read as text (lossily) and fed to
//! `parse_conf` and `parse_package_list`, and, split at NUL bytes into
//! (path, content) pairs, to `load_files`. Any panic is a bug.
#![no_main]

use std::path::PathBuf;

use ctforge_template::{PackageManager, load_files, parse_conf, parse_package_list, render_files};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let manager = PackageManager::ALL[usize::from(selector) % PackageManager::ALL.len()];
    let text = String::from_utf8_lossy(rest);

    let (config, _) = parse_conf(&text);
    let _ = ctforge_template::render_conf(&config);
    let (packages, _) = parse_package_list(&text, manager);
    let _ = packages.iter().map(|p| p.spec(manager)).count();

    // Pairs of NUL-separated fields: path, content, path, content, ...
    let mut fields = rest.split(|&b| b == 0);
    let mut files = Vec::new();
    while let (Some(path), Some(content)) = (fields.next(), fields.next()) {
        files.push((PathBuf::from(String::from_utf8_lossy(path).into_owned()), content.to_vec()));
    }
    let loaded = load_files("fuzz", files);
    if let Some(template) = loaded.template {
        // What was loaded must write back and load to the same model.
        let rendered = render_files(&template)
            .into_iter()
            .map(|(p, t)| (p, t.into_bytes()));
        let again = load_files("fuzz", rendered);
        assert_eq!(
            again.template.map(|t| t.without_raw()),
            Some(template.without_raw())
        );
    }
});
