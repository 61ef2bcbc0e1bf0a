//! The template library over git, as a user sees it: the Templates page's "Sync sources"
//! button (CSRF, audited, per-template changes), a git-sourced template edited in ctforge
//! becoming "diverged from git @ sha" with the way back, ssh deploy keys sealed at rest (only
//! the fingerprint shown, the host key pinned before anything is fetched), "sync on boot"
//! written into the container's config-manager configuration, and the config-manager panel on
//! the container page and in `GET /api/v1/containers/{id}`.

#![allow(clippy::unwrap_used)]

use crate::common;
use crate::common::copy_dir;
use crate::git_templates::git;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ctforge::config::GitSource;
use serde_json::{Value, json};

/// A bare repository holding `library/webapp`, and its working clone.
struct Repo {
    _tmp: tempfile::TempDir,
    bare: PathBuf,
    work: PathBuf,
}

impl Repo {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let bare = tmp.path().join("templates.git");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "--bare", "--initial-branch=main"]);
        git(tmp.path(), &["clone", bare.to_str().unwrap(), "work"]);
        git(&work, &["checkout", "-B", "main"]);
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates/webapp"),
            &work.join("library/webapp"),
        );
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-m", "webapp"]);
        git(&work, &["push", "origin", "main"]);
        Self {
            _tmp: tmp,
            bare,
            work,
        }
    }

    fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    fn head(&self) -> String {
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Appends `line` to the start script and pushes.
    fn change_script(&self, line: &str) -> String {
        let script = self
            .work
            .join("library/webapp/container-configs/scripts/20-start.sh");
        let mut text = std::fs::read_to_string(&script).unwrap();
        text.push_str(line);
        text.push('\n');
        std::fs::write(&script, text).unwrap();
        git(&self.work, &["commit", "-am", "change the start script"]);
        git(&self.work, &["push", "origin", "main"]);
        self.head()
    }
}

fn source(url: &str) -> GitSource {
    GitSource {
        url: url.to_owned(),
        branch: "main".to_owned(),
        path: Some("library".to_owned()),
        ..GitSource::default()
    }
}

