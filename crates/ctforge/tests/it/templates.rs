//! Templates on the app side: discovery into both databases (idempotence, change reports,
//! failures and diverged templates), export round trips, the `templates` CLI and the JSON API.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ctforge::auth::SessionData;
use ctforge::auth::login::{SignIn, create_session};
use ctforge::storage::Store;
use ctforge::templates::{Status, discover_roots};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ctforge-template/tests/fixtures/good/web-stack")
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A second realistic template written from scratch: three scripts, files with each policy,
/// apt and npm lists with comments and pins, an unknown key.
fn write_db_template(dir: &Path) {
    write(
        &dir.join("template.conf"),
        "# PostgreSQL\nTEMPLATE_APP=\"PostgreSQL\"\nTEMPLATE_DESCRIPTION='Database server'\n\
         TEMPLATE_TAGS=\"db;sql\"\nTEMPLATE_CPU=2\nTEMPLATE_RAM=${TEMPLATE_RAM:-1024}\n\
         TEMPLATE_DISK=8\nTEMPLATE_OS=debian\nTEMPLATE_VERSION=12\nTEMPLATE_UNPRIVILEGED=1\n\
         TEMPLATE_BACKUP_HOUR=3\n",
    );
    let cc = dir.join("container-configs");
    write(
        &cc.join("scripts/10-install.sh"),
        "#!/bin/bash\nset -e\napt-get install -y postgresql\n",
    );
    write(
        &cc.join("scripts/20-configure.sh"),
        "#!/bin/bash\necho configure\n",
    );
    write(
        &cc.join("scripts/90-credentials.sh"),
        "#!/bin/bash\necho creds > /root/creds\n",
    );
    write(&cc.join("scripts/README.md"), "# scripts\n");
    for (name, policy) in [
        ("pg.conf", "replace"),
        ("hba.conf", "default"),
        ("motd", "backup"),
    ] {
        write(
            &cc.join(format!("files/{name}")),
            &format!("# {name}\nkey = value\n"),
        );
        write(
            &cc.join(format!("files/{name}.path")),
            "/etc/postgresql/15/main\n",
        );
        write(
            &cc.join(format!("files/{name}.policy")),
            &format!("{policy}\n"),
        );
    }
    write(&cc.join("files/.gitkeep"), "");
    write(
        &cc.join("packages/base.apt"),
        "# base\npostgresql=15.6-0+deb12u1\ncurl  # inline comment\n\nca-certificates\n",
    );
    write(&cc.join("packages/tools.npm"), "pg-migrate@6.2.2\n");
}

/// A root with `web-stack` (the format crate's fixture) and `db`.
fn realistic_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    common::copy_dir(&fixture(), &root.path().join("web-stack"));
    write_db_template(&root.path().join("db"));
    root
}

