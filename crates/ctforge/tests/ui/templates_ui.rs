//! Template pages, the template editor, package buckets and their JSON API over real HTTP,
//! plus the headless-Chromium test of the "must show": create a template with a
//! script, a file and a bucket's packages through the form, find it by tag, export it and
//! validate the export with the CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::browser;
use crate::common;

use std::path::Path;

use serde_json::{Value, json};

struct Signed {
    app: common::TestApp,
    token: String,
    cookie: String,
    csrf: String,
}

impl Signed {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app.address)
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut request = self
            .app
            .client
            .request(method.parse().unwrap(), self.url(path))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    async fn get(&self, path: &str) -> (u16, String, String) {
        let r = self
            .app
            .client
            .get(self.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), String::new(), r.text().await.unwrap())
    }

    async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
        let mut pairs: Vec<(&str, &str)> = vec![("csrf_token", self.csrf.as_str())];
        pairs.extend_from_slice(fields);
        let r = self
            .app
            .client
            .post(self.url(path))
            .header("cookie", &self.cookie)
            .form(&pairs)
            .send()
            .await
            .unwrap();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (r.status().as_u16(), location, r.text().await.unwrap())
    }
}

async fn signed_in_with(adjust: impl FnOnce(&mut ctforge::config::Config)) -> Signed {
    let app = common::spawn_app_with("sqlite", adjust).await;
    let (token, csrf) = browser::session(&app.state, "root@pam").await;
    Signed {
        cookie: format!("ctforge_session={token}"),
        token,
        csrf,
        app,
    }
}

async fn signed_in() -> Signed {
    signed_in_with(|_| {}).await
}

fn web_fields<'a>(name: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        ("name", name),
        ("app", "Web server"),
        ("description", "nginx with a motd"),
        ("tags", "web; demo"),
        ("cpu", "2"),
        ("ram", "1024"),
        ("disk", "8"),
        ("os", "debian"),
        ("version", "12"),
        ("unprivileged", "1"),
        ("nesting", ""),
        ("keyctl", ""),
        ("fuse", "0"),
        ("extra", "MY_KEY=hello\n"),
        ("script.0.order", "10"),
        ("script.0.name", "setup.sh"),
        ("script.0.enabled", "on"),
        (
            "script.0.content",
            "#!/bin/sh\n# install\nif [ -x /usr/sbin/nginx ]; then echo \"ok\"; fi\n",
        ),
        ("file.0.name", "motd"),
        ("file.0.target_dir", "/etc"),
        ("file.0.policy", "backup"),
        ("file.0.content", "Welcome\n"),
        ("pkg.0.bucket", "base"),
        ("pkg.0.manager", "apt"),
        ("pkg.0.text", "curl\n# vcs\ngit=1:2.39\n"),
    ];
    f.extend_from_slice(extra);
    f
}

#[tokio::test]
async fn rejected_form_keeps_everything_and_marks_fields_then_saves() {
    let s = signed_in().await;
    let mut fields = web_fields("web", &[("action", "save")]);
    for (k, v) in &mut fields {
        match *k {
            "cpu" => *v = "0",
            "file.0.target_dir" => *v = "etc/../x",
            "pkg.0.text" => *v = "curl\nbad name\n",
            _ => {}
        }
    }
    let (status, _, html) = s.post_form("/templates/new", &fields).await;
    assert_eq!(status, 400, "{html}");
    assert!(
        html.contains("id=\"cpu-error\""),
        "cpu error next to the field"
    );
    assert!(html.contains("TEMPLATE_CPU"), "the format crate's message");
    assert!(html.contains("id=\"file.0.target_dir-error\""));
    assert!(html.contains("id=\"pkg.0.text-error\""));
    assert!(
        html.contains("line 2:"),
        "package diagnostics carry the line"
    );
    // Everything typed is kept.
    assert!(html.contains("nginx with a motd"));
    assert!(html.contains("if [ -x /usr/sbin/nginx ]; then echo &quot;ok&quot;; fi"));
    assert!(html.contains("bad name"));
    assert!(html.contains("etc/../x"));
    assert!(html.contains("MY_KEY=hello"));
    assert!(html.contains("Welcome"));
    assert!(
        s.app.state.store.list_templates().await.unwrap().is_empty(),
        "nothing saved"
    );

    let (status, location, _) = s
        .post_form("/templates/new", &web_fields("web", &[("action", "save")]))
        .await;
    assert_eq!(status, 303);
    assert_eq!(location, "/templates/web?saved=1");
    let record = s.app.state.store.get_template_by_name("web").await.unwrap();
    assert_eq!(record.row.source, "custom");
    assert!(!record.row.diverged);
    assert_eq!(record.scripts.len(), 1);
    assert_eq!(record.files[0].policy, "backup");
    assert_eq!(record.packages.len(), 2);

    // The same name again is refused on the name field.
    let (status, _, html) = s
        .post_form("/templates/new", &web_fields("web", &[("action", "save")]))
        .await;
    assert_eq!(status, 400);
    assert!(html.contains("id=\"name-error\""));
    assert!(html.contains("already exists"));
}

