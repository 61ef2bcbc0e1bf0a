//! Automation against the simulator: presets (API, ownership), `count` (hostname pattern,
//! placement, VMIDs reserved while another creation runs, one batch job with per-container
//! results), the fleet file (`ctforge apply`: plan, apply, no changes, `~` changes, template
//! versions, `--prune` removing only the fleet's containers, exit codes), and the CLI's
//! completions, man page and profile file.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common;

struct Fixture {
    app: common::TestApp,
    _sim: ctforge_pve_sim::SimHandle,
    token: String,
    templates: tempfile::TempDir,
}

/// A simulator with three nodes, the app, the `webapp` fixture (a copy this test may change)
/// discovered, and root@pam's API token.
async fn fixture() -> Fixture {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| c.with_nodes(3)).await;
    let cluster = common::sim_cluster(&sim);
    let templates = tempfile::tempdir().unwrap();
    common::copy_dir(
        &PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/templates/webapp"
        )),
        &templates.path().join("webapp"),
    );
    let root = templates.path().to_owned();
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = vec![root];
    })
    .await;
    let (_, token) = ctforge::tokens::create(&app.state, "root@pam", "auto", "127.0.0.1")
        .await
        .unwrap();
    let f = Fixture {
        app,
        _sim: sim,
        token,
        templates,
    };
    let (status, body) = f
        .call("POST", "/api/v1/templates/discover", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    f
}

