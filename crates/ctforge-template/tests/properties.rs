//! Property tests: generated models survive render → load unchanged, loading
//! is idempotent through a write, and no input makes the parsers panic.

// Test code: helpers outside #[test] fns may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use ctforge_template::{
    FilePolicy, Package, PackageList, PackageManager, Script, Template, TemplateConfig,
    TemplateFile, load_files, parse_conf, parse_package_list, render_files, validate_target_path,
};
use proptest::prelude::*;

/// Text that `template.conf` can hold: anything but a line break, with the
/// characters that need quoting well represented.
fn conf_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 \t\"'$`\\\\#{}():;=!*?~\r-]{0,16}",
        any::<String>().prop_map(|s| s.replace('\n', " ")),
    ]
}

fn config() -> impl Strategy<Value = TemplateConfig> {
    let texts = (
        proptest::option::of(conf_text()),
        proptest::option::of(conf_text()),
        proptest::option::of(conf_text()),
        proptest::option::of(conf_text()),
        proptest::option::of(conf_text()),
        proptest::option::of(conf_text()),
    );
    let numbers = (
        proptest::option::of(1u32..=8192),
        proptest::option::of(16u32..),
        proptest::option::of(1u32..),
        proptest::option::of(any::<u32>()),
    );
    let flags = proptest::array::uniform4(proptest::option::of(any::<bool>()));
    let tags = proptest::collection::vec("[a-zA-Z0-9_][a-zA-Z0-9_+.-]{0,8}", 0..4);
    let extra = proptest::collection::btree_map("X_[A-Z0-9_]{0,8}", conf_text(), 0..3);
    (texts, numbers, flags, tags, extra).prop_map(
        |(
            (app, description, os, os_version, storage, bridge),
            (cpu, ram, disk, swap),
            f,
            tags,
            extra,
        )| {
            TemplateConfig {
                app,
                description,
                tags,
                cpu,
                ram_mib: ram,
                disk_gib: disk,
                swap_mib: swap,
                os,
                os_version,
                unprivileged: f[0],
                nesting: f[1],
                keyctl: f[2],
                fuse: f[3],
                storage,
                bridge,
                extra: extra.into_iter().collect(),
                raw: None,
                ..TemplateConfig::default()
            }
        },
    )
}

fn scripts() -> impl Strategy<Value = Vec<Script>> {
    proptest::collection::vec((0u32..1000, "[a-z][a-z0-9_-]{0,10}", any::<String>()), 0..5)
        .prop_map(|raw| {
            let mut by_name = BTreeMap::new();
            for (order, stem, content) in raw {
                let name = format!("{order:02}-{stem}.sh");
                by_name.insert(name.clone(), Script::new(order, name, content));
            }
            by_name.into_values().collect()
        })
}

fn files() -> impl Strategy<Value = Vec<TemplateFile>> {
    let policy = prop_oneof![
        Just(FilePolicy::Replace),
        Just(FilePolicy::Default),
        Just(FilePolicy::Backup)
    ];
    let target = "(/[a-zA-Z0-9._ -]{1,8}){0,4}/?"
        .prop_map(|p| if p.is_empty() { "/".to_string() } else { p })
        .prop_filter("valid target", |p| validate_target_path(p).is_ok());
    let name = "[a-z][a-z0-9_-]{0,8}(\\.[a-z]{1,4})?".prop_filter("not a sidecar or readme", |n| {
        !n.ends_with(".path") && !n.ends_with(".policy") && !n.starts_with("readme")
    });
    proptest::collection::vec((name, target, policy, any::<String>()), 0..4).prop_map(|raw| {
        let mut by_name = BTreeMap::new();
        for (name, target, policy, content) in raw {
            by_name.insert(
                name.clone(),
                TemplateFile::new(name, target, policy, content),
            );
        }
        by_name.into_values().collect()
    })
}