#[tokio::test]
async fn rows_are_added_and_removed_with_plain_posts() {
    let s = signed_in().await;
    let (status, _, html) = s
        .post_form(
            "/templates/new",
            &web_fields("rows", &[("action", "add-script")]),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        html.contains("name=\"script.2.name\""),
        "two blank rows after add"
    );
    assert!(!html.contains("name=\"script.3.name\""));
    assert!(html.contains("value=\"20\""), "next order number suggested");
    assert!(s.app.state.store.list_templates().await.unwrap().is_empty());

    let (_, _, html) = s
        .post_form(
            "/templates/new",
            &web_fields(
                "rows",
                &[
                    ("script.1.order", "20"),
                    ("script.1.name", "second.sh"),
                    ("script.1.content", "echo two\n"),
                    ("action", "remove-script.0"),
                ],
            ),
        )
        .await;
    assert!(html.contains("value=\"second.sh\""));
    assert!(!html.contains("value=\"setup.sh\""), "removed row is gone");

    let (_, _, html) = s
        .post_form(
            "/templates/new",
            &web_fields("rows", &[("action", "add-file")]),
        )
        .await;
    assert!(html.contains("name=\"file.2.name\""));
    let (_, _, html) = s
        .post_form(
            "/templates/new",
            &web_fields("rows", &[("action", "add-pkg")]),
        )
        .await;
    assert!(html.contains("name=\"pkg.2.text\""));
}