impl Fixture {
    async fn call(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .app
            .client
            .request(method.clone(), format!("{}{path}", self.app.address))
            .bearer_auth(&self.token);
        if method != reqwest::Method::GET {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn wait_job(&self, id: i64) -> Value {
        loop {
            let (status, job) = self
                .call("GET", &format!("/api/v1/jobs/{id}"), json!({}))
                .await;
            assert_eq!(status, 200, "{job}");
            if matches!(
                job["state"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            ) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs the real binary with this app's URL and token.
    async fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ctforge"));
        cmd.args(args)
            .env("CTFORGE_URL", &self.app.address)
            .env("CTFORGE_TOKEN", &self.token)
            .env("CTFORGE_CLI_CONFIG", "/nonexistent/cli.toml")
            .env_remove("CTFORGE_DATABASE_URL")
            .env_remove("CTFORGE_PROFILE");
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn containers(&self) -> Vec<Value> {
        let (status, listing) = self
            .call("GET", "/api/v1/containers?per_page=1000", json!({}))
            .await;
        assert_eq!(status, 200, "{listing}");
        listing["items"].as_array().unwrap().clone()
    }
}

#[tokio::test]
async fn presets_are_validated_owned_and_audited() {
    let f = fixture().await;
    let (status, body) = f
        .call(
            "POST",
            "/api/v1/presets",
            json!({"name": "web-small", "template": "webapp", "values": {"memory": 512, "cores": 1, "hostname": "web-{n}"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["owner"], "root@pam");
    // A password is never stored, unknown fields and templates are named.
    for (values, field) in [
        (json!({"password": "x"}), "values.password"),
        (json!({"memroy": 1}), "values"),
        (json!({"placement": "random"}), "values.placement"),
    ] {
        let (status, body) = f
            .call(
                "POST",
                "/api/v1/presets",
                json!({"name": "bad", "template": "webapp", "values": values}),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains(field), "{field}: {body}");
    }
    let (status, body) = f
        .call(
            "POST",
            "/api/v1/presets",
            json!({"name": "nope", "template": "missing", "values": {}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = f
        .call(
            "POST",
            "/api/v1/presets",
            json!({"name": "web-small", "template": "webapp", "values": {}}),
        )
        .await;
    assert_eq!(status, 400, "a taken name");
    // Another user neither sees nor changes it.
    let other = ctforge::auth::CurrentUser {
        username: "alice@pve".into(),
        method: ctforge::auth::AuthMethod::ApiToken { token_id: 0 },
        ticket: None,
        token_caps: None,
        roles: ctforge::roles::Roles::default(),
    };
    assert!(
        ctforge::presets::list(&f.app.state, &other)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        ctforge::presets::get(&f.app.state, &other, "web-small").await,
        Err(ctforge::error::AppError::NotFound(_))
    ));
    let (status, body) = f
        .call(
            "PUT",
            "/api/v1/presets/web-small",
            json!({"name": "web-small", "template": "webapp", "values": {"memory": 1024}, "shared": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["values"]["memory"], 1024);
    assert_eq!(body["shared"], true);
    assert!(
        ctforge::presets::get(&f.app.state, &other, "web-small")
            .await
            .is_ok(),
        "shared presets are visible to everyone"
    );
    let (status, _) = f
        .call("DELETE", "/api/v1/presets/web-small", json!({}))
        .await;
    assert_eq!(status, 204);
    let audit = f
        .app
        .state
        .store
        .list_audit(&ctforge::storage::model::AuditFilter::default())
        .await
        .unwrap();
    for action in ["preset.create", "preset.update", "preset.delete"] {
        assert!(audit.iter().any(|a| a.action == action), "{action} audited");
    }
}

#[tokio::test]
async fn count_three_from_a_preset_round_robin_with_a_concurrent_creation() {
    let f = fixture().await;
    let (status, body) = f
        .call(
            "POST",
            "/api/v1/presets",
            json!({"name": "web-small", "template": "webapp", "values": {"memory": 512, "cores": 1, "tags": ["acc"], "placement": "round-robin"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // Another creation at the same moment: no VMID may be shared.
    let (batch, single) = tokio::join!(
        f.call(
            "POST",
            "/api/v1/containers",
            json!({"preset": "web-small", "count": 3, "hostname": "web-{n}", "password": "secret99"}),
        ),
        f.call(
            "POST",
            "/api/v1/containers",
            json!({"template": "webapp", "hostname": "solo", "password": "secret99"}),
        ),
    );
    assert_eq!(batch.0, 202, "{}", batch.1);
    assert_eq!(single.0, 202, "{}", single.1);
    let items = batch.1["items"].as_array().unwrap().clone();
    let hostnames: Vec<&str> = items
        .iter()
        .map(|i| i["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(hostnames, ["web-1", "web-2", "web-3"]);
    let nodes: Vec<&str> = items.iter().map(|i| i["node"].as_str().unwrap()).collect();
    assert_eq!(
        nodes,
        ["pve1", "pve2", "pve3"],
        "round-robin over the nodes"
    );
    let mut vmids: Vec<u64> = items.iter().map(|i| i["vmid"].as_u64().unwrap()).collect();
    vmids.push(single.1["vmid"].as_u64().unwrap());
    let distinct: std::collections::BTreeSet<u64> = vmids.iter().copied().collect();
    assert_eq!(distinct.len(), 4, "VMIDs collide: {vmids:?}");

    let job = f.wait_job(batch.1["job_id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let results = job["result"]["results"].as_object().unwrap();
    assert_eq!(results.len(), 3, "{job}");
    assert!(results.values().all(|r| r["ok"] == true), "{job}");
    let listed = f.containers().await;
    for (h, node) in [("web-1", "pve1"), ("web-2", "pve2"), ("web-3", "pve3")] {
        let row = listed
            .iter()
            .find(|r| r["hostname"] == h)
            .unwrap_or_else(|| panic!("{h} listed"));
        assert_eq!(row["node"], node, "{row}");
        assert_eq!(row["status"], "running", "{row}");
    }
    // The preset's memory: Proxmox has what the preset said.
    let cluster = f.app.state.store.get_cluster_by_name("sim").await.unwrap();
    let client = f.app.state.pve.service(&cluster).unwrap();
    let config = client
        .lxc_config_get("pve2", u32::try_from(vmids[1]).unwrap(), false)
        .await
        .unwrap();
    assert_eq!(config.memory, Some(512));

    // A pattern is required for several, and counts are bounded.
    let (status, body) = f
        .call(
            "POST",
            "/api/v1/containers",
            json!({"preset": "web-small", "count": 2, "hostname": "fixed"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = f
        .call(
            "POST",
            "/api/v1/containers",
            json!({"preset": "web-small", "count": 0, "hostname": "w-{n}"}),
        )
        .await;
    assert_eq!(status, 400);
    // The next batch continues the numbering.
    let (status, body) = f
        .call(
            "POST",
            "/api/v1/containers",
            json!({"preset": "web-small", "count": 1, "hostname": "web-{n}", "placement": "least-loaded", "password": "secret99"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["items"][0]["hostname"], "web-4");

    // The CLI: a preset plus an override, planned then created.
    let (code, out, err) = f
        .cli(&[
            "ct",
            "create",
            "--preset",
            "web-small",
            "--hostname",
            "web-7",
            "--plan",
        ])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("hostname=web-7") && out.contains("memory=512"),
        "{out}"
    );
    let (code, out, err) = f
        .cli(&[
            "ct",
            "create",
            "--preset",
            "web-small",
            "--hostname",
            "web-7",
        ])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("queued as job"), "{out}");
    let (code, out, err) = f
        .cli(&[
            "ct",
            "create",
            "--preset",
            "web-small",
            "--count",
            "2",
            "--hostname",
            "cli-{n}",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let batch: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(batch["items"].as_array().unwrap().len(), 2, "{batch}");
}

#[tokio::test]
async fn fleet_apply_converges_changes_and_prunes_with_exit_codes() {
    let f = fixture().await;
    let (status, body) = f
        .call(
            "POST",
            "/api/v1/presets",
            json!({"name": "web-small", "template": "webapp", "values": {"memory": 512, "cores": 1, "password": "x"}}),
        )
        .await;
    assert_eq!(status, 400, "no password in presets: {body}");
    let (status, body) = f
        .call(
            "POST",
            "/api/v1/presets",
            json!({"name": "web-small", "template": "webapp", "values": {"memory": 512, "cores": 1, "ssh_public_keys": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q test"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // A container ctforge made outside the fleet: prune never touches it.
    let (status, other) = f
        .call(
            "POST",
            "/api/v1/containers",
            json!({"template": "webapp", "hostname": "outsider", "password": "secret99"}),
        )
        .await;
    assert_eq!(status, 202, "{other}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.toml");
    let path = file.to_str().unwrap().to_owned();
    let write = |memory: u32, with_first: bool| {
        let mut text = String::new();
        if with_first {
            text.push_str("[[guest]]\nname = \"api-1\"\npreset = \"web-small\"\n");
        }
        text.push_str(&format!(
            "[[guest]]\nname = \"api-2\"\npreset = \"web-small\"\nmemory = {memory}\ntags = [\"web\"]\n"
        ));
        std::fs::write(&file, text).unwrap();
    };
    write(768, true);

    let (code, out, err) = f.cli(&["apply", &path, "--plan-only"]).await;
    assert_eq!(code, 2, "plan with changes exits 2: {out}{err}");
    assert!(
        out.contains("  + api-1") && out.contains("  + api-2"),
        "{out}"
    );
    assert!(
        out.contains("Plan: 2 to create, 0 to change, 0 to remove"),
        "{out}"
    );

    let (code, out, err) = f.cli(&["apply", &path]).await;
    assert_eq!(code, 2, "first apply: {out}{err}");
    for name in ["api-1", "api-2"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("  + {name} (")) && l.contains("): created (job ")),
            "a result line per created guest: {out}"
        );
    }
    assert!(
        out.contains("Apply complete: 2 created, 0 changed, 0 removed."),
        "{out}"
    );

    let (code, out, err) = f.cli(&["apply", &path]).await;
    assert_eq!(code, 0, "second apply: {out}{err}");
    assert!(out.contains("No changes."), "{out}");

    // Memory of one guest, and a new template version for both.
    write(1024, true);
    let script = f.templates.path().join("webapp/container-configs/scripts");
    let first = std::fs::read_dir(&script)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let mut content = std::fs::read_to_string(&first).unwrap();
    content.push_str("\n# v2\n");
    std::fs::write(&first, content).unwrap();
    let (status, body) = f
        .call("POST", "/api/v1/templates/discover", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");

    let (code, out, err) = f.cli(&["apply", &path, "--plan-only"]).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("  ~ api-1") && out.contains("  ~ api-2"),
        "{out}"
    );
    assert!(out.contains("memory: 768 → 1024"), "{out}");
    assert!(out.contains("(re-apply)"), "{out}");
    assert!(
        out.contains("Plan: 0 to create, 2 to change, 0 to remove"),
        "{out}"
    );

    let (code, out, err) = f.cli(&["apply", &path, "--output", "json"]).await;
    assert_eq!(code, 2, "{out}{err}");
    let applied: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(applied["plan"]["summary"]["update"], 2, "{applied}");
    assert_eq!(applied["job"]["state"], "succeeded", "{applied}");
    // One job did it all: its items are the two `~` lines, each with what it changed.
    assert_eq!(applied["job"]["kind"], "fleet_apply", "{applied}");
    let items = applied["result"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{applied}");
    let item = |name: &str| items.iter().find(|i| i["name"] == name).unwrap().clone();
    assert_eq!(item("api-2")["state"], "succeeded", "{applied}");
    let api2_message = item("api-2")["message"].as_str().unwrap().to_owned();
    assert!(
        api2_message.contains("memory 768 → 1024") && api2_message.contains("applied"),
        "{api2_message}"
    );
    let api1_message = item("api-1")["message"].as_str().unwrap().to_owned();
    assert!(
        !api1_message.contains("memory") && api1_message.contains("template webapp"),
        "{api1_message}"
    );
    let (status, jobs) = f.call("GET", "/api/v1/jobs", json!({})).await;
    assert_eq!(status, 200, "{jobs}");
    let kinds: Vec<&str> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap())
        .collect();
    assert!(
        !kinds
            .iter()
            .any(|k| matches!(*k, "reapply" | "bulk_action" | "create_batch")),
        "no job besides the fleet's and the creations: {kinds:?}"
    );
    let ids: std::collections::BTreeMap<String, u64> = f
        .containers()
        .await
        .iter()
        .map(|r| {
            (
                r["hostname"].as_str().unwrap().to_owned(),
                r["vmid"].as_u64().unwrap(),
            )
        })
        .collect();
    let cluster = f.app.state.store.get_cluster_by_name("sim").await.unwrap();
    let client = f.app.state.pve.service(&cluster).unwrap();
    let listed = f.containers().await;
    let node = |h: &str| {
        listed.iter().find(|r| r["hostname"] == h).unwrap()["node"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mem = |cfg: ctforge_pve::types::LxcConfig| cfg.memory;
    let api2 = client
        .lxc_config_get(&node("api-2"), u32::try_from(ids["api-2"]).unwrap(), false)
        .await
        .unwrap();
    assert_eq!(mem(api2), Some(1024), "the change was applied");
    let api1 = client
        .lxc_config_get(&node("api-1"), u32::try_from(ids["api-1"]).unwrap(), false)
        .await
        .unwrap();
    assert_eq!(mem(api1), Some(512), "only the changed guest was touched");

    // Both were re-applied with the new version: the changed script ran again, and drift
    // shows nothing newer.
    for name in ["api-1", "api-2"] {
        let id = listed.iter().find(|r| r["hostname"] == name).unwrap()["id"].clone();
        let (status, drift) = f
            .call("GET", &format!("/api/v1/containers/{id}/drift"), json!({}))
            .await;
        assert_eq!(status, 200, "{drift}");
        assert_eq!(drift["newer_template"], false, "{name}: {drift}");
        assert_eq!(drift["scripts"], json!([]), "{name}: {drift}");
    }
    // Memory and template versions converged.
    let (code, out, err) = f.cli(&["apply", &path]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("No changes."), "{out}");

    // Prune removes only what the fleet made and the file dropped.
    write(1024, false);
    let (code, out, err) = f.cli(&["apply", &path]).await;
    assert_eq!(code, 0, "without --prune nothing is removed: {out}{err}");
    let (code, out, err) = f.cli(&["apply", &path, "--prune"]).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("  - api-1 (") && l.contains("): removed")),
        "{out}"
    );
    assert!(!out.contains("outsider"), "{out}");
    let names: Vec<String> = f
        .containers()
        .await
        .iter()
        .map(|r| r["hostname"].as_str().unwrap().to_owned())
        .collect();
    assert!(!names.contains(&"api-1".to_owned()), "{names:?}");
    assert!(names.contains(&"api-2".to_owned()), "{names:?}");
    assert!(names.contains(&"outsider".to_owned()), "{names:?}");

    // A broken file is an error (exit 1).
    std::fs::write(&file, "[[guests]]\nname = 1\n").unwrap();
    let (code, _, err) = f.cli(&["apply", &path]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("unknown key"), "{err}");
}

#[tokio::test]
async fn cli_completions_man_page_and_profile_file() {
    let f = fixture().await;
    let (code, out, err) = f.cli(&["completions", "bash"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ctforge") && out.contains("presets"),
        "bash completion"
    );
    let (code, out, _) = f.cli(&["completions", "zsh"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("#compdef ctforge"));
    let (code, out, err) = f.cli(&["man"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(".TH ctforge") && out.contains("apply"),
        "{out}"
    );
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = f.cli(&["man", "--dir", dir.path().to_str().unwrap()]).await;
    assert_eq!(code, 0, "{err}");
    assert!(dir.path().join("ctforge.1").exists());
    assert!(dir.path().join("ctforge-apply.1").exists());

    // The profile file gives URL and token when neither flags nor environment do.
    let profile = dir.path().join("cli.toml");
    std::fs::write(
        &profile,
        format!(
            "[profiles.lab]\nurl = \"{}\"\ntoken = \"{}\"\n",
            f.app.address, f.token
        ),
    )
    .unwrap();
    let run = move |args: Vec<String>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ctforge"));
        cmd.args(args)
            .env("CTFORGE_CLI_CONFIG", &profile)
            .env_remove("CTFORGE_URL")
            .env_remove("CTFORGE_TOKEN")
            .env_remove("CTFORGE_DATABASE_URL");
        cmd.output().unwrap()
    };
    let out = tokio::task::spawn_blocking(move || {
        run(["presets", "--profile", "lab", "--output", "json", "list"]
            .map(String::from)
            .to_vec())
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(listed["presets"].is_array(), "{listed}");

    // Every API family has its command.
    for args in [
        vec!["jobs", "list"],
        vec!["templates", "remote", "list"],
        vec!["clusters", "list"],
        vec!["tokens", "list"],
        vec!["api", "GET", "/api/v1/auth/me"],
    ] {
        let (code, out, err) = f.cli(&args).await;
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    }
}

#[tokio::test]
async fn fleet_counts_place_round_robin_and_converge() {
    let f = fixture().await;
    let (status, body) = f
        .call(
            "POST",
            "/api/v1/presets",
            json!({"name": "small", "template": "webapp", "values": {"memory": 256}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let fleet = json!({"guests": [{"name": "rr-{n}", "count": 3, "preset": "small", "placement": "round-robin"}]});
    let (status, applied) = f.call("POST", "/api/v1/fleet/apply", fleet.clone()).await;
    assert_eq!(status, 202, "{applied}");
    assert_eq!(applied["applied"], true);
    let created = applied["created"].as_array().unwrap();
    let placed: Vec<(&str, &str)> = created
        .iter()
        .map(|c| (c["hostname"].as_str().unwrap(), c["node"].as_str().unwrap()))
        .collect();
    assert_eq!(
        placed,
        [("rr-1", "pve1"), ("rr-2", "pve2"), ("rr-3", "pve3")]
    );
    let job = f.wait_job(applied["job_id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["succeeded"], 3, "{job}");
    let (status, plan) = f.call("POST", "/api/v1/fleet/plan", fleet.clone()).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["summary"]["unchanged"], 3, "{plan}");
    assert_eq!(plan["summary"]["create"], 0, "{plan}");
    // Applying it again queues nothing.
    let (status, again) = f.call("POST", "/api/v1/fleet/apply", fleet).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["applied"], false, "{again}");
    assert_eq!(again["job_id"], Value::Null, "{again}");
    // A name without {n} cannot take a count above one; unknown fields are named.
    let (status, body) = f
        .call(
            "POST",
            "/api/v1/fleet/plan",
            json!({"guests": [{"name": "one", "count": 2, "preset": "small"}]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = f
        .call(
            "POST",
            "/api/v1/fleet/plan",
            json!({"guests": [{"name": "one", "preset": "small", "memroy": 1}]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("memroy"), "{body}");
}

#[tokio::test]
async fn fleet_apply_is_one_job_whose_failed_item_exits_1_and_retries_alone() {
    let f = fixture().await;
    // A second template whose last script fails (until it is fixed below).
    let broken = f.templates.path().join("broken");
    common::copy_dir(&f.templates.path().join("webapp"), &broken);
    let conf = broken.join("template.conf");
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("Web app", "Broken app");
    std::fs::write(&conf, text).unwrap();
    let failing = broken.join("container-configs/scripts/90-fail.sh");
    std::fs::write(&failing, "#!/bin/sh\necho 'fleet-test: boom' >&2\nexit 3\n").unwrap();
    let (status, body) = f
        .call("POST", "/api/v1/templates/discover", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.toml");
    let path = file.to_str().unwrap().to_owned();
    std::fs::write(
        &file,
        "[[guest]]\nname = \"good-1\"\ntemplate = \"webapp\"\n",
    )
    .unwrap();
    let (code, out, err) = f.cli(&["apply", &path]).await;
    assert_eq!(code, 2, "{out}{err}");
    // One job with two items: a change that works and a creation that fails.
    std::fs::write(
        &file,
        "[[guest]]\nname = \"good-1\"\ntemplate = \"webapp\"\nmemory = 768\n[[guest]]\nname = \"bad-1\"\ntemplate = \"broken\"\n",
    )
    .unwrap();
    let (code, out, err) = f.cli(&["apply", &path]).await;
    assert_eq!(code, 1, "a failed item makes the apply fail: {out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("  ~ good-1 (") && l.contains("): memory 512 → 768")),
        "{out}"
    );
    let bad_line = out
        .lines()
        .find(|l| l.starts_with("  + bad-1 ("))
        .unwrap_or_else(|| panic!("a line for the failed item: {out}"));
    assert!(bad_line.contains("): failed — creation job "), "{bad_line}");
    assert!(
        bad_line.contains("90-fail.sh"),
        "the error names the script: {bad_line}"
    );
    assert!(
        out.contains("Apply failed: 1 of 2 change(s) failed"),
        "{out}"
    );
    let job_id: i64 = out
        .split("ctforge jobs retry ")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("the retry command: {out}"));

    // The one job holds both items, with their states and the error.
    let (status, job) = f
        .call("GET", &format!("/api/v1/jobs/{job_id}"), json!({}))
        .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["kind"], "fleet_apply", "{job}");
    assert_eq!(job["state"], "failed", "{job}");
    let items = job["result"]["items"].as_array().unwrap().clone();
    let state_of =
        |items: &[Value], name: &str| items.iter().find(|i| i["name"] == name).unwrap().clone();
    assert_eq!(state_of(&items, "good-1")["state"], "succeeded", "{job}");
    let bad = state_of(&items, "bad-1");
    assert_eq!(bad["state"], "failed", "{job}");
    assert!(
        bad["error"].as_str().unwrap().contains("90-fail.sh"),
        "{bad}"
    );

    // The job page shows the items as a table, not as JSON.
    let page = f
        .app
        .client
        .get(format!("{}/jobs/{job_id}", f.app.address))
        .bearer_auth(&f.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Fleet apply: 1 to create, 1 to change, 0 to remove"),
        "{page}"
    );
    assert!(page.contains("data-fleet-results"), "{page}");
    assert!(page.contains("1 succeeded, 1 failed"), "{page}");
    assert!(
        page.contains("bad-1") && page.contains("90-fail.sh"),
        "{page}"
    );
    assert!(page.contains("memory: 512 → 768"), "{page}");
    assert!(!page.contains("\"state\":"), "no raw JSON on the page");

    // Fixed, then the job retried: only the failed item runs again.
    std::fs::write(&failing, "#!/bin/sh\necho fixed\n").unwrap();
    let (status, body) = f
        .call("POST", "/api/v1/templates/discover", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (code, out, err) = f.cli(&["jobs", "retry", &job_id.to_string()]).await;
    assert_eq!(code, 0, "{out}{err}");
    let job = f.wait_job(job_id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let items = job["result"]["items"].as_array().unwrap().clone();
    assert_eq!(state_of(&items, "bad-1")["state"], "succeeded", "{job}");
    assert_eq!(state_of(&items, "bad-1")["attempt"], 2, "{job}");
    assert_eq!(
        state_of(&items, "good-1")["attempt"],
        1,
        "the item that succeeded did not run again: {job}"
    );

    // Converged: nothing to do, and no job.
    let (code, out, err) = f.cli(&["apply", &path]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("No changes."), "{out}");
    assert!(!out.contains("job"), "no job for no changes: {out}");
}