fn package(manager: PackageManager) -> BoxedStrategy<Package> {
    let (name, version) = match manager {
        PackageManager::Apt => ("[a-z0-9][a-z0-9+.-]{1,10}", "[0-9][a-z0-9.+~:-]{0,8}"),
        PackageManager::Apk => ("[a-zA-Z0-9][a-zA-Z0-9+._-]{0,10}", "[0-9][a-z0-9._-]{0,6}"),
        PackageManager::Dnf => (
            "@?[a-zA-Z0-9][a-zA-Z0-9+._-]{0,10}",
            "[0-9][a-z0-9.:_^-]{0,6}",
        ),
        PackageManager::Npm => (
            "(@[a-z0-9][a-z0-9._-]{0,5}/)?[a-z0-9][a-z0-9._-]{0,10}",
            "[0-9^~][0-9a-z.-]{0,6}",
        ),
        PackageManager::Pip => (
            "[A-Za-z0-9]([A-Za-z0-9._-]{0,8}[A-Za-z0-9])?",
            "[0-9][0-9a-z.+!]{0,6}",
        ),
    };
    (name, proptest::option::of(version))
        .prop_map(|(name, version)| Package { name, version })
        .boxed()
}

fn manager() -> impl Strategy<Value = PackageManager> {
    proptest::sample::select(PackageManager::ALL.to_vec())
}

fn package_lists() -> impl Strategy<Value = Vec<PackageList>> {
    let list = ("[a-z][a-z0-9_-]{0,8}", manager()).prop_flat_map(|(bucket, manager)| {
        proptest::collection::vec(package(manager), 0..6).prop_map(move |packages| PackageList {
            bucket: bucket.clone(),
            manager,
            packages,
            raw: None,
        })
    });
    proptest::collection::vec(list, 0..4).prop_map(|lists| {
        let mut by_file = BTreeMap::new();
        for list in lists {
            by_file.insert(list.file_name(), list);
        }
        by_file.into_values().collect()
    })
}

fn template() -> impl Strategy<Value = Template> {
    (
        "[a-z][a-z0-9-]{0,12}",
        config(),
        scripts(),
        files(),
        package_lists(),
        proptest::option::of(any::<String>()),
    )
        .prop_map(
            |(name, config, scripts, files, packages, custom_installer)| {
                let mut t = Template {
                    name,
                    config,
                    scripts,
                    files,
                    packages,
                    custom_installer,
                    custom_lists: Vec::new(),
                    docs: Vec::new(),
                    cloud_init: None,
                };
                // The loader's order: scripts by number, then name.
                t.sort();
                t
            },
        )
}

fn load_rendered(t: &Template) -> ctforge_template::Loaded {
    let files = render_files(t)
        .into_iter()
        .map(|(path, text)| (path, text.into_bytes()));
    load_files(&t.name, files)
}