#[tokio::test]
async fn buckets_api_paste_and_add_from_bucket() {
    let s = signed_in().await;
    let r = s
        .send(
            "POST",
            "/api/v1/buckets",
            Some(json!({ "name": "Web Base", "description": "basics" })),
        )
        .await;
    assert_eq!(r.status(), 201);
    let bucket: Value = r.json().await.unwrap();
    let id = bucket["id"].as_i64().unwrap();
    let r = s
        .send(
            "POST",
            "/api/v1/buckets",
            Some(json!({ "name": "Web Base" })),
        )
        .await;
    assert_eq!(r.status(), 400, "duplicate bucket name");

    let r = s
        .send(
            "POST",
            &format!("/api/v1/buckets/{id}/packages"),
            Some(json!({ "manager": "apt", "text": "curl\nnot valid\n" })),
        )
        .await;
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    assert!(err["fields"]["line 2"].is_string(), "{err}");

    let r = s
        .send(
            "POST",
            &format!("/api/v1/buckets/{id}/packages"),
            Some(json!({ "manager": "apt", "text": "curl\n# comment\ngit=1:2.39\nnpm:pm2@5\n", "packages": ["pip:requests==2.31"] })),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["added"], 4);
    assert_eq!(body["counts"], json!({ "apt": 2, "npm": 1, "pip": 1 }));

    let r = s.send("GET", "/api/v1/buckets", None).await;
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["buckets"][0]["package_count"], 4);

    let r = s
        .send(
            "PUT",
            &format!("/api/v1/buckets/{id}"),
            Some(json!({ "name": "web-base" })),
        )
        .await;
    assert_eq!(r.status(), 200);
    let shown: Value = s
        .send("GET", &format!("/api/v1/buckets/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["name"], "web-base");
    assert_eq!(shown["description"], "basics", "kept when not sent");
    let pip_id = shown["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["manager"] == "pip")
        .unwrap()["id"]
        .as_i64()
        .unwrap();

    // Add from bucket in the editor: the packages are copied into new lists.
    let id_text = id.to_string();
    let (status, _, html) = s
        .post_form(
            "/templates/new",
            &web_fields(
                "withbucket",
                &[("from_bucket", &id_text), ("action", "add-bucket")],
            ),
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("copied into the list"));
    assert!(html.contains("value=\"web-base\""));
    assert!(html.contains("curl\ngit=1:2.39\n"));
    assert!(html.contains("pm2@5"));
    assert!(html.contains("requests==2.31"));
    assert!(html.contains("value=\"withbucket\""), "typed values kept");

    let r = s
        .send(
            "DELETE",
            &format!("/api/v1/buckets/{id}/packages"),
            Some(json!({ "ids": [pip_id] })),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["removed"], 1);
    let r = s
        .send("DELETE", &format!("/api/v1/buckets/{id}"), None)
        .await;
    assert_eq!(r.status(), 204);
    let r = s.send("GET", &format!("/api/v1/buckets/{id}"), None).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn bucket_pages_create_paste_bulk_delete_rename() {
    let s = signed_in().await;
    let (status, _, html) = s.get("/buckets").await;
    assert_eq!(status, 200);
    assert!(html.contains("No buckets yet"));
    let (status, location, _) = s
        .post_form("/buckets", &[("name", "tools"), ("description", "")])
        .await;
    assert_eq!(status, 303);
    let (status, _, html) = s
        .post_form(&location, &[("name", ""), ("description", "x")])
        .await;
    assert_eq!(status, 400);
    assert!(html.contains("id=\"name-error\""));
    let (status, _, html) = s
        .post_form(
            &format!("{location}/packages"),
            &[("manager", ""), ("text", "apt:curl\nhtop\n")],
        )
        .await;
    assert_eq!(status, 400, "a plain name needs a manager");
    assert!(html.contains("line 2"));
    assert!(html.contains("apt:curl\nhtop"), "the paste is kept");
    let (status, _, html) = s
        .post_form(
            &format!("{location}/packages"),
            &[("manager", "apt"), ("text", "apt:curl\nhtop\nnpm:pm2\n")],
        )
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("3 packages added"));
    assert!(html.contains("apt 2"));
    let id: i64 = location.trim_start_matches("/buckets/").parse().unwrap();
    let packages = s.app.state.store.list_bucket_packages(id).await.unwrap();
    let ids: Vec<String> = packages
        .iter()
        .filter(|p| p.manager == "apt")
        .map(|p| p.id.to_string())
        .collect();
    let fields: Vec<(&str, &str)> = ids.iter().map(|i| ("ids", i.as_str())).collect();
    let (status, _, html) = s
        .post_form(&format!("{location}/packages/delete"), &fields)
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("2 packages deleted"));
    let (status, _, _) = s
        .post_form(&location, &[("name", "tools2"), ("description", "d")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        s.app.state.store.get_bucket(id).await.unwrap().name,
        "tools2"
    );
    let (_, _, html) = s.get("/buckets").await;
    assert!(html.contains("npm 1"));
    let (status, _, _) = s.post_form(&format!("{location}/delete"), &[]).await;
    assert_eq!(status, 200);
    assert!(s.app.state.store.list_buckets().await.unwrap().is_empty());
}

fn template_json(name: &str, tags: &[&str]) -> Value {
    json!({
        "name": name,
        "config": { "app": "App", "tags": tags, "cpu": 1, "ram_mib": 512, "extra": [["X_KEY", "v"]] },
        "scripts": [{ "order": 10, "name": "setup.sh", "content": "echo hi\n" }],
        "files": [{ "name": "a.conf", "target_dir": "/etc", "policy": "default", "content": "a=1\n" }],
        "packages": [{ "bucket": "base", "manager": "npm", "packages": ["pm2@5"] }],
    })
}

#[tokio::test]
async fn api_create_update_duplicate_and_delete() {
    let s = signed_in().await;
    let r = s
        .send(
            "POST",
            "/api/v1/templates",
            Some(template_json("api1", &["x"])),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["source"], "custom");
    assert_eq!(created["scripts"][0]["name"], "setup.sh");

    let r = s
        .send(
            "POST",
            "/api/v1/templates",
            Some(template_json("api1", &["x"])),
        )
        .await;
    assert_eq!(r.status(), 409);

    let mut bad = template_json("api2", &["x"]);
    bad["files"][0]["target_dir"] = json!("relative");
    let r = s.send("POST", "/api/v1/templates", Some(bad)).await;
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    assert!(
        err["fields"]["container-configs/files/a.conf.path:1"].is_string(),
        "{err}"
    );

    let mut changed = template_json("ignored", &["x", "y"]);
    changed["config"]["cpu"] = json!(4);
    let r = s.send("PUT", "/api/v1/templates/api1", Some(changed)).await;
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["name"], "api1");
    assert_eq!(updated["resources"]["cpu"], 4);
    assert_eq!(updated["diverged"], false, "custom templates never diverge");

    let r = s
        .send("POST", "/api/v1/templates/api1/duplicate", Some(json!({})))
        .await;
    assert_eq!(r.status(), 201);
    let copy: Value = r.json().await.unwrap();
    assert_eq!(copy["name"], "api1-copy");
    assert_eq!(copy["resources"]["cpu"], 4);
    let r = s
        .send(
            "POST",
            "/api/v1/templates/api1/duplicate",
            Some(json!({ "name": "api1-other" })),
        )
        .await;
    assert_eq!(r.status(), 201);

    // Web duplicate and delete.
    let (status, location, _) = s
        .post_form("/templates/api1/duplicate", &[("new_name", "")])
        .await;
    assert_eq!(status, 303);
    assert_eq!(location, "/templates/api1-copy-2/edit");
    let (status, _, html) = s.get("/templates/api1-copy-2/edit").await;
    assert_eq!(status, 200);
    assert!(html.contains("value=\"api1-copy-2\""));
    let (status, location, _) = s.post_form("/templates/api1-copy-2/delete", &[]).await;
    assert_eq!(status, 303);
    assert_eq!(location, "/templates");
    let r = s.send("DELETE", "/api/v1/templates/api1-other", None).await;
    assert_eq!(r.status(), 204);
}

fn write_template(root: &Path, name: &str) {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("container-configs/scripts")).unwrap();
    std::fs::create_dir_all(dir.join("container-configs/files")).unwrap();
    std::fs::create_dir_all(dir.join("container-configs/packages")).unwrap();
    std::fs::write(
        dir.join("template.conf"),
        "# disk template\nTEMPLATE_APP=\"Disk app\"\nTEMPLATE_TAGS=\"disk;fs\"\nTEMPLATE_CPU=${TEMPLATE_CPU:-2}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("container-configs/scripts/10-setup.sh"),
        "#!/bin/bash\nfor x in a b; do echo \"$x\"; done # loop\n",
    )
    .unwrap();
    std::fs::write(dir.join("container-configs/files/app.conf"), "k=v\n").unwrap();
    std::fs::write(
        dir.join("container-configs/files/app.conf.path"),
        "/etc/app\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("container-configs/files/app.conf.policy"),
        "default\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("container-configs/packages/base.apt"),
        "# base\ncurl\n",
    )
    .unwrap();
}