async fn discovery_lifecycle(backend: &str) {
    let (store, clock, _db) = common::fresh_store(backend).await;
    let root = realistic_root();
    let roots = vec![root.path().to_path_buf()];

    // First run: everything is new.
    let report = discover_roots(store.as_ref(), &roots).await.unwrap();
    assert!(!report.has_failures(), "{}", report.render());
    assert_eq!(report.count(Status::Added), 2, "{}", report.render());
    let web = report.get("web-stack").unwrap();
    assert!(
        web.diagnostics.iter().any(|d| d.contains("cleanup.sh")),
        "{:?}",
        web.diagnostics
    );
    assert_eq!(web.changes.scripts.added.len(), 4, "{:?}", web.changes);
    let stored = store.get_template_by_name("db").await.unwrap();
    assert_eq!(stored.row.source, "filesystem");
    assert_eq!(stored.row.tags, "db;sql");
    assert_eq!(stored.row.app, "PostgreSQL");
    assert_eq!(stored.scripts.len(), 3);
    assert_eq!(stored.files.len(), 3);
    assert_eq!(stored.packages.len(), 4);
    assert!(stored.row.config_json.contains("TEMPLATE_BACKUP_HOUR"));
    let first_updated = stored.row.updated_at;

    // Second run: unchanged, nothing written.
    clock.advance(60_000);
    let report = discover_roots(store.as_ref(), &roots).await.unwrap();
    assert_eq!(report.count(Status::Unchanged), 2, "{}", report.render());
    let again = store.get_template_by_name("db").await.unwrap();
    assert_eq!(
        again.row.updated_at, first_updated,
        "no write on an unchanged template"
    );
    assert_eq!(again, stored);

    // A script changes.
    clock.advance(60_000);
    let cc = root.path().join("db/container-configs");
    write(
        &cc.join("scripts/20-configure.sh"),
        "#!/bin/bash\necho configured\n",
    );
    let report = discover_roots(store.as_ref(), &roots).await.unwrap();
    let db = report.get("db").unwrap();
    assert_eq!(db.status, Status::Changed, "{}", report.render());
    assert_eq!(
        db.changes.scripts.changed,
        vec!["20-configure.sh".to_owned()]
    );
    assert!(db.changes.files.is_empty() && db.changes.packages.is_empty());
    assert_eq!(report.get("web-stack").unwrap().status, Status::Unchanged);
    assert!(
        report.render().contains("scripts changed: 20-configure.sh"),
        "{}",
        report.render()
    );

    // A file, a package and a config key change.
    for suffix in ["", ".path", ".policy"] {
        fs::remove_file(cc.join(format!("files/motd{suffix}"))).unwrap();
    }
    write(&cc.join("packages/tools.npm"), "pg-migrate@7.0.0\n");
    let conf = fs::read_to_string(root.path().join("db/template.conf")).unwrap();
    write(
        &root.path().join("db/template.conf"),
        &conf.replace("TEMPLATE_CPU=2", "TEMPLATE_CPU=4"),
    );
    let report = discover_roots(store.as_ref(), &roots).await.unwrap();
    let db = report.get("db").unwrap();
    assert_eq!(db.status, Status::Changed);
    assert_eq!(db.changes.files.removed, vec!["motd".to_owned()]);
    assert_eq!(
        db.changes.packages.changed,
        vec!["tools.npm:pg-migrate".to_owned()]
    );
    assert_eq!(db.changes.config_keys, vec!["TEMPLATE_CPU".to_owned()]);
    let good = store.get_template_by_name("db").await.unwrap();
    assert_eq!(good.files.len(), 2);

    // A broken template.conf: failed, previous copy intact.
    write(
        &root.path().join("db/template.conf"),
        &conf.replace("TEMPLATE_CPU=2", "TEMPLATE_CPU=2\nTEMPLATE_FUSE=maybe"),
    );
    let report = discover_roots(store.as_ref(), &roots).await.unwrap();
    assert!(report.has_failures());
    let db = report.get("db").unwrap();
    assert_eq!(db.status, Status::Failed);
    assert!(
        db.diagnostics
            .iter()
            .any(|d| d.starts_with("template.conf:") && d.contains("error")),
        "{:?}",
        db.diagnostics
    );
    assert_eq!(store.get_template_by_name("db").await.unwrap(), good);

    // A diverged template is not overwritten.
    let mut edited = store.get_template_by_name("web-stack").await.unwrap();
    edited.row.diverged = true;
    edited.row.description = "edited in the UI".to_owned();
    store.upsert_template(&edited).await.unwrap();
    write(
        &root
            .path()
            .join("web-stack/container-configs/scripts/00-pre-checks.sh"),
        "#!/bin/sh\necho changed on disk\n",
    );
    let report = discover_roots(store.as_ref(), &roots).await.unwrap();
    let web = report.get("web-stack").unwrap();
    assert_eq!(web.status, Status::Diverged);
    assert!(report.render().contains("diverged, skipped"));
    let kept = store.get_template_by_name("web-stack").await.unwrap();
    assert_eq!(kept.row.description, "edited in the UI");

    // A template that vanished from disk is reported and its stored copy kept.
    std::fs::remove_dir_all(root.path().join("db")).unwrap();
    let report = discover_roots(store.as_ref(), &roots).await.unwrap();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("template db is no longer on disk")),
        "{:?}",
        report.warnings
    );
    assert!(store.get_template_by_name("db").await.is_ok());

    // A missing root is a warning, not a failure.
    let missing = vec![root.path().join("nope")];
    let report = discover_roots(store.as_ref(), &missing).await.unwrap();
    assert!(
        report.templates.is_empty() && report.warnings.len() == 1,
        "{report:?}"
    );
}

