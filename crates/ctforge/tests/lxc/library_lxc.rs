//! The template library ctforge replaces, run unchanged on real LXC: the real `web3-dev`
//! template (read from `../shared/fixtures/original-templates`, never copied into the
//! repository) with its files, its two apt package lists and its scripts `00-pre-checks.sh`
//! and `01-setup-user.sh` (the others download from the internet and are disabled in the
//! create request, as a user would in the wizard's Scripts step). Its scripts call the
//! library's helpers (`log_info`, `log_warn`, `CONTAINER_USER`, …), which ctforge's script
//! runtime provides.

#![allow(clippy::unwrap_used)]

use crate::common;

use ctforge_ssh::{PctChannel, RemoteExec};

async fn sh(channel: &PctChannel, cmd: &str) -> (u32, String) {
    let mut ignore = |_: ctforge_ssh::Stream, _: &str| {};
    let out = channel.exec(cmd, &mut ignore).await.unwrap();
    (out.exit_code, out.stream_text(ctforge_ssh::Stream::Stdout))
}

/// The directory holding the library's templates (`CTFORGE_LIBRARY_TEMPLATES`, else
/// `../shared/fixtures/original-templates` next to the project), when it is there.
pub fn library_root() -> Option<std::path::PathBuf> {
    let root = std::env::var_os("CTFORGE_LIBRARY_TEMPLATES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/fixtures/original-templates")
        });
    root.join("web3-dev/template.conf")
        .is_file()
        .then_some(root)
}

const WEB3_SCRIPTS: [&str; 11] = [
    "00-pre-checks.sh",
    "01-setup-user.sh",
    "02-docker-install.sh",
    "03-nodejs-setup.sh",
    "04-web3-tools.sh",
    "05-shell-setup.sh",
    "06-dev-tools.sh",
    "50-vscode-server.sh",
    "51-filebrowser.sh",
    "52-opencode.sh",
    "99-post-setup.sh",
];

#[tokio::test]
async fn the_real_web3_dev_template_runs_unchanged_on_lxc() {
    if common::lxc::unavailable("the_real_web3_dev_template_runs_unchanged_on_lxc") {
        return;
    }
    let Some(root) = library_root() else {
        println!(
            "SKIPPED the_real_web3_dev_template_runs_unchanged_on_lxc: no web3-dev under ../shared/fixtures/original-templates (set CTFORGE_LIBRARY_TEMPLATES)"
        );
        return;
    };
    let scripts: Vec<serde_json::Value> = WEB3_SCRIPTS
        .iter()
        .map(|s| serde_json::json!({ "name": s, "enabled": s.starts_with("00-") || s.starts_with("01-") }))
        .collect();
    let body = serde_json::json!({
        "template": "web3-dev", "hostname": "w3", "vmid": 4321, "memory": 1024, "disk": 8,
        "keyctl": false, "fuse": false, "scripts": scripts,
    });
    let (p, job) = common::lxc::provision_from(root, body, |_| {}).await;
    let lines: Vec<String> = p
        .app
        .state
        .store
        .job_events_after(p.job_id, 0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "log")
        .map(|e| e.data)
        .collect();
    let text = lines.join("\n");
    assert_eq!(job["state"], "succeeded", "{job}\n{text}");
    let record = p.app.state.store.get_container(p.id).await.unwrap();
    assert_eq!(record.status, "ready");

    // The scripts' helper lines, with their levels.
    let warn = lines
        .iter()
        .find(|l| l.contains("below recommended"))
        .unwrap_or_else(|| panic!("no log_warn line in the job log:\n{text}"));
    assert!(warn.contains("[WARNING]"), "{warn}");
    assert_eq!(ctforge::web::jobs::log_level(warn), "log-warn", "{warn}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("[INFO   ] === Running Pre-Flight Checks ===")),
        "{text}"
    );
    assert!(
        text.contains("CONFIG_MANAGER_FIRST_RUN: true") && text.contains("CONTAINER_OS: debian"),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("00-pre-checks.sh: done, ") && !l.contains("done, 0 warning")),
        "the step summary counts the warnings:\n{text}"
    );
    assert!(text.contains("=== User setup complete ==="), "{text}");

    // Inside the container.
    let ct = p.channel().await;
    assert_eq!(
        sh(&ct, "id -u coder").await.1.trim(),
        "1000",
        "coder exists"
    );
    assert_eq!(
        sh(&ct, "test -f /etc/profile.d/config-manager-status.sh")
            .await
            .0,
        0,
        "replace-policy file deployed"
    );
    assert_eq!(sh(&ct, "test -f /home/coder/.config/aliases.sh").await.0, 0);
    for pkg in ["jq", "tmux", "sudo", "curl"] {
        assert_eq!(
            sh(&ct, &format!("dpkg -s {pkg} >/dev/null")).await.0,
            0,
            "{pkg} installed"
        );
    }
    assert_eq!(
        sh(&ct, "test -f /var/log/config-manager/.first-run-complete")
            .await
            .0,
        0,
        "first run marked complete"
    );
    assert_eq!(
        sh(&ct, "bash -c '. /usr/local/lib/ctforge/runtime.sh; echo $CONFIG_MANAGER_FIRST_RUN $CONTAINER_USER'")
            .await
            .1
            .trim(),
        "false coder",
        "later runs are not the first, and the user is detected"
    );
}

