//! Images on the simulator's memory backend: the first creation from a template bakes its
//! image automatically (generalised, a Proxmox CT template); the plan then says the next
//! container comes from the image and why, the second creation clones it (its job log says so),
//! runs only the per-instance script and discovers the services; `"source"` forces scratch or
//! image (409 without one); deleting and collecting images.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use ctforge_pve_sim::SimHandle;
use serde_json::{Value, json};

struct Session {
    app: common::TestApp,
    cookie: String,
    csrf: String,
}

impl Session {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .app
            .client
            .request(method, format!("{}{path}", self.app.address))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf);
        if let Some(body) = body {
            r = r.json(&body);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.send(reqwest::Method::GET, path, None).await.1
    }

    async fn job_log(&self, job_id: i64) -> String {
        self.app
            .state
            .store
            .job_events_after(job_id, 0, 10_000)
            .await
            .unwrap()
            .iter()
            .map(|e| format!("{}\n", e.data))
            .collect()
    }

    async fn wait_for_job(&self, job_id: i64) -> Value {
        for _ in 0..1200 {
            let job = self.get(&format!("/api/v1/jobs/{job_id}")).await;
            if matches!(
                job["state"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            ) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {job_id} did not finish");
    }
}

/// Two templates: `imgweb` (a package, a file, a per-instance credential script reading the
/// hostname, a script starting nginx) and `plain` (one script).
fn templates(dir: &std::path::Path) {
    let web = dir.join("imgweb/container-configs");
    for sub in ["packages", "files", "scripts"] {
        std::fs::create_dir_all(web.join(sub)).unwrap();
    }
    std::fs::write(
        dir.join("imgweb/template.conf"),
        "TEMPLATE_APP=\"Image web\"\nTEMPLATE_OS=debian\nTEMPLATE_VERSION=12\n",
    )
    .unwrap();
    std::fs::write(web.join("packages/web.apt"), "nginx\n").unwrap();
    std::fs::write(web.join("files/index.html"), "<h1>baked</h1>\n").unwrap();
    std::fs::write(web.join("files/index.html.path"), "/srv/www\n").unwrap();
    std::fs::write(
        web.join("scripts/10-credentials.sh"),
        "#!/bin/sh\n# ctforge: per-instance\nset -e\nmkdir -p /etc/ctforge/credentials\nprintf \"pw-$(hostname)\" > /etc/ctforge/credentials/admin-password\n",
    )
    .unwrap();
    std::fs::write(
        web.join("scripts/20-start.sh"),
        "#!/bin/sh\nset -e\nsystemctl enable nginx\nsystemctl restart nginx\n",
    )
    .unwrap();
    let plain = dir.join("plain/container-configs/scripts");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(
        dir.join("plain/template.conf"),
        "TEMPLATE_APP=\"Plain\"\nTEMPLATE_OS=debian\nTEMPLATE_VERSION=12\n",
    )
    .unwrap();
    std::fs::write(plain.join("10-hello.sh"), "#!/bin/sh\necho hello\n").unwrap();
}

async fn signed_in(sim: &SimHandle, root: std::path::PathBuf) -> Session {
    let c = common::sim_cluster(sim);
    let app = common::spawn_app_with("sqlite", move |config| {
        config.clusters = vec![c];
        config.templates.roots = vec![root];
        config.images.auto_build = true;
    })
    .await;
    let r = app
        .client
        .post(format!("{}/api/v1/auth/login", app.address))
        .json(&json!({ "username": "root", "password": sim.root_password, "realm": "pam" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body: Value = r.json().await.unwrap();
    let s = Session {
        app,
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    };
    let (status, body) = s.post("/api/v1/templates/discover", json!({})).await;
    assert_eq!(status, 200, "{body}");
    s
}

fn kinds(plan: &Value) -> Vec<String> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_image_is_baked_after_the_first_creation_and_the_next_container_clones_it() {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| c).await;
    let dir = tempfile::tempdir().unwrap();
    templates(dir.path());
    let s = signed_in(&sim, dir.path().to_owned()).await;

    // No image yet: the plan says scratch, and why.
    let (status, plan) = s
        .post(
            "/api/v1/containers/plan",
            json!({ "template": "imgweb", "hostname": "first" }),
        )
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["source"]["kind"], "scratch", "{plan}");
    let reason = plan["source"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("no ready image of imgweb@")
            && reason.contains("built after this creation"),
        "{reason}"
    );
    // Forcing the image now is a conflict that says what is missing.
    let (status, body) = s
        .post(
            "/api/v1/containers",
            json!({ "template": "imgweb", "hostname": "early", "source": "image" }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.to_string().contains("no ready image of imgweb@"),
        "{body}"
    );

    // The first creation, from scratch; its end queues the bake.
    let (status, first) = s
        .post(
            "/api/v1/containers",
            json!({ "template": "imgweb", "hostname": "first" }),
        )
        .await;
    assert_eq!(status, 202, "{first}");
    let job = s.wait_for_job(first["job_id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let log = s.job_log(first["job_id"].as_i64().unwrap()).await;
    assert!(log.contains("building image"), "{log}");

    let images = s.get("/api/v1/images").await;
    let image = &images["images"][0];
    assert_eq!(image["template"], "imgweb", "{images}");
    assert_eq!(image["node"], "pve1");
    let bake_job = image["job_id"].as_i64().unwrap();
    let bake = s.wait_for_job(bake_job).await;
    assert_eq!(bake["state"], "succeeded", "{bake}");
    let bake_log = s.job_log(bake_job).await;
    assert!(
        bake_log.contains("generalise: remove the SSH host keys")
            && !bake_log.contains("running 10-credentials.sh")
            && bake_log.contains("running 20-start.sh"),
        "the per-instance script is not baked in: {bake_log}"
    );
    let images = s.get("/api/v1/images").await;
    let image = &images["images"][0];
    assert_eq!(image["state"], "ready", "{images}");
    let template_vmid = u32::try_from(image["vmid"].as_u64().unwrap()).unwrap();
    let image_id = image["id"].as_i64().unwrap();

    // The image is a generalised Proxmox CT template.
    let template_flag = sim.state().with(|c| {
        c.cts
            .get(&template_vmid)
            .and_then(|ct| ct.conf.get("template").cloned())
    });
    assert_eq!(template_flag.as_deref(), Some("1"));
    {
        let mem = sim.state();
        let backend = mem.memory_backend().unwrap();
        assert_eq!(
            backend
                .file(template_vmid, "/etc/machine-id")
                .unwrap_or_default(),
            b""
        );
        assert!(
            backend
                .file(template_vmid, "/etc/ctforge/credentials/admin-password")
                .is_none(),
            "no credential in the image"
        );
        assert!(
            backend
                .file(template_vmid, "/var/lib/ctforge/firstboot-pending")
                .is_some()
        );
        assert!(backend.file(template_vmid, "/srv/www/index.html").is_some());
    }

    // Review says the next one comes from the image, and only the per-instance steps run.
    let (status, plan) = s
        .post(
            "/api/v1/containers/plan",
            json!({ "template": "imgweb", "hostname": "second" }),
        )
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["source"]["kind"], "image", "{plan}");
    assert!(
        plan["source"]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("cloned from image {image_id}")),
        "{plan}"
    );
    assert_eq!(
        kinds(&plan),
        ["clone_image", "start", "identity", "run_script", "discover"]
    );
    // Forced scratch is honoured and said.
    let (_, scratch) = s
        .post(
            "/api/v1/containers/plan",
            json!({ "template": "imgweb", "hostname": "third", "source": "scratch" }),
        )
        .await;
    assert_eq!(scratch["source"]["kind"], "scratch");
    assert!(
        scratch["source"]["reason"]
            .as_str()
            .unwrap()
            .contains("as asked")
    );
    assert_eq!(kinds(&scratch)[0], "create");

    // The second container clones the image.
    let (status, second) = s
        .post(
            "/api/v1/containers",
            json!({ "template": "imgweb", "hostname": "second", "source": "image" }),
        )
        .await;
    assert_eq!(status, 202, "{second}");
    let job_id = second["job_id"].as_i64().unwrap();
    let job = s.wait_for_job(job_id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let log = s.job_log(job_id).await;
    assert!(
        log.contains(&format!(
            "cloning image {image_id} (CT template {template_vmid})"
        )),
        "{log}"
    );
    assert!(log.contains("first-boot identity"), "{log}");
    assert!(log.contains("running 10-credentials.sh"), "{log}");
    assert!(!log.contains("running 20-start.sh"), "{log}");
    let events = s.get(&format!("/api/v1/jobs/{job_id}")).await;
    assert_eq!(events["state"], "succeeded");

    let id = second["id"].as_i64().unwrap();
    let vmid = u32::try_from(second["vmid"].as_u64().unwrap()).unwrap();
    {
        let mem = sim.state();
        let backend = mem.memory_backend().unwrap();
        let commands = backend.commands(vmid).join("\n");
        assert!(
            !commands.contains("apt-get install"),
            "packages come from the image: {commands}"
        );
        assert!(
            backend
                .file(vmid, "/var/lib/ctforge/firstboot-pending")
                .is_none(),
            "the first-boot identity ran"
        );
        assert_eq!(
            backend.file(vmid, "/srv/www/index.html").as_deref(),
            Some("<h1>baked</h1>\n".as_bytes())
        );
    }
    let ct = s.app.state.store.get_container(id).await.unwrap();
    assert_eq!(ct.status, "ready");
    let services = s.app.state.store.list_services(id).await.unwrap();
    assert!(
        services.iter().any(|s| s.unit == "nginx.service"),
        "{services:?}"
    );
    // ctforge's own first-boot unit (in the image, not in the clone's baseline) is no service
    // of the template.
    assert!(
        !services.iter().any(|s| s.unit.starts_with("ctforge-")),
        "{services:?}"
    );
    let credentials = s.app.state.store.list_credentials(id).await.unwrap();
    assert_eq!(credentials.len(), 1, "{credentials:?}");
    assert_eq!(
        s.app
            .state
            .keyring
            .open(&credentials[0].value_sealed)
            .unwrap()
            .expose(),
        "pw-second",
        "the per-instance script ran in the clone"
    );
    let images = s.get("/api/v1/images").await;
    assert_eq!(images["images"][0]["containers"], 1, "{images}");

    // A bigger disk than the image's: the clone is grown with `PUT …/resize`.
    let image_disk = sim.state().with(|c| {
        c.cts
            .get(&template_vmid)
            .and_then(|ct| ct.conf.get("rootfs").cloned())
    });
    assert!(
        image_disk.as_deref().is_some_and(|r| r.contains("size=8G")),
        "{image_disk:?}"
    );
    let (status, big) = s
        .post(
            "/api/v1/containers",
            json!({ "template": "imgweb", "hostname": "big", "source": "image", "disk": 20 }),
        )
        .await;
    assert_eq!(status, 202, "{big}");
    let big_job = big["job_id"].as_i64().unwrap();
    let job = s.wait_for_job(big_job).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let log = s.job_log(big_job).await;
    assert!(
        log.contains("root disk grown from 8.0 GiB (the image's) to 20G"),
        "{log}"
    );
    let big_vmid = u32::try_from(big["vmid"].as_u64().unwrap()).unwrap();
    let rootfs = sim.state().with(|c| {
        c.cts
            .get(&big_vmid)
            .and_then(|ct| ct.conf.get("rootfs").cloned())
    });
    assert!(
        rootfs.as_deref().is_some_and(|r| r.contains("size=20G")),
        "{rootfs:?}"
    );

    // Two at once from one image: Proxmox locks the template (`lock: disk`) for each clone,
    // so they take turns; both are made.
    let (a, b) = tokio::join!(
        s.post(
            "/api/v1/containers",
            json!({ "template": "imgweb", "hostname": "twin-a", "source": "image" }),
        ),
        s.post(
            "/api/v1/containers",
            json!({ "template": "imgweb", "hostname": "twin-b", "source": "image" }),
        )
    );
    for (status, body) in [a, b] {
        assert_eq!(status, 202, "{body}");
        let job = s.wait_for_job(body["job_id"].as_i64().unwrap()).await;
        assert_eq!(job["state"], "succeeded", "{job}");
    }

    // A current image containers were made from is not deleted.
    let (status, body) = s
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/images/{image_id}"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");

    // On demand: an image of `plain`; superseded and unused, it is collected.
    let (status, started) = s
        .post("/api/v1/images", json!({ "template": "plain" }))
        .await;
    assert_eq!(status, 202, "{started}");
    let bake = s.wait_for_job(started["job_id"].as_i64().unwrap()).await;
    assert_eq!(bake["state"], "succeeded", "{bake}");
    let plain = started["image_id"].as_i64().unwrap();
    let plain_vmid = s
        .app
        .state
        .store
        .get_image(plain)
        .await
        .unwrap()
        .vmid
        .unwrap();
    s.app
        .state
        .store
        .set_image_state(plain, "superseded", None)
        .await
        .unwrap();
    let removed = ctforge::images::gc(&s.app.state).await.unwrap();
    assert_eq!(removed, 1);
    assert!(s.app.state.store.get_image(plain).await.is_err());
    let gone = sim
        .state()
        .with(|c| !c.cts.contains_key(&u32::try_from(plain_vmid).unwrap()));
    assert!(gone, "the CT template is destroyed in Proxmox");
    let audit = s.app.state.store.list_audit(&Default::default()).await;
    assert!(format!("{audit:?}").contains("image.gc"), "{audit:?}");

    // The Images page lists what is left.
    let page = s
        .app
        .client
        .get(format!("{}/templates/images", s.app.address))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("imgweb") && page.contains("ready"), "{page}");
}

impl Session {
    /// Posts the wizard's form (`/containers/new`) with `fields`; status, `Location` and page.
    async fn wizard(&self, fields: &[(&str, &str)]) -> (u16, String, String) {
        common::post_wizard(
            &self.app.client,
            &self.app.address,
            &self.cookie,
            &self.csrf,
            fields,
        )
        .await
    }
}

/// The wizard's Review names the source and why, offers automatic / image / scratch, shows a
/// forced image that is not there next to the choice, and the choice posted is what the
/// creation does.
#[tokio::test]
async fn the_wizard_review_offers_the_source_and_creates_from_the_choice() {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| c).await;
    let dir = tempfile::tempdir().unwrap();
    templates(dir.path());
    let s = signed_in(&sim, dir.path().to_owned()).await;
    let review = |source: &'static str, go: &'static str| {
        vec![
            ("step", if go == "create" { "review" } else { "scripts" }),
            ("go", go),
            ("template", "imgweb"),
            ("hostname", "wiz"),
            ("source", source),
        ]
    };

    // No image yet: automatic means scratch, and Review says why; the three choices are there.
    let (status, _, page) = s.wizard(&review("", "next")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data-source=\"scratch\""), "{page}");
    assert!(page.contains("no ready image of imgweb@"), "{page}");
    for option in [
        "<option value=\"\" selected>Automatically",
        "<option value=\"image\">From the template's image",
        "<option value=\"scratch\">From scratch",
    ] {
        assert!(page.contains(option), "{option} in {page}");
    }
    // Forcing the image now: said next to the choice, on Review and when creating.
    let (status, _, page) = s.wizard(&review("image", "next")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("aria-invalid=\"true\"")
            && page.contains("create from scratch or build the image first"),
        "{page}"
    );
    let (status, _, page) = s.wizard(&review("image", "create")).await;
    assert_eq!(status, 409, "{page}");
    assert!(
        page.contains("<select id=\"source\" name=\"source\" aria-invalid=\"true\">"),
        "{page}"
    );
    assert!(
        s.app
            .state
            .store
            .list_containers()
            .await
            .unwrap()
            .is_empty()
    );

    // With a ready image, automatic clones it, and Review says which.
    let (status, started) = s
        .post("/api/v1/images", json!({ "template": "imgweb" }))
        .await;
    assert_eq!(status, 202, "{started}");
    let bake = s.wait_for_job(started["job_id"].as_i64().unwrap()).await;
    assert_eq!(bake["state"], "succeeded", "{bake}");
    let image_id = started["image_id"].as_i64().unwrap();
    let (_, _, page) = s.wizard(&review("", "next")).await;
    assert!(page.contains("data-source=\"image\""), "{page}");
    assert!(page.contains("From the template's image"), "{page}");
    assert!(
        page.contains(&format!("cloned from image {image_id}")),
        "{page}"
    );
    // Scratch chosen: Review says so, and the creation runs from scratch.
    let (_, _, page) = s.wizard(&review("scratch", "next")).await;
    assert!(page.contains("data-source=\"scratch\""), "{page}");
    assert!(page.contains("from scratch, as asked"), "{page}");
    assert!(
        page.contains("<option value=\"scratch\" selected>"),
        "{page}"
    );
    let (status, location, page) = s.wizard(&review("scratch", "create")).await;
    assert_eq!(status, 303, "{page}");
    let job_id: i64 = location.strip_prefix("/jobs/").unwrap().parse().unwrap();
    let job = s.wait_for_job(job_id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let log = s.job_log(job_id).await;
    assert!(
        log.contains("creating CT") && !log.contains("cloning image"),
        "{log}"
    );
}