async fn get_text(app: &common::TestApp, session: &common::ApiSession, path: &str) -> String {
    app.client
        .get(format!("{}{path}", app.address))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A form post from the browser (session cookie + CSRF token).
async fn post_form(
    app: &common::TestApp,
    session: &common::ApiSession,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String) {
    let r = app
        .client
        .post(format!("{}{path}", app.address))
        .header("cookie", &session.cookie)
        .header("x-csrf-token", &session.csrf)
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn wait_job(app: &common::TestApp, session: &common::ApiSession, job: i64) -> Value {
    for _ in 0..600 {
        let text = get_text(app, session, &format!("/api/v1/jobs/{job}")).await;
        let job: Value = serde_json::from_str(&text).unwrap();
        if matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {job} did not finish");
}

fn in_ct(sim: &ctforge_pve_sim::SimHandle, vmid: u32, command: &str) -> String {
    let state = sim.state();
    let backend = state.memory_backend().unwrap();
    let argv = ["sh".to_owned(), "-c".to_owned(), command.to_owned()];
    let (out, err, code) = backend.run(vmid, &argv, b"");
    assert_eq!(code, 0, "{command}: {}", String::from_utf8_lossy(&err));
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn library_sync_button_diverged_git_template_and_the_way_back() {
    ctforge::install_crypto_provider();
    let repo = Repo::new();
    let sim = common::sim("", |c| c.with_nodes(1)).await;
    let cluster = common::sim_cluster(&sim);
    let url = repo.url();
    let configured = url.clone();
    let app = common::spawn_app_with("sqlite", move |config| {
        config.clusters = vec![cluster];
        config.templates.git = vec![source(&configured)];
        config.templates.git_sync_interval_secs = 0;
    })
    .await;
    let root =
        common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;

    // The Templates page offers "Sync sources"; pressing it fetches and lists the template.
    let page = get_text(&app, &root, "/templates").await;
    assert!(page.contains("action=\"/templates/sync\""), "{page}");
    assert!(page.contains("Sync sources"), "{page}");
    let (status, html) = post_form(&app, &root, "/templates/sync", &[]).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("webapp"), "{html}");
    assert!(html.contains("added"), "{html}");
    // Without the CSRF token the form is refused.
    let r = app
        .client
        .post(format!("{}/templates/sync", app.address))
        .header("cookie", &root.cookie)
        .form(&[("x", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // A new commit: the button's report lists the changed script.
    let second = repo.change_script("echo second");
    let (_, html) = post_form(&app, &root, "/templates/sync", &[]).await;
    assert!(html.contains("changed"), "{html}");
    assert!(html.contains("~20-start.sh"), "{html}");
    assert!(
        html.contains(&second[..12]),
        "the source line names the commit: {html}"
    );
    let audit = app
        .state
        .store
        .list_audit(&Default::default())
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "template.sync" && e.detail_json.contains("\"ui\"")),
        "{audit:?}"
    );

    // Edited in ctforge: diverged from git @ sha, and sync leaves it alone.
    let view: Value =
        serde_json::from_str(&get_text(&app, &root, "/api/v1/templates/webapp").await).unwrap();
    let mut body = view.clone();
    let edited = format!(
        "{}\n# edited in ctforge\n",
        body["scripts"][0]["content"].as_str().unwrap()
    );
    body["scripts"][0]["content"] = json!(edited);
    let r = app
        .client
        .put(format!("{}/api/v1/templates/webapp", app.address))
        .header("cookie", &root.cookie)
        .header("x-csrf-token", &root.csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let stored = app
        .state
        .store
        .get_template_by_name("webapp")
        .await
        .unwrap();
    assert!(stored.row.diverged);
    let third = repo.change_script("echo third");
    let r = root
        .post(
            &app.client,
            &app.address,
            "/api/v1/templates/sync",
            json!({}),
        )
        .await;
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["templates"][0]["status"], "diverged", "{report}");
    let edited_in_ctforge = |t: &ctforge::storage::model::TemplateRecord| {
        t.scripts
            .iter()
            .any(|s| s.content.contains("# edited in ctforge"))
    };
    let stored = app
        .state
        .store
        .get_template_by_name("webapp")
        .await
        .unwrap();
    assert!(
        edited_in_ctforge(&stored),
        "sync did not overwrite the edit"
    );
    let html = get_text(&app, &root, "/templates/webapp").await;
    assert!(
        html.contains(&format!(
            "Diverged from git <span class=\"mono\">{url} (main) @ {}",
            &second[..12]
        )),
        "{html}"
    );
    assert!(html.contains("Return to git"), "{html}");
    assert!(html.contains("/templates/webapp/reattach"), "{html}");

    // The way back: the edits are dropped and the branch's version (third commit) is taken.
    let (status, html) = post_form(&app, &root, "/templates/webapp/reattach", &[]).await;
    assert_eq!(status, 200, "{html}");
    let stored = app
        .state
        .store
        .get_template_by_name("webapp")
        .await
        .unwrap();
    assert!(!stored.row.diverged);
    assert!(!edited_in_ctforge(&stored));
    let conf = ctforge::templates::StoredConfig::parse("webapp", &stored.row.config_json).unwrap();
    assert_eq!(conf.git.unwrap().commit, third);
    assert!(
        stored
            .scripts
            .iter()
            .any(|s| s.content.contains("echo third"))
    );
    // Not diverged any more: a second reattach is a conflict (API).
    let r = root
        .post(
            &app.client,
            &app.address,
            "/api/v1/templates/webapp/reattach",
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 409);
}

fn keygen(dir: &Path) -> (String, String) {
    let key = dir.join("deploy");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "deploy", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fp = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&key)
        .output()
        .unwrap();
    let fp = String::from_utf8_lossy(&fp.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    (std::fs::read_to_string(&key).unwrap(), fp)
}

#[tokio::test]
async fn library_ssh_deploy_key_is_sealed_only_its_fingerprint_shown_and_host_key_pinned() {
    ctforge::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    let (private_key, fingerprint) = keygen(tmp.path());
    let key_file = tmp.path().join("deploy");
    // Nothing listens on port 1: the host key cannot be read, so nothing is fetched.
    let ssh_url = "ssh://git@127.0.0.1:1/srv/templates.git".to_owned();
    let other_url = "ssh://git@127.0.0.1:2/srv/other.git".to_owned();
    let sim = common::sim("", |c| c.with_nodes(1)).await;
    let cluster = common::sim_cluster(&sim);
    let (a, b) = (ssh_url.clone(), other_url.clone());
    let app = common::spawn_app_with("sqlite", move |config| {
        config.clusters = vec![cluster];
        let mut from_file = source(&a);
        from_file.deploy_key_file = Some(key_file);
        config.templates.git = vec![from_file, source(&b)];
        config.templates.git_sync_interval_secs = 0;
    })
    .await;
    let root =
        common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;

    // A sync imports the configured key (sealed) and stops before git: no host key.
    let r = root
        .post(
            &app.client,
            &app.address,
            "/api/v1/templates/sync",
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("cannot read the host key of 127.0.0.1:1"),
        "{warnings}"
    );
    assert!(!warnings.contains("PRIVATE KEY"), "{warnings}");
    let stored = app
        .state
        .store
        .get_git_key(&ssh_url)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.deploy_key_sealed.starts_with("v1:"),
        "sealed at rest"
    );
    assert!(!stored.deploy_key_sealed.contains("PRIVATE KEY"));
    assert_eq!(
        app.state
            .keyring
            .open(&stored.deploy_key_sealed)
            .unwrap()
            .expose(),
        private_key.trim()
    );
    assert_eq!(stored.key_fingerprint, fingerprint);
    assert!(
        !format!("{stored:?}").contains("v1:"),
        "Debug hides the sealed key"
    );

    // The API shows the fingerprint, never the key.
    let text = get_text(&app, &root, "/api/v1/template-sources").await;
    let sources: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        sources[0]["key_fingerprint"],
        fingerprint.as_str(),
        "{sources}"
    );
    assert_eq!(sources[0]["ssh"], true);
    assert_eq!(sources[1]["key_fingerprint"], Value::Null);
    assert!(
        !text.contains("PRIVATE KEY") && !text.contains("v1:"),
        "{text}"
    );

    // Given through the API for the other source, with a host key pin; audited without it.
    let put = |body: Value| {
        let (client, base, cookie, csrf) = (
            app.client.clone(),
            app.address.clone(),
            root.cookie.clone(),
            root.csrf.clone(),
        );
        async move {
            client
                .put(format!("{base}/api/v1/template-sources/key"))
                .header("cookie", cookie)
                .header("x-csrf-token", csrf)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = put(json!({ "url": other_url, "private_key": "not a key" })).await;
    assert_eq!(r.status(), 400);
    let r = put(json!({ "url": "ssh://git@elsewhere/x.git", "private_key": private_key })).await;
    assert_eq!(r.status(), 400, "only configured sources");
    let r = put(json!({
        "url": other_url,
        "private_key": private_key,
        "host_key": "SHA256:ow5kPoAmkyp1UETZeRHZfAPgUFAnUzJQKSnbTyvzDGM",
    }))
    .await;
    assert_eq!(r.status(), 200);
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["key_fingerprint"], fingerprint.as_str());
    assert_eq!(
        view["host_key"],
        "SHA256:ow5kPoAmkyp1UETZeRHZfAPgUFAnUzJQKSnbTyvzDGM"
    );
    let audit = app
        .state
        .store
        .list_audit(&Default::default())
        .await
        .unwrap();
    let entry = audit
        .iter()
        .find(|e| e.action == "template.source_key")
        .unwrap();
    assert!(!entry.detail_json.contains("PRIVATE KEY"), "{entry:?}");

    // The settings page shows fingerprints and a key form; the key never comes back.
    let html = get_text(&app, &root, "/settings/template-sources").await;
    assert!(html.contains(&fingerprint), "{html}");
    assert!(html.contains("not confirmed"), "{html}");
    assert!(!html.contains("PRIVATE KEY"), "{html}");

    // Forgetting the key.
    let r = app
        .client
        .delete(format!("{}/api/v1/template-sources/key", app.address))
        .query(&[("url", &other_url)])
        .header("cookie", &root.cookie)
        .header("x-csrf-token", &root.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(
        app.state
            .store
            .get_git_key(&other_url)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn library_sync_on_boot_configures_the_boot_unit_and_the_panel_shows_its_state() {
    ctforge::install_crypto_provider();
    let repo = Repo::new();
    let commit = repo.head();
    let sim = common::sim("", |c| c.with_nodes(1)).await;
    let cluster = common::sim_cluster(&sim);
    let url = repo.url();
    let configured = url.clone();
    let app = common::spawn_app_with("sqlite", move |config| {
        config.clusters = vec![cluster];
        config.templates.git = vec![source(&configured)];
        config.templates.git_sync_interval_secs = 0;
    })
    .await;
    let root =
        common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let r = root
        .post(
            &app.client,
            &app.address,
            "/api/v1/templates/sync",
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);

    // Sync on boot from the git template, one script disabled in the wizard's Scripts step.
    let r = root
        .post(
            &app.client,
            &app.address,
            "/api/v1/containers",
            json!({
                "template": "webapp", "hostname": "follows-git", "password": "hunter22",
                "sync_on_boot": true,
                "scripts": [
                    { "name": "10-credentials.sh", "enabled": true },
                    { "name": "20-start.sh", "enabled": false },
                ],
            }),
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    let vmid = u32::try_from(created["vmid"].as_u64().unwrap()).unwrap();
    let job = wait_job(&app, &root, created["job_id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");

    // The boot unit's configuration names the branch (the library's keys), what was applied
    // is the commit, and the disabled script stays disabled on boot.
    let env = in_ct(&sim, vmid, "cat /etc/config-manager/config.env");
    let q = ctforge_ssh::quote;
    assert!(
        env.contains(&format!("CONFIG_REPO_URL={}\n", q(&url))),
        "{env}"
    );
    assert!(env.contains("CONFIG_BRANCH=main\n"), "{env}");
    assert!(
        env.contains("CONFIG_PATH=library/webapp/container-configs\n"),
        "{env}"
    );
    let applied = in_ct(&sim, vmid, "cat /var/lib/ctforge/applied");
    assert_eq!(applied.trim(), format!("commit {commit}"));
    let skip = in_ct(&sim, vmid, "cat /var/lib/ctforge/manifest/skip-scripts");
    assert_eq!(skip.trim(), "20-start.sh");
    let manager = in_ct(&sim, vmid, "cat /usr/local/sbin/ctforge-apply");
    assert!(
        manager.contains("git_sync"),
        "the boot unit can follow the branch"
    );

    // Without sync on boot ctforge pushes what it knows: no repository in the configuration.
    let r = root
        .post(
            &app.client,
            &app.address,
            "/api/v1/containers",
            json!({ "template": "webapp", "hostname": "pushed", "password": "hunter22" }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let pushed: Value = r.json().await.unwrap();
    let job = wait_job(&app, &root, pushed["job_id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let pushed_vmid = u32::try_from(pushed["vmid"].as_u64().unwrap()).unwrap();
    let env = in_ct(&sim, pushed_vmid, "cat /etc/config-manager/config.env");
    assert!(!env.contains("CONFIG_REPO_URL"), "{env}");

    // A template that is not from git cannot sync on boot: the field says why.
    let stored = app
        .state
        .store
        .get_template_by_name("webapp")
        .await
        .unwrap();
    let mut custom = ctforge::templates::record_to_template(&stored).unwrap();
    custom.name = "local".to_owned();
    ctforge::templates::edit::create_custom(app.state.store.as_ref(), &custom)
        .await
        .unwrap();
    let r = root
        .post(
            &app.client,
            &app.address,
            "/api/v1/containers",
            json!({ "template": "local", "hostname": "nope", "password": "hunter22", "sync_on_boot": true }),
        )
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body.to_string().contains("sync_on_boot"), "{body}");

    // The boot unit ran into a conflict: monitoring reads it, the API and the page show it.
    in_ct(
        &sim,
        vmid,
        &format!(
            "mkdir -p /var/lib/ctforge /var/log/config-manager && \
             echo '1700000100 5' > /var/lib/ctforge/last-result && \
             echo /etc/motd > /var/lib/ctforge/conflicts && \
             echo 'commit {commit}' > /var/lib/ctforge/applied && \
             echo '[2023-11-14 22:15:00] [ERROR  ] conflict: /etc/motd was changed here and in the template' > /var/log/config-manager/sync.log"
        ),
    );
    let r = root
        .post(
            &app.client,
            &app.address,
            &format!("/api/v1/containers/{id}/services/refresh"),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let detail: Value =
        serde_json::from_str(&get_text(&app, &root, &format!("/api/v1/containers/{id}")).await)
            .unwrap();
    let cm = &detail["config_manager"];
    assert_eq!(cm["exit_code"], 5, "{detail}");
    assert_eq!(cm["outcome"], "conflict", "{detail}");
    assert_eq!(cm["conflicts"], json!(["/etc/motd"]), "{detail}");
    assert_eq!(cm["applied"], format!("commit {commit}"), "{detail}");
    assert_eq!(cm["last_run_ms"], 1_700_000_100_000_i64, "{detail}");
    assert!(
        cm["log_tail"].to_string().contains("conflict: /etc/motd"),
        "{detail}"
    );
    let html = get_text(&app, &root, &format!("/containers/{id}")).await;
    assert!(html.contains("id=\"config-manager\""), "{html}");
    assert!(html.contains("exit 5"), "{html}");
    assert!(html.contains("conflict, nothing applied"), "{html}");
    assert!(
        html.contains(&format!("git commit {}", &commit[..12])),
        "{html}"
    );
    assert!(html.contains("Log: last 1 lines"), "{html}");
}