#[tokio::test]
async fn discovery_detail_tabs_and_divergence() {
    let root = tempfile::tempdir().unwrap();
    let root_path = root.path().to_owned();
    let s = signed_in_with(|c| c.templates.roots = vec![root_path.clone()]).await;

    let (status, _, html) = s.get("/templates").await;
    assert_eq!(status, 200);
    assert!(html.contains("No templates yet"));
    assert!(html.contains("Discover now"));
    assert!(
        html.contains(&root_path.display().to_string()),
        "roots listed"
    );

    write_template(root.path(), "disk");
    let (status, _, html) = s.post_form("/templates/discover", &[]).await;
    assert_eq!(status, 200);
    assert!(html.contains("1 added"), "{html}");
    assert!(html.contains("data-template=\"disk\""));

    let r = s
        .send(
            "POST",
            "/api/v1/templates",
            Some(template_json("other", &["db"])),
        )
        .await;
    assert_eq!(r.status(), 201);
    let (_, _, html) = s.get("/templates?tag=disk").await;
    assert!(html.contains("data-template=\"disk\""));
    assert!(!html.contains("data-template=\"other\""));
    assert!(html.contains("filesystem"));
    assert!(
        html.contains("class=\"tag tag-h"),
        "tag chips carry a hue class"
    );
    let (_, _, html) = s.get("/templates?q=disk+app").await;
    assert!(html.contains("data-template=\"disk\""));
    assert!(!html.contains("data-template=\"other\""));

    let (_, _, html) = s.get("/templates/disk?tab=scripts").await;
    assert!(html.contains("<span class=\"hl-k\">for</span>"), "{html}");
    assert!(html.contains("class=\"hl-c\""));
    assert!(html.contains("class=\"ln\""));
    let (_, _, html) = s.get("/templates/disk?tab=files").await;
    assert!(html.contains("/etc/app/app.conf"));
    assert!(html.contains("badge-ok\">default"));
    let (_, _, html) = s.get("/templates/disk?tab=packages").await;
    assert!(html.contains("base.apt"));
    let (_, _, html) = s.get("/templates/disk").await;
    assert!(
        html.contains("# disk template"),
        "template.conf shown as on disk"
    );
    assert!(html.contains("/api/v1/templates/disk/export"));

    // Saving the edit form unchanged keeps the template in sync with disk.
    let (_, _, edit) = s.get("/templates/disk/edit").await;
    assert!(edit.contains("marks it as diverged"));
    let fields = [
        ("app", "Disk app"),
        ("tags", "disk; fs"),
        ("cpu", "2"),
        ("script.0.order", "10"),
        ("script.0.name", "10-setup.sh"),
        ("script.0.enabled", "on"),
        (
            "script.0.content",
            "#!/bin/bash\nfor x in a b; do echo \"$x\"; done # loop\n",
        ),
        ("file.0.name", "app.conf"),
        ("file.0.target_dir", "/etc/app"),
        ("file.0.policy", "default"),
        ("file.0.content", "k=v\n"),
        ("pkg.0.bucket", "base"),
        ("pkg.0.manager", "apt"),
        ("pkg.0.text", "# base\ncurl\n"),
        ("action", "save"),
    ];
    let (status, location, html) = s.post_form("/templates/disk/edit", &fields).await;
    assert_eq!(status, 303, "{html}");
    assert_eq!(location, "/templates/disk?saved=1");
    let record = s
        .app
        .state
        .store
        .get_template_by_name("disk")
        .await
        .unwrap();
    assert!(!record.row.diverged, "no change, no divergence");

    // A real change marks it diverged, shown on the page; discovery then skips it.
    let mut changed = fields.to_vec();
    changed[2] = ("cpu", "3");
    let (status, _, _) = s.post_form("/templates/disk/edit", &changed).await;
    assert_eq!(status, 303);
    let record = s
        .app
        .state
        .store
        .get_template_by_name("disk")
        .await
        .unwrap();
    assert!(record.row.diverged);
    assert_eq!(record.row.source, "filesystem");
    let (_, _, html) = s.get("/templates/disk").await;
    assert!(html.contains("badge-warn\">diverged"));
    let (_, _, html) = s.post_form("/templates/discover", &[]).await;
    assert!(html.contains("1 diverged"), "{html}");
}

