//! Golden, broken-fixture and round-trip tests on real template directories
//! under `tests/fixtures/`.
//!
//! `tests/fixtures/broken/<case>/` holds one template per diagnostic, with the
//! expected output in `expected.txt` (a top-level file, so the loader ignores
//! it as documentation). Adding a case means adding a folder; run with
//! `UPDATE_EXPECT=1` to (re)write the `expected.txt` files, then review them.

// Test code: helpers outside #[test] fns may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ctforge_template::{
    FilePolicy, Loaded, Package, PackageList, PackageManager, Script, Severity, Template,
    TemplateConfig, TemplateFile, discover, load_dir, load_files, render_files, write_dir,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn good_dir() -> PathBuf {
    fixtures().join("good/web-stack")
}

fn read(dir: &Path, rel: &str) -> String {
    fs::read_to_string(dir.join(rel)).unwrap()
}

fn render_diagnostics(loaded: &Loaded) -> String {
    let mut out = String::new();
    for d in &loaded.diagnostics {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    if loaded.template.is_none() {
        out.push_str("=> no template\n");
    }
    out
}

#[test]
fn golden_template_model() {
    let dir = good_dir();
    let loaded = load_dir(&dir);
    let t = loaded.template.clone().expect("template loads");

    assert_eq!(
        render_diagnostics(&loaded),
        "container-configs/scripts/cleanup.sh: warning: script name `cleanup.sh` does not \
         match `NN-name.sh`, so it is skipped: add a number for its place in the run order, \
         like `50-cleanup.sh`\n"
    );
    assert!(!loaded.has_errors());
    assert!(
        loaded
            .diagnostics
            .iter()
            .all(|d| d.severity == Severity::Warning)
    );

    let expected = Template {
        name: "web-stack".into(),
        config: TemplateConfig {
            app: Some("Web Stack".into()),
            description: Some("Nginx, Node.js and Python tools for small web apps".into()),
            tags: vec!["web".into(), "nodejs".into(), "python".into()],
            cpu: Some(2),
            ram_mib: Some(2048),
            disk_gib: Some(16),
            swap_mib: Some(512),
            os: Some("debian".into()),
            os_version: Some("12".into()),
            unprivileged: Some(true),
            nesting: Some(true),
            keyctl: Some(false),
            fuse: Some(false),
            storage: Some("local-lvm".into()),
            bridge: Some("vmbr0".into()),
            extra: vec![("TEMPLATE_CONFIG_PATH".into(), "container-configs".into())],
            raw: Some(read(&dir, "template.conf")),
            ..TemplateConfig::default()
        },
        scripts: vec![
            Script::new(
                0,
                "00-pre-checks.sh",
                read(&dir, "container-configs/scripts/00-pre-checks.sh"),
            ),
            Script::new(
                2,
                "2-nginx.sh",
                read(&dir, "container-configs/scripts/2-nginx.sh"),
            ),
            Script::new(
                10,
                "10-node-app.sh",
                read(&dir, "container-configs/scripts/10-node-app.sh"),
            ),
            Script::new(
                90,
                "90-credentials.sh",
                read(&dir, "container-configs/scripts/90-credentials.sh"),
            ),
        ],
        files: vec![
            TemplateFile {
                name: "app.env".into(),
                target_dir: "/opt/app".into(),
                policy: FilePolicy::Backup,
                content: "NODE_ENV=production\nPORT=3000\n".into(),
                // Written without a trailing newline: kept as is.
                raw_path: Some("/opt/app".into()),
                raw_policy: Some("backup\n".into()),
            },
            TemplateFile {
                name: "bashrc".into(),
                target_dir: "/root".into(),
                policy: FilePolicy::Default,
                content: read(&dir, "container-configs/files/bashrc"),
                raw_path: Some("/root\n".into()),
                raw_policy: Some("default\n".into()),
            },
            TemplateFile {
                name: "nginx.conf".into(),
                target_dir: "/etc/nginx/sites-available".into(),
                policy: FilePolicy::Replace,
                content: read(&dir, "container-configs/files/nginx.conf"),
                raw_path: Some("/etc/nginx/sites-available\n".into()),
                raw_policy: Some("replace\n".into()),
            },
        ],
        packages: vec![
            PackageList {
                bucket: "base".into(),
                manager: PackageManager::Apt,
                packages: vec![
                    Package::new("curl"),
                    Package::new("ca-certificates"),
                    Package::pinned("git", "1:2.39.5-0+deb12u1"),
                    Package::new("nginx"),
                    Package::new("vim"),
                ],
                raw: Some(read(&dir, "container-configs/packages/base.apt")),
            },
            PackageList {
                bucket: "nodejs".into(),
                manager: PackageManager::Npm,
                packages: vec![
                    Package::pinned("pm2", "5.3.1"),
                    Package::pinned("@nestjs/cli", "10.4.5"),
                    Package::new("typescript"),
                    Package::new("@angular/cli"),
                ],
                raw: Some(read(&dir, "container-configs/packages/nodejs.npm")),
            },
            PackageList {
                bucket: "tools".into(),
                manager: PackageManager::Pip,
                packages: vec![
                    Package::pinned("requests", "2.31.0"),
                    Package::new("httpie"),
                    Package::pinned("black", "24.4.2"),
                ],
                raw: Some(read(&dir, "container-configs/packages/tools.pip")),
            },
        ],
        custom_installer: Some(read(&dir, "container-configs/packages/custom.sh")),
        custom_lists: Vec::new(),
        docs: t.docs.clone(),
        cloud_init: None,
    };
    assert_eq!(t, expected);
    assert!(t.scripts.iter().all(|s| s.enabled));

    // A loaded template passes validation; `TEMPLATE_CONFIG_PATH`, a key of the template
    // library, is kept without a warning (its note is information).
    let validation: Vec<String> = t.validate().iter().map(ToString::to_string).collect();
    assert!(validation.is_empty(), "{validation:?}");
    assert!(ctforge_template::conf::library_key_note("TEMPLATE_CONFIG_PATH").is_some());

    // The model survives serde (the app stores it as JSON).
    let json = serde_json::to_string(&t).unwrap();
    assert_eq!(serde_json::from_str::<Template>(&json).unwrap(), t);
}

/// Loads every case folder under `tests/fixtures/broken/` and compares its
/// diagnostics with `expected.txt`.
#[test]
fn broken_templates() {
    let root = fixtures().join("broken");
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut cases: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 40,
        "expected a case per diagnostic, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(message) = check(case, update) {
            failures.push(message);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The single data-driven check: load `case`, render its diagnostics and
/// compare them with `case/expected.txt`.
fn check(case: &Path, update: bool) -> Result<(), String> {
    let name = case.file_name().unwrap().to_string_lossy().into_owned();
    let loaded = load_dir(case);
    let actual = render_diagnostics(&loaded);
    let expected_path = case.join("expected.txt");
    if update {
        fs::write(&expected_path, &actual).unwrap();
        return Ok(());
    }
    if loaded.diagnostics.is_empty() {
        return Err(format!("{name}: produced no diagnostic"));
    }
    let expected = fs::read_to_string(&expected_path)
        .map_err(|e| format!("{name}: cannot read expected.txt ({e}); run with UPDATE_EXPECT=1"))?;
    if actual != expected {
        return Err(format!(
            "{name}: diagnostics differ\n--- expected\n{expected}--- actual\n{actual}"
        ));
    }
    // Whatever the problems, writing and reloading keeps the model.
    if let Some(t) = &loaded.template {
        let reloaded = reload(t);
        if reloaded.template.as_ref().map(Template::without_raw) != Some(t.without_raw()) {
            return Err(format!("{name}: model changed after write and reload"));
        }
    }
    Ok(())
}

fn reload(t: &Template) -> Loaded {
    let files = render_files(t)
        .into_iter()
        .map(|(path, text)| (path, text.into_bytes()));
    load_files(&t.name, files)
}

/// Every file of `dir`, relative path → bytes (symlinks not followed).
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(base, &path, out);
            } else {
                out.insert(
                    path.strip_prefix(base).unwrap().to_path_buf(),
                    fs::read(&path).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn the_library_web3_dev_template_round_trips_byte_identical() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/original-templates/web3-dev");
    if !dir.join("template.conf").is_file() {
        println!("SKIPPED: no web3-dev at {} (../shared)", dir.display());
        return;
    }
    let loaded = load_dir(&dir);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let t = loaded.template.clone().unwrap();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("web3-dev");
    write_dir(&t, &target).unwrap();
    let (original, written) = (tree(&dir), tree(&target));
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        original.keys().collect::<Vec<_>>(),
        "every file of the directory, docs included"
    );
    for (rel, bytes) in &original {
        assert_eq!(&written[rel], bytes, "{} differs", rel.display());
    }
    assert_eq!(load_dir(&target).template, Some(t));
}

#[test]
fn round_trip_is_byte_identical() {
    let dir = good_dir();
    let loaded = load_dir(&dir);
    let t = loaded.template.clone().unwrap();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("web-stack");
    write_dir(&t, &target).unwrap();

    let mut original = tree(&dir);
    let written = tree(&target);
    // Documents (next to template.conf, the folders' READMEs and `.gitkeep`s) are kept and
    // written; other hidden files, the skipped script and a README directly in
    // container-configs are not.
    let not_content = [
        "container-configs/README.md",
        "container-configs/scripts/cleanup.sh",
        "container-configs/files/.bashrc-extra",
    ];
    for rel in not_content {
        assert!(
            original.remove(Path::new(rel)).is_some(),
            "fixture lacks {rel}"
        );
    }
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        original.keys().collect::<Vec<_>>()
    );
    for (rel, bytes) in &original {
        assert_eq!(
            String::from_utf8_lossy(&written[rel]),
            String::from_utf8_lossy(bytes),
            "{} differs",
            rel.display()
        );
        assert_eq!(&written[rel], bytes);
    }

    // Loading the export gives the same model (raw texts included) and no
    // diagnostics (the skipped script is gone; the library's key is information).
    let again = load_dir(&target);
    assert_eq!(again.template.as_ref(), Some(&t));
    assert_eq!(again.diagnostics.len(), 0);

    // discover finds the exported template.
    let found = discover(out.path());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, target);
    assert_eq!(found[0].1, again);
}