#[tokio::test]
async fn discovery_lifecycle_sqlite() {
    discovery_lifecycle("sqlite").await;
}

#[tokio::test]
async fn discovery_lifecycle_postgres() {
    discovery_lifecycle("postgres").await;
}

/// Every content file of a template directory (no READMEs, `.gitkeep`, hidden files,
/// top-level extras, or files the loader reported and skipped), with its bytes.
fn content_files(dir: &Path, skipped: &[String]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Ok(bytes) = fs::read(dir.join("template.conf")) {
        out.insert("template.conf".to_owned(), bytes);
    }
    for folder in ["scripts", "files", "packages"] {
        let Ok(entries) = fs::read_dir(dir.join("container-configs").join(folder)) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("container-configs/{folder}/{name}");
            if name == "README.md" || name.starts_with('.') || skipped.contains(&rel) {
                continue;
            }
            out.insert(rel, fs::read(entry.path()).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn export_round_trip_is_byte_identical() {
    let (store, _clock, _db) = common::fresh_store("sqlite").await;
    let root = realistic_root();
    let report = discover_roots(store.as_ref(), &[root.path().to_path_buf()])
        .await
        .unwrap();
    assert!(!report.has_failures());
    for name in ["web-stack", "db"] {
        let source = root.path().join(name);
        let skipped: Vec<String> = ctforge_template::load_dir(&source)
            .diagnostics
            .iter()
            .filter(|d| d.message.contains("ignored") || d.message.contains("skipped"))
            .map(|d| d.file.display().to_string())
            .collect();
        let out = tempfile::tempdir().unwrap();
        let target = out.path().join(name);
        ctforge::templates::export(store.as_ref(), name, &target)
            .await
            .unwrap();
        let expected = content_files(&source, &skipped);
        let actual = content_files(&target, &[]);
        assert!(expected.len() > 5, "{name}: {:?}", expected.keys());
        assert_eq!(
            expected.keys().collect::<Vec<_>>(),
            actual.keys().collect::<Vec<_>>(),
            "{name}: same files"
        );
        for (path, bytes) in &expected {
            assert_eq!(
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(&actual[path]),
                "{name}/{path} byte-identical"
            );
        }
    }
    let missing = ctforge::templates::export(store.as_ref(), "nope", Path::new("/tmp/never")).await;
    assert!(matches!(
        missing,
        Err(ctforge::templates::TemplatesError::NotFound(_))
    ));
}

fn ctforge_cmd(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctforge"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CTFORGE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("CTFORGE_DATA_DIR", data_dir);
    cmd.stdin(Stdio::null());
    cmd
}

#[test]
fn cli_validate_prints_diagnostics_and_exit_codes() {
    let data = tempfile::tempdir().unwrap();
    let root = realistic_root();
    let web = root.path().join("web-stack");
    let db = root.path().join("db");

    let out = ctforge_cmd(data.path())
        .args(["templates", "validate"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The unknown key is a warning, with the full path and the line.
    let conf = db.join("template.conf").display().to_string();
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("{conf}:11: warning: "))),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("ok: {}", db.display())),
        "{stderr}"
    );

    // Warnings only: still exit 0.
    let out = ctforge_cmd(data.path())
        .args(["templates", "validate"])
        .arg(&web)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // An error: exit 1 with `path:line: error: message`.
    write(
        &db.join("template.conf"),
        "TEMPLATE_APP=\"Broken\"\nTEMPLATE_FUSE=maybe\n",
    );
    let out = ctforge_cmd(data.path())
        .args(["templates", "validate"])
        .arg(&web)
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = format!(
        "{}:2: error: invalid `TEMPLATE_FUSE` value `maybe`",
        db.join("template.conf").display()
    );
    assert!(stdout.lines().any(|l| l.starts_with(&line)), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("ok: {}", web.display())),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&format!("ok: {}", db.display())),
        "{stderr}"
    );

    // A directory without template.conf is an error too.
    let empty = tempfile::tempdir().unwrap();
    let out = ctforge_cmd(data.path())
        .args(["templates", "validate"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn cli_discover_and_export() {
    let data = tempfile::tempdir().unwrap();
    let root = realistic_root();
    let out = ctforge_cmd(data.path())
        .args(["templates", "discover", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("added") && stdout.contains("db"),
        "{stdout}"
    );
    assert!(stdout.contains("2 templates: 2 added"), "{stdout}");

    let export = tempfile::tempdir().unwrap();
    let out = ctforge_cmd(data.path())
        .args(["templates", "export", "db", "--out"])
        .arg(export.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let exported = export.path().join("db");
    assert_eq!(
        fs::read(exported.join("container-configs/packages/base.apt")).unwrap(),
        fs::read(root.path().join("db/container-configs/packages/base.apt")).unwrap()
    );
    // The export validates.
    let out = ctforge_cmd(data.path())
        .args(["templates", "validate"])
        .arg(&exported)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // Exporting over a non-empty directory and an unknown name fail with one line.
    for args in [vec!["db"], vec!["nope"]] {
        let target = if args[0] == "db" {
            export.path().to_path_buf()
        } else {
            tempfile::tempdir().unwrap().keep()
        };
        let out = ctforge_cmd(data.path())
            .args(["templates", "export"])
            .args(&args)
            .arg("--out")
            .arg(&target)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

async fn signed_in(app: &common::TestApp) -> (String, String) {
    let data = SessionData {
        cluster_id: common::home_cluster(&app.state).await,
        ticket: "PVE:root@pam:00000000::sig".into(),
        pve_csrf: "x".into(),
        cap: Default::default(),
        issued_at: app.state.clock.now_ms() / 1000,
        tfa_challenge: None,
    };
    match create_session(&app.state, data, "root@pam").await.unwrap() {
        SignIn::Done {
            token, csrf_token, ..
        } => (token, csrf_token),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn api_discover_list_get_export_delete() {
    let root = realistic_root();
    let root_path = root.path().to_path_buf();
    let app = common::spawn_app_with("sqlite", |c| c.templates.roots = vec![root_path]).await;
    let (token, csrf) = signed_in(&app).await;
    let cookie = format!("ctforge_session={token}");
    let url = |path: &str| format!("{}{path}", app.address);

    let response = app
        .client
        .post(url("/api/v1/templates/discover"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report: serde_json::Value = response.json().await.unwrap();
    assert_eq!(report["templates"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["templates"][0]["status"], "added", "{report}");

    let list: serde_json::Value = app
        .client
        .get(url("/api/v1/templates"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let templates = list["templates"].as_array().unwrap();
    assert_eq!(templates.len(), 2, "{list}");
    let db = templates.iter().find(|t| t["name"] == "db").unwrap();
    assert_eq!(db["script_count"], 3);
    assert_eq!(db["file_count"], 3);
    assert_eq!(db["package_count"], 4);
    assert_eq!(db["tags"], serde_json::json!(["db", "sql"]));
    assert_eq!(db["resources"]["cpu"], 2);

    for (query, expected) in [
        ("?tag=SQL", vec!["db"]),
        ("?q=nginx", vec!["web-stack"]),
        ("?q=zzz", vec![]),
    ] {
        let list: serde_json::Value = app
            .client
            .get(url(&format!("/api/v1/templates{query}")))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let names: Vec<&str> = list["templates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, expected, "{query}");
    }

    let detail: serde_json::Value = app
        .client
        .get(url("/api/v1/templates/db"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["scripts"][0]["name"], "10-install.sh", "{detail}");
    assert_eq!(detail["config"]["cpu"], 2);
    assert_eq!(detail["files"].as_array().unwrap().len(), 3);
    assert_eq!(
        detail["packages"][0]["version"], "15.6-0+deb12u1",
        "{detail}"
    );

    let missing = app
        .client
        .get(url("/api/v1/templates/nope"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let export = app
        .client
        .get(url("/api/v1/templates/db/export"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    assert_eq!(export.headers()["content-type"], "application/gzip");
    assert!(
        export.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("db.tar.gz")
    );
    let bytes = export.bytes().await.unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        if path == "db/container-configs/packages/base.apt" {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            assert!(text.contains("# inline comment"), "{text}");
        }
        names.push(path);
    }
    assert!(names.contains(&"db/template.conf".to_owned()), "{names:?}");
    assert!(names.contains(&"db/container-configs/scripts/10-install.sh".to_owned()));

    // Referenced by a container: 409 unless forced.
    let id = app
        .state
        .store
        .get_template_by_name("db")
        .await
        .unwrap()
        .row
        .id;
    reference_template(app.state.store.as_ref(), id).await;
    let refused = app
        .client
        .delete(url("/api/v1/templates/db"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("referenced by 1 containers; pass ?force=true"),
        "{body}"
    );
    let deleted = app
        .client
        .delete(url("/api/v1/templates/db?force=true"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let deleted = app
        .client
        .delete(url("/api/v1/templates/web-stack"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(app.state.store.list_templates().await.unwrap().is_empty());
    app.stop().await.unwrap();
}

/// Creates a cluster and a container record built from template `id`.
async fn reference_template(store: &dyn Store, id: i64) {
    use ctforge::storage::model::{ClusterInput, NewContainer, NewJob};
    let cluster = store
        .insert_cluster(&ClusterInput {
            name: "c".into(),
            url: "https://127.0.0.1:8006".into(),
            token_id: "root@pam!t".into(),
            ssh_user: "root".into(),
            ssh_port: 22,
            ..Default::default()
        })
        .await
        .unwrap();
    store
        .create_container_with_job(
            &NewContainer {
                cluster_id: cluster,
                node: "pve".into(),
                vmid: 100,
                hostname: "db".into(),
                template_id: Some(id),
                status: ctforge::status::RecordStatus::Ready,
                spec_json: "{}".into(),
                created_by: "root@pam".into(),
                ..Default::default()
            },
            &NewJob {
                kind: "create_container".into(),
                payload_json: "{}".into(),
                created_by: "root@pam".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

/// Every file under `dir`, recursively (relative path → bytes).
fn whole_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap().display().to_string();
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The library's real `web3-dev` (from `../shared`, never copied into the repository):
/// discovered, exported and discovered again, every file of the directory (its docs,
/// `container.sh`, the folders' READMEs) is byte-identical and the second discovery sees no
/// change.
#[tokio::test]
async fn the_library_web3_dev_exports_and_imports_byte_identical() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/original-templates/web3-dev");
    if !source.join("template.conf").is_file() {
        println!("SKIPPED: no web3-dev at {} (../shared)", source.display());
        return;
    }
    let root = tempfile::tempdir().unwrap();
    common::copy_dir(&source, &root.path().join("web3-dev"));
    let (store, _clock, _db) = common::fresh_store("sqlite").await;
    let report = discover_roots(store.as_ref(), &[root.path().to_path_buf()])
        .await
        .unwrap();
    assert!(!report.has_failures(), "{report:?}");
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("web3-dev");
    ctforge::templates::export(store.as_ref(), "web3-dev", &target)
        .await
        .unwrap();
    let (expected, actual) = (whole_dir(&source), whole_dir(&target));
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &expected {
        assert_eq!(bytes, &actual[path], "{path} byte-identical");
    }
    // Importing the export (discovery of its directory) changes nothing.
    let (again, _clock2, _db2) = common::fresh_store("sqlite").await;
    discover_roots(again.as_ref(), &[out.path().to_path_buf()])
        .await
        .unwrap();
    let (_, a) = ctforge::templates::load_template(store.as_ref(), "web3-dev")
        .await
        .unwrap();
    let (_, b) = ctforge::templates::load_template(again.as_ref(), "web3-dev")
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a.docs.len(),
        10,
        "{:?}",
        a.docs.iter().map(|d| &d.path).collect::<Vec<_>>()
    );
}