/// The fixture `tests/fixtures/library-templates/runtime-demo` calls every function and reads
/// every variable of the runtime: the configured user (`TEMPLATE_CONTAINER_USER`) is
/// `CONTAINER_USER`, `ensure_installed` installs a Debian package, `run_as_user` runs as that
/// user, `generate_password` + `save_credential` leave a credential in the library's file,
/// which ctforge stores sealed and links to the service its name names.
#[tokio::test]
async fn every_runtime_helper_works_on_lxc() {
    if common::lxc::unavailable("every_runtime_helper_works_on_lxc") {
        return;
    }
    let (p, job) =
        common::lxc::provision("library-templates", "runtime-demo", "rt-demo", 4322, |_| {}).await;
    let text = p
        .app
        .state
        .store
        .job_events_after(p.job_id, 0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "log")
        .map(|e| e.data)
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(job["state"], "succeeded", "{job}\n{text}");
    for expected in [
        "os=debian version=12 user=dev pkg=apt",
        "manager=ctforge-runtime-1 root=/var/lib/ctforge log=/var/log/config-manager/sync.log first=true",
        "[WARNING] demo warning from a template script",
        "10-runtime.sh: done, 1 warning(s), 1 error line(s)",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    let ct = p.channel().await;
    assert_eq!(
        sh(&ct, "cat /home/dev/whoami.txt").await.1,
        "dev /home/dev\n",
        "run_as_user"
    );
    assert_eq!(
        sh(&ct, "dpkg -s tree >/dev/null").await.0,
        0,
        "ensure_installed"
    );
    assert_eq!(sh(&ct, "cat /var/lib/runtime-demo/runs").await.1, "true\n");
    assert_eq!(
        sh(&ct, "stat -c %a /etc/infrahaus/credentials")
            .await
            .1
            .trim(),
        "600"
    );
    let (_, file) = sh(&ct, "grep ^DEMO_APP_PASSWORD= /etc/infrahaus/credentials").await;
    let password = file
        .trim()
        .trim_start_matches("DEMO_APP_PASSWORD=")
        .to_owned();
    assert_eq!(password.len(), 20, "{file}");

    // Stored sealed, and linked to its service.
    let credentials = p.app.state.store.list_credentials(p.id).await.unwrap();
    let stored = credentials
        .iter()
        .find(|c| c.name == "DEMO_APP_PASSWORD")
        .unwrap_or_else(|| panic!("{credentials:?}"));
    assert!(!stored.value_sealed.contains(&password), "sealed at rest");
    assert_eq!(
        p.app
            .state
            .keyring
            .open(&stored.value_sealed)
            .unwrap()
            .expose(),
        password
    );
    let services: serde_json::Value = p
        .app
        .client
        .get(format!(
            "{}/api/v1/containers/{}/services",
            p.app.address, p.id
        ))
        .header("cookie", &p.session.cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        services["credential_services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["credential"] == "DEMO_APP_PASSWORD" && l["unit"] == "demo-app.service"),
        "{services}"
    );

    // The config-manager: on boot it re-applies the template, no longer a first run.
    assert_eq!(sh(&ct, "test -s /var/lib/ctforge/checksums").await.0, 0);
    let r = p
        .session
        .post(
            &p.app.client,
            &p.app.address,
            &format!("/api/v1/containers/{}/reboot", p.id),
            serde_json::json!({}),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let started = std::time::Instant::now();
    let result = loop {
        let mut ignore = |_: ctforge_ssh::Stream, _: &str| {};
        if let Ok(out) = p
            .channel()
            .await
            .exec("cat /var/lib/ctforge/last-result", &mut ignore)
            .await
            && out.exit_code == 0
        {
            break out.stream_text(ctforge_ssh::Stream::Stdout);
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(300),
            "the config-manager did not run after the reboot"
        );
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    };
    let ct = p.channel().await;
    let (_, log) = sh(&ct, "cat /var/log/config-manager/sync.log").await;
    assert!(result.trim().ends_with(" 0"), "{result}\n{log}");
    assert_eq!(
        sh(&ct, "cat /var/lib/runtime-demo/runs").await.1,
        "true\nfalse\n",
        "CONFIG_MANAGER_FIRST_RUN=false on the boot run\n{log}"
    );
    assert!(log.contains("running 10-runtime.sh"), "{log}");

    // Another run holding the lock: exit 2.
    let (_, locked) = sh(
        &ct,
        "flock /run/config-manager.lock sleep 3 & sleep 0.5; /usr/local/sbin/ctforge-apply >/dev/null; echo $?; wait",
    )
    .await;
    assert_eq!(locked.trim(), "2");

    // A managed file changed here and in the template: conflict, exit 5, nothing applied.
    sh(&ct, "echo 'local edit' >> /etc/runtime-demo/demo.conf").await;
    sh(
        &ct,
        &format!(
            "echo 'managed by the template, version 2' > {}",
            ctforge_ssh::quote(&ctforge::guest::commands::staged_path("demo.conf"))
        ),
    )
    .await;
    let (_, code) = sh(&ct, "/usr/local/sbin/ctforge-apply >/dev/null; echo $?").await;
    assert_eq!(code.trim(), "5");
    assert_eq!(
        sh(&ct, "cat /etc/runtime-demo/demo.conf").await.1,
        "managed by the template, version 1\nlocal edit\n",
        "nothing applied"
    );
    assert_eq!(
        sh(&ct, "cat /var/lib/runtime-demo/runs").await.1,
        "true\nfalse\n",
        "no script ran"
    );
    assert_eq!(
        sh(&ct, "cat /var/lib/ctforge/conflicts").await.1,
        "/etc/runtime-demo/demo.conf\n"
    );
    assert!(
        sh(&ct, "cat /var/lib/ctforge/last-result")
            .await
            .1
            .trim()
            .ends_with(" 5"),
        "the result is recorded"
    );
}

/// `git args…` in `dir` for the test's repository (no shell).
fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The bare repository `tmp/templates.git` as a tar archive, unpacked into the CT at
/// `/srv/templates.git` (the CT's own copy of "the git server").
async fn serve_repo(ct: &PctChannel, tmp: &std::path::Path) {
    let tar = std::process::Command::new("tar")
        .args(["-C"])
        .arg(tmp)
        .args(["-cf", "-", "templates.git"])
        .output()
        .unwrap();
    assert!(tar.status.success());
    ct.push(&tar.stdout, "/tmp/templates.tar", Some(0o600), None)
        .await
        .unwrap();
    let (code, _) = sh(
        ct,
        "rm -rf /srv/templates.git && mkdir -p /srv && tar -C /srv -xf /tmp/templates.tar",
    )
    .await;
    assert_eq!(code, 0);
}

#[tokio::test]
async fn config_manager_follows_the_git_branch_on_lxc() {
    if common::lxc::unavailable("config_manager_follows_the_git_branch_on_lxc") {
        return;
    }
    let (p, job) =
        common::lxc::provision("library-templates", "runtime-demo", "rt-git", 4323, |_| {}).await;
    assert_eq!(job["state"], "succeeded", "{job}\n{}", p.events().await);
    let ct = p.channel().await;
    // What provisioning applied: the template version ctforge pushed.
    let (_, applied) = sh(&ct, "cat /var/lib/ctforge/applied").await;
    assert!(applied.starts_with("template runtime-demo "), "{applied}");

    // The template in a git repository the CT can reach; the boot unit follows its branch
    // (the keys the wizard's "sync on boot" writes).
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    git(
        tmp.path(),
        &["init", "--bare", "--initial-branch=main", "templates.git"],
    );
    git(tmp.path(), &["clone", "templates.git", "work"]);
    git(&work, &["checkout", "-B", "main"]);
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/library-templates/runtime-demo");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&fixture)
        .arg(work.join("runtime-demo"))
        .status()
        .unwrap();
    assert!(copied.success());
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-m", "runtime-demo"]);
    git(&work, &["push", "origin", "main"]);
    let first = git(&work, &["rev-parse", "HEAD"]);
    serve_repo(&ct, tmp.path()).await;
    let env = ctforge::guest::commands::config_env(
        Some("dev"),
        Some((
            "file:///srv/templates.git",
            "main",
            "runtime-demo/container-configs",
        )),
    );
    ct.push(
        env.as_bytes(),
        "/etc/config-manager/config.env",
        Some(0o600),
        None,
    )
    .await
    .unwrap();
    let (_, code) = sh(
        &ct,
        "/usr/local/sbin/ctforge-apply >/dev/null 2>&1; echo $?",
    )
    .await;
    let (_, log) = sh(&ct, "cat /var/log/config-manager/sync.log").await;
    assert_eq!(code.trim(), "0", "{log}");
    assert!(log.contains(&format!("at commit {first}")), "{log}");
    assert_eq!(
        sh(&ct, "cat /var/lib/ctforge/applied").await.1.trim(),
        format!("commit {first}")
    );

    // A new commit changing the managed file: the next run fetches and applies it itself.
    std::fs::write(
        work.join("runtime-demo/container-configs/files/demo.conf"),
        "managed by the template, version 2 (from git)\n",
    )
    .unwrap();
    git(&work, &["commit", "-am", "demo.conf v2"]);
    git(&work, &["push", "origin", "main"]);
    let second = git(&work, &["rev-parse", "HEAD"]);
    serve_repo(&ct, tmp.path()).await;
    let (_, code) = sh(
        &ct,
        "/usr/local/sbin/ctforge-apply >/dev/null 2>&1; echo $?",
    )
    .await;
    let (_, log) = sh(&ct, "cat /var/log/config-manager/sync.log").await;
    assert_eq!(code.trim(), "0", "{log}");
    assert_eq!(
        sh(&ct, "cat /etc/runtime-demo/demo.conf").await.1,
        "managed by the template, version 2 (from git)\n",
        "{log}"
    );

    // The source gone with a cached copy: applied from the cache, still exit 0.
    sh(&ct, "rm -rf /srv/templates.git").await;
    let (_, code) = sh(
        &ct,
        "/usr/local/sbin/ctforge-apply >/dev/null 2>&1; echo $?",
    )
    .await;
    let (_, log) = sh(&ct, "cat /var/log/config-manager/sync.log").await;
    assert_eq!(code.trim(), "0", "{log}");
    assert!(log.contains("applying the cached copy"), "{log}");

    // Monitoring reads the state: the panel's data names the applied commit.
    let r = p
        .session
        .post(
            &p.app.client,
            &p.app.address,
            &format!("/api/v1/containers/{}/services/refresh", p.id),
            serde_json::json!({}),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let detail: serde_json::Value = p
        .app
        .client
        .get(format!("{}/api/v1/containers/{}", p.app.address, p.id))
        .header("cookie", &p.session.cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cm = &detail["config_manager"];
    assert_eq!(cm["applied"], format!("commit {second}"), "{detail}");
    assert_eq!(cm["exit_code"], 0, "{detail}");
    assert_eq!(cm["outcome"], "ok", "{detail}");
    assert!(
        cm["log_tail"]
            .to_string()
            .contains("applying the cached copy"),
        "{detail}"
    );
}