#[test]
fn edited_parts_are_rendered_canonically_and_the_rest_kept() {
    let dir = good_dir();
    let mut t = load_dir(&dir).template.unwrap();
    t.config.cpu = Some(4);
    t.files[0].policy = FilePolicy::Replace;
    t.packages[0]
        .packages
        .push(Package::pinned("jq", "1.6-2.1"));
    t.scripts[1].order = 20;
    t.scripts[3].enabled = false;
    t.sort();

    let files: BTreeMap<PathBuf, String> = render_files(&t).into_iter().collect();
    let conf = &files[Path::new("template.conf")];
    assert!(conf.starts_with("TEMPLATE_APP=\"Web Stack\"\n"), "{conf}");
    assert!(conf.contains("\nTEMPLATE_CPU=4\n"));
    assert_eq!(
        files[Path::new("container-configs/files/app.env.policy")],
        "replace\n"
    );
    // Untouched sidecar keeps its original bytes (no trailing newline).
    assert_eq!(
        files[Path::new("container-configs/files/app.env.path")],
        "/opt/app"
    );
    assert_eq!(
        files[Path::new("container-configs/packages/base.apt")],
        "curl\nca-certificates\ngit=1:2.39.5-0+deb12u1\nnginx\nvim\njq=1.6-2.1\n"
    );
    assert_eq!(
        files[Path::new("container-configs/packages/nodejs.npm")],
        read(&dir, "container-configs/packages/nodejs.npm")
    );
    assert!(files.contains_key(Path::new("container-configs/scripts/20-nginx.sh")));
    assert!(!files.contains_key(Path::new("container-configs/scripts/2-nginx.sh")));
    assert!(!files.contains_key(Path::new("container-configs/scripts/90-credentials.sh")));

    let reloaded = reload(&t).template.unwrap();
    let mut expected = t.without_raw();
    expected.scripts.retain(|s| s.enabled);
    for script in &mut expected.scripts {
        if script.order == 20 {
            script.name = "20-nginx.sh".into();
        }
    }
    assert_eq!(reloaded.without_raw(), expected);
}