/// A plausible but arbitrary template layout: paths from the real folders,
/// names and contents from small alphabets that hit the interesting cases.
fn layout() -> impl Strategy<Value = Vec<(PathBuf, Vec<u8>)>> {
    let folder = proptest::sample::select(vec![
        "",
        "container-configs/",
        "container-configs/scripts/",
        "container-configs/files/",
        "container-configs/packages/",
        "container-configs/scripts/sub/",
        "container-configs/other/",
    ]);
    let name = "(template\\.conf|custom\\.sh|README\\.md|\\.gitkeep|[0-9]{0,3}-?[a-z.]{1,4}(\\.(sh|path|policy|apt|npm|pip|dnf|apk))?)";
    let content = prop_oneof![
        "[a-zA-Z0-9_=\"'$`{}:#@/. \n-]{0,60}".prop_map(String::into_bytes),
        "(/[a-z.]{0,4}){0,3}\n?".prop_map(String::into_bytes),
        proptest::sample::select(vec!["replace\n", "default", "backup\n\n", "x\n"])
            .prop_map(|s| s.as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    proptest::collection::vec(
        (folder, name, content).prop_map(|(f, n, c)| (PathBuf::from(format!("{f}{n}")), c)),
        0..24,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_templates_round_trip(t in template()) {
        let validation = t.validate();
        prop_assert!(
            validation.iter().all(|d| !d.is_error()),
            "valid model rejected: {validation:?}"
        );
        let loaded = load_rendered(&t);
        prop_assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let back = loaded.template.expect("template");
        prop_assert_eq!(back.without_raw(), t.clone());

        // Writing what was loaded reproduces the same files byte for byte.
        prop_assert_eq!(render_files(&back), render_files(&t));
    }

    #[test]
    fn edits_after_loading_are_written(t in template(), cpu in 1u32..64, tag in "[a-z]{1,6}") {
        let mut loaded = load_rendered(&t).template.expect("template");
        loaded.config.cpu = Some(cpu);
        loaded.config.tags.push(tag);
        for list in &mut loaded.packages {
            list.packages.reverse();
        }
        let again = load_rendered(&loaded).template.expect("template");
        prop_assert_eq!(again.without_raw(), loaded.without_raw());
    }

    #[test]
    fn arbitrary_layouts_load_and_reload_unchanged(files in layout()) {
        let loaded = load_files("fuzz", files);
        let clean = !loaded.has_errors();
        if let Some(t) = loaded.template {
            // Validation never rejects what loaded without errors.
            if clean {
                let errors: Vec<_> = t.validate().into_iter().filter(|d| d.is_error()).collect();
                prop_assert!(errors.is_empty(), "{errors:?}");
            }
            let again = load_rendered(&t);
            prop_assert_eq!(again.template.map(|t| t.without_raw()), Some(t.without_raw()));
        }
    }

    #[test]
    fn parse_conf_never_panics(text in any::<String>()) {
        let (config, diags) = parse_conf(&text);
        prop_assert_eq!(config.raw.as_deref(), Some(text.as_str()));
        for d in diags {
            prop_assert!(d.line.is_some());
        }
    }

    #[test]
    fn parse_conf_never_panics_on_shell_like_text(
        text in "([A-Z_]{0,6}|export )[= ]?[\"'$`{}():;=!#\\\\a-z0-9 -]{0,40}(\n[A-Z_= \"'${}:-]{0,20}){0,4}"
    ) {
        let (config, _) = parse_conf(&text);
        // Whatever was read, if it is representable, its canonical form reads
        // back as the same config.
        let t = Template { config: config.clone(), ..Template::new("t") };
        if t.validate().iter().all(|d| !d.is_error()) {
            let canonical = ctforge_template::render_conf_canonical(&config);
            prop_assert_eq!(parse_conf(&canonical).0.without_raw(), config.without_raw());
        }
    }

    #[test]
    fn parse_package_list_never_panics(text in any::<String>(), manager in manager()) {
        let (packages, _) = parse_package_list(&text, manager);
        // Everything accepted is written back in a form that parses the same.
        let list = PackageList { bucket: "b".into(), manager, packages, raw: None };
        let (again, diags) = parse_package_list(&list.render_canonical(), manager);
        prop_assert_eq!(again, list.packages);
        prop_assert!(diags.iter().all(|d| !d.is_error()));
    }

    #[test]
    fn package_parse_is_the_inverse_of_spec(manager in manager(), spec in "[@a-zA-Z0-9._=/:+~^!*\\[\\],-]{0,20}") {
        if let Ok(package) = Package::parse(manager, &spec) {
            prop_assert_eq!(Package::parse(manager, &package.spec(manager)), Ok(package));
        }
    }

    #[test]
    fn target_paths_never_escape(path in "[/. a-z]{0,20}") {
        if validate_target_path(&path).is_ok() {
            prop_assert!(path.starts_with('/'));
            prop_assert!(!path.split('/').any(|c| c == ".."));
        }
    }
}

#[test]
fn sets_are_sorted_like_the_loader() {
    // The generators build scripts, files and lists in the loader's order;
    // `Template::sort` agrees with it.
    let mut t = Template::new("t");
    t.scripts = vec![Script::new(10, "10-b.sh", ""), Script::new(2, "2-a.sh", "")];
    t.files = vec![
        TemplateFile::new("z", "/", FilePolicy::Replace, ""),
        TemplateFile::new("a", "/", FilePolicy::Replace, ""),
    ];
    t.sort();
    let names: BTreeSet<_> = t.files.iter().map(|f| f.name.clone()).collect();
    assert_eq!(t.scripts[0].order, 2);
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["a", "z"]);
    assert_eq!(t.files[0].name, "a");
}