/// The must-show, in headless Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_create_template_with_bucket_filter_export_validate() {
    let s = signed_in().await;
    let store = s.app.state.store.clone();
    let bucket = store.create_bucket("Web Base", "").await.unwrap();
    store
        .add_bucket_packages(
            bucket,
            &[
                ("apt".into(), "curl".into(), None),
                ("apt".into(), "nginx".into(), Some("1.22.1-9".into())),
                ("npm".into(), "pm2".into(), Some("5".into())),
            ],
        )
        .await
        .unwrap();
    let r = s
        .send(
            "POST",
            "/api/v1/templates",
            Some(template_json("untagged", &["db"])),
        )
        .await;
    assert_eq!(r.status(), 201);

    let b = browser::Browser::launch().await;
    let page = b.signed_in_page(&s.app.address, &s.token).await;
    let base = s.app.address.clone();
    let bucket_id = bucket.to_string();
    browser::run("templates-create-export", &page, async {
        browser::goto(&page, &format!("{base}/templates/new")).await?;
        browser::wait_for(&page, "document.querySelector('input[name=\"name\"]')", 10).await?;
        browser::type_into(&page, "input[name=\"name\"]", "web-ui").await?;
        browser::type_into(&page, "input[name=\"app\"]", "Web UI").await?;
        browser::type_into(&page, "input[name=\"tags\"]", "web; demo").await?;
        browser::set_value(&page, "input[name=\"cpu\"]", "2").await?;
        browser::set_value(&page, "input[name=\"ram\"]", "1024").await?;
        browser::set_value(&page, "input[name=\"disk\"]", "8").await?;
        browser::type_into(&page, "input[name=\"script.0.name\"]", "setup.sh").await?;
        browser::set_value(
            &page,
            "textarea[name=\"script.0.content\"]",
            "#!/bin/sh\n# say hello\necho \"hello\" > /tmp/hello\n",
        )
        .await?;
        browser::type_into(&page, "input[name=\"file.0.name\"]", "motd").await?;
        browser::type_into(&page, "input[name=\"file.0.target_dir\"]", "/etc").await?;
        browser::set_value(&page, "select[name=\"file.0.policy\"]", "backup").await?;
        browser::set_value(&page, "textarea[name=\"file.0.content\"]", "Welcome to web-ui\n")
            .await?;
        // Copy the bucket's packages into the template.
        browser::set_value(&page, "select[name=\"from_bucket\"]", &bucket_id).await?;
        browser::click(&page, "button[value=\"add-bucket\"]").await?;
        browser::wait_for(
            &page,
            "document.body.innerText.includes('copied into the list')",
            10,
        )
        .await?;
        browser::wait_for(
            &page,
            "document.querySelector('input[name=\"name\"]').value === 'web-ui' && document.querySelector('textarea[name=\"file.0.content\"]').value.includes('Welcome')",
            5,
        )
        .await?;
        browser::wait_for(
            &page,
            "[...document.querySelectorAll('textarea')].some(t => t.value.includes('nginx=1.22.1-9'))",
            5,
        )
        .await?;
        browser::screenshot(&page, "template-editor").await;
        browser::click(&page, "button.btn-primary[value=\"save\"]").await?;
        browser::wait_for(
            &page,
            "location.pathname === '/templates/web-ui' && document.readyState === 'complete'",
            10,
        )
        .await?;
        browser::wait_for(&page, "document.body.innerText.includes('Template saved')", 5).await?;
        browser::goto(&page, &format!("{base}/templates/web-ui?tab=scripts")).await?;
        browser::wait_for(&page, "document.querySelector('.code-view .hl-c')", 5).await?;
        browser::screenshot(&page, "template-detail-scripts").await;

        // The browser page filtered by tag shows it (and not the other template).
        browser::goto(&page, &format!("{base}/templates?tag=web")).await?;
        browser::wait_for(
            &page,
            "document.querySelector('[data-template=\"web-ui\"]') && !document.querySelector('[data-template=\"untagged\"]')",
            5,
        )
        .await?;
        browser::screenshot(&page, "templates-filtered").await;
        // Filter via the form too (the select is URL-backed).
        browser::goto(&page, &format!("{base}/templates")).await?;
        browser::set_value(&page, "select[name=\"tag\"]", "demo").await?;
        browser::click(&page, "form[role=\"search\"] button[type=\"submit\"]").await?;
        browser::wait_for(
            &page,
            "location.search.includes('tag=demo') && document.querySelector('[data-template=\"web-ui\"]') && !document.querySelector('[data-template=\"untagged\"]')",
            10,
        )
        .await?;
        // The buckets page lists the bucket with its counts per manager.
        browser::goto(&page, &format!("{base}/buckets")).await?;
        browser::wait_for(
            &page,
            "document.body.innerText.includes('Web Base') && document.body.innerText.includes('apt 2')",
            5,
        )
        .await?;
        browser::screenshot(&page, "buckets").await;
        // The detail page offers the export link.
        browser::goto(&page, &format!("{base}/templates/web-ui")).await?;
        browser::wait_for(
            &page,
            "document.querySelector('a[href=\"/api/v1/templates/web-ui/export\"]')",
            5,
        )
        .await?;
        Ok(())
    })
    .await;
    b.close().await;

    // Export with the session, unpack, validate with the CLI.
    let r = s
        .app
        .client
        .get(s.url("/api/v1/templates/web-ui/export"))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    let out = tempfile::tempdir().unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]))
        .unpack(out.path())
        .unwrap();
    let dir = out.path().join("web-ui");
    let script =
        std::fs::read_to_string(dir.join("container-configs/scripts/10-setup.sh")).unwrap();
    assert!(script.contains("echo \"hello\""));
    assert_eq!(
        std::fs::read_to_string(dir.join("container-configs/files/motd.policy"))
            .unwrap()
            .trim(),
        "backup"
    );
    let apt = std::fs::read_to_string(dir.join("container-configs/packages/web-base.apt")).unwrap();
    assert_eq!(apt, "curl\nnginx=1.22.1-9\n");
    let npm = std::fs::read_to_string(dir.join("container-configs/packages/web-base.npm")).unwrap();
    assert_eq!(npm, "pm2@5\n");
    let conf = std::fs::read_to_string(dir.join("template.conf")).unwrap();
    assert!(conf.contains("TEMPLATE_TAGS=\"web;demo\""), "{conf}");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ctforge"))
        .args(["templates", "validate"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "validate failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn delete_is_refused_while_containers_reference_it_unless_forced() {
    let s = signed_in().await;
    let r = s
        .send(
            "POST",
            "/api/v1/templates",
            Some(template_json("used", &["x"])),
        )
        .await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let store = &s.app.state.store;
    let cluster = store
        .insert_cluster(&ctforge::storage::model::ClusterInput {
            name: "lab".into(),
            url: "https://x:8006".into(),
            token_id: "root@pam!t".into(),
            ssh_user: "root".into(),
            ssh_port: 22,
            ..Default::default()
        })
        .await
        .unwrap();
    store
        .create_container_with_job(
            &ctforge::storage::model::NewContainer {
                cluster_id: cluster,
                node: "pve1".into(),
                vmid: 100,
                hostname: "h".into(),
                template_id: Some(id),
                status: ctforge::status::RecordStatus::Ready,
                spec_json: "{}".into(),
                ..Default::default()
            },
            &ctforge::storage::model::NewJob {
                kind: "k".into(),
                payload_json: "{}".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (_, _, html) = s.get("/templates/used").await;
    assert!(
        html.contains("1 containers reference used"),
        "the dialog says so"
    );
    assert!(html.contains("Delete anyway"));
    let (status, _, html) = s.post_form("/templates/used/delete", &[]).await;
    assert_eq!(status, 409);
    assert!(html.contains("Not deleted: 1 containers reference this template"));
    assert!(store.get_template_by_name("used").await.is_ok());
    let (status, location, _) = s
        .post_form("/templates/used/delete", &[("force", "1")])
        .await;
    assert_eq!(status, 303);
    assert_eq!(location, "/templates");
    assert!(store.get_template_by_name("used").await.is_err());
}