#[test]
fn discover_lists_templates_sorted_and_skips_other_folders() {
    let out = tempfile::tempdir().unwrap();
    for name in ["zeta", "alpha", "mid"] {
        write_dir(&Template::new(name), &out.path().join(name)).unwrap();
    }
    fs::create_dir(out.path().join("not-a-template")).unwrap();
    fs::write(out.path().join("README.md"), "docs").unwrap();
    let found: Vec<String> = discover(out.path())
        .iter()
        .map(|(p, l)| {
            assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
            p.file_name().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    assert_eq!(found, ["alpha", "mid", "zeta"]);
    assert!(discover(&out.path().join("missing")).is_empty());
}

#[test]
fn in_memory_only_problems() {
    use std::os::unix::ffi::OsStrExt;

    let big = vec![b'x'; usize::try_from(ctforge_template::MAX_FILE_SIZE).unwrap() + 1];
    let odd_name = PathBuf::from(std::ffi::OsStr::from_bytes(
        b"container-configs/scripts/10-\xff.sh",
    ));
    let loaded = load_files(
        "mem",
        [
            (PathBuf::from("template.conf"), b"TEMPLATE_APP=x\n".to_vec()),
            (PathBuf::from("container-configs/files/huge"), big),
            (odd_name, b"echo\n".to_vec()),
            (
                PathBuf::from("container-configs/files/bad\u{1}name"),
                b"x".to_vec(),
            ),
            (PathBuf::from("../escape"), b"x".to_vec()),
            (PathBuf::from("/etc/passwd"), b"x".to_vec()),
        ],
    );
    let text = render_diagnostics(&loaded);
    assert_eq!(
        text,
        "/etc/passwd: warning: path is not inside the template, so it is ignored: use a relative \
         path like `container-configs/scripts/10-setup.sh`\n\
         ../escape: warning: path is not inside the template, so it is ignored: use a relative \
         path like `container-configs/scripts/10-setup.sh`\n\
         container-configs/files/bad\u{1}name: warning: file name contains a control \
         character, so it is ignored: rename it\n\
         container-configs/files/huge: error: file is larger than 16 MiB, so it is skipped: keep \
         large or binary files out of the template\n\
         container-configs/scripts/10-\u{fffd}.sh: warning: file name is not valid UTF-8, so it \
         is ignored: rename it\n"
    );
}

#[test]
fn write_dir_refuses_names_that_escape() {
    let mut t = Template::new("evil");
    t.files.push(TemplateFile::new(
        "../../x",
        "/etc",
        FilePolicy::Replace,
        "",
    ));
    let out = tempfile::tempdir().unwrap();
    let err = write_dir(&t, out.path()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(
        fs::read_dir(out.path()).unwrap().next().is_none(),
        "nothing written"
    );
    let diags: Vec<String> = t.validate().iter().map(ToString::to_string).collect();
    assert_eq!(
        diags,
        [
            "container-configs/files/../../x: error: file name `../../x` contains a path \
          separator: use a plain file name"
        ]
    );
}

#[test]
fn validation_of_ui_built_templates() {
    let mut t = Template::new(".hidden");
    t.config = TemplateConfig {
        app: Some("two\nlines".into()),
        tags: vec!["ok".into(), "".into(), "a;b".into(), " pad".into()],
        cpu: Some(0),
        ram_mib: Some(8),
        disk_gib: Some(0),
        os_version: Some("12".into()),
        extra: vec![
            ("1BAD".into(), "x".into()),
            ("TEMPLATE_CPU".into(), "2".into()),
            ("MINE".into(), "x".into()),
            ("MINE".into(), "y".into()),
        ],
        ..TemplateConfig::default()
    };
    t.scripts = vec![
        Script::new(10, "setup.sh", ""),
        Script::new(10, "10-setup.sh", ""),
        Script::new(5, "", ""),
        Script::new(6, "a/b.sh", ""),
    ];
    t.files = vec![
        TemplateFile::new("motd", "etc", FilePolicy::Replace, ""),
        TemplateFile::new("motd.path", "/etc", FilePolicy::Replace, ""),
        TemplateFile::new("issue", " /etc", FilePolicy::Replace, ""),
        TemplateFile::new("issue", "/etc", FilePolicy::Replace, ""),
    ];
    t.packages = vec![
        PackageList {
            bucket: "base".into(),
            manager: PackageManager::Apt,
            packages: vec![
                Package::new("curl"),
                Package::new("Bad Name"),
                Package::pinned("x", ""),
            ],
            raw: None,
        },
        PackageList::new("base", PackageManager::Apt),
        PackageList::new("", PackageManager::Pip),
    ];
    let actual: Vec<String> = t.validate().iter().map(ToString::to_string).collect();
    let expected = [
        "error: template name `.hidden` starts with `.`, so it would be ignored as a hidden file: \
         remove the leading `.`",
        "template.conf: error: `TEMPLATE_APP` contains a line break, which one `KEY=VALUE` line \
         cannot hold: remove it",
        "template.conf: error: empty tag: remove it",
        "template.conf: error: tag `a;b` contains `;`, which separates tags: split it into \
         separate tags",
        "template.conf: error: tag ` pad` has leading or trailing spaces: remove them",
        "template.conf: error: invalid key name `1BAD`: use letters, digits and `_`, not \
         starting with a digit",
        "template.conf: error: key `TEMPLATE_CPU` is a known key and must not be repeated among \
         the extra keys: set its field instead",
        "template.conf: warning: unknown key `MINE` is kept but not used by ctforge: check the \
         spelling or remove it if nothing needs it",
        "template.conf: error: duplicate extra key `MINE`: keep only one",
        "template.conf: error: invalid `TEMPLATE_CPU` value `0`: use 1 to 8192 cores",
        "template.conf: error: invalid `TEMPLATE_RAM` value `8`: use at least 16 MiB, like \
         `TEMPLATE_RAM=512`",
        "template.conf: error: invalid `TEMPLATE_DISK` value `0`: use at least 1 GiB, like \
         `TEMPLATE_DISK=8`",
        "template.conf: warning: `TEMPLATE_VERSION` is set but `TEMPLATE_OS` is not: add \
         `TEMPLATE_OS=debian` (or the os this version belongs to)",
        "container-configs/scripts/10-setup.sh: error: two scripts are written as \
         `10-setup.sh`: rename or renumber one",
        "container-configs/scripts/05-.sh: error: empty script name: give it a name",
        "container-configs/scripts/06-a/b.sh: error: script name `a/b.sh` contains a path \
         separator: use a plain file name",
        "container-configs/files/motd.path:1: error: target directory `etc` is not absolute: \
         start it with `/`, like `/etc`",
        "container-configs/files/motd.path: error: file name `motd.path` clashes with the \
         sidecar of `motd`: rename one of them",
        "container-configs/files/issue.path:1: error: target directory ` /etc` has leading or \
         trailing spaces: remove them",
        "container-configs/files/issue: error: two files are named `issue`: rename one",
        "container-configs/packages/base.apt:2: error: `Bad Name` contains spaces: put one \
         package per line, pinned like `pkg=1.2`",
        "container-configs/packages/base.apt:3: error: empty version after `=` in `x=`: write a \
         version, like `pkg=1.2`, or drop the `=`",
        "container-configs/packages/base.apt: error: two package lists are written as \
         `base.apt`: merge them",
        "container-configs/packages/.pip: error: empty bucket name: give it a name",
    ];
    assert_eq!(actual, expected);
}
