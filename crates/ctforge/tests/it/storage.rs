//! Storage conformance suite: the same stories run against SQLite and the real PostgreSQL
//! server (a fresh database per test).

#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;

use ctforge::storage::StoreError;
use ctforge::storage::model::*;

fn cluster_input(name: &str) -> ClusterInput {
    ClusterInput {
        name: name.to_owned(),
        url: "https://pve.example:8006".to_owned(),
        token_id: "root@pam!ctforge".to_owned(),
        token_secret_sealed: Some("v1:k:secret".to_owned()),
        ssh_user: "root".to_owned(),
        ssh_port: 22,
        is_default: true,
        ..Default::default()
    }
}

fn template(name: &str, script_body: &str) -> TemplateRecord {
    TemplateRecord {
        row: TemplateRow {
            id: 0,
            name: name.to_owned(),
            source: "filesystem".to_owned(),
            source_path: Some(format!("/t/{name}")),
            app: "Nginx".to_owned(),
            description: "web".to_owned(),
            tags: "web;proxy".to_owned(),
            config_json: "{}".to_owned(),
            content_hash: script_body.to_owned(),
            diverged: false,
            created_at: 0,
            updated_at: 0,
        },
        scripts: vec![
            TemplateScript {
                position: 10,
                name: "10-a.sh".into(),
                content: script_body.into(),
                enabled: true,
            },
            TemplateScript {
                position: 20,
                name: "20-b.sh".into(),
                content: "echo b".into(),
                enabled: false,
            },
        ],
        files: vec![TemplateFile {
            name: "nginx.conf".into(),
            target_dir: "/etc/nginx".into(),
            policy: "backup".into(),
            content: "server {}".into(),
        }],
        packages: vec![
            TemplatePackage {
                bucket: "base".into(),
                manager: "apt".into(),
                name: "nginx".into(),
                version: None,
                position: 0,
            },
            TemplatePackage {
                bucket: "base".into(),
                manager: "apt".into(),
                name: "curl".into(),
                version: Some("7.1".into()),
                position: 1,
            },
        ],
    }
}

async fn clusters(backend: &str) {
    let (store, _clock, _dir) = common::fresh_store(backend).await;
    let a = store.insert_cluster(&cluster_input("a")).await.unwrap();
    let b = store.insert_cluster(&cluster_input("b")).await.unwrap();
    assert!(matches!(
        store.insert_cluster(&cluster_input("a")).await,
        Err(StoreError::Conflict(_))
    ));
    let list = store.list_clusters().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].id, b, "the last default wins and is listed first");
    assert!(!store.get_cluster(a).await.unwrap().is_default);
    let mut changed = cluster_input("a2");
    changed.is_default = false;
    store.update_cluster(a, &changed).await.unwrap();
    assert_eq!(store.get_cluster_by_name("a2").await.unwrap().id, a);
    store
        .set_cluster_nodes(
            a,
            &[
                ("pve1".into(), "online".into()),
                ("pve2".into(), "offline".into()),
            ],
        )
        .await
        .unwrap();
    store
        .set_cluster_nodes(a, &[("pve1".into(), "online".into())])
        .await
        .unwrap();
    assert_eq!(store.list_cluster_nodes(a).await.unwrap().len(), 1);
    store.delete_cluster(a).await.unwrap();
    assert!(matches!(
        store.get_cluster(a).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_cluster(a).await,
        Err(StoreError::NotFound)
    ));
    store.ready().await.unwrap();
}

async fn templates_and_buckets(backend: &str) {
    let (store, _clock, _dir) = common::fresh_store(backend).await;
    let (id, previous) = store
        .upsert_template(&template("nginx", "echo 1"))
        .await
        .unwrap();
    assert!(previous.is_none());
    let loaded = store.get_template(id).await.unwrap();
    assert_eq!(loaded.scripts, template("nginx", "echo 1").scripts);
    assert_eq!(loaded.packages.len(), 2);
    let (id2, previous) = store
        .upsert_template(&template("nginx", "echo 2"))
        .await
        .unwrap();
    assert_eq!(id, id2, "re-sync keeps the id");
    assert_eq!(previous.unwrap().scripts[0].content, "echo 1");
    let summary = store.list_templates().await.unwrap();
    assert_eq!(summary.len(), 1);
    assert_eq!(
        (
            summary[0].script_count,
            summary[0].file_count,
            summary[0].package_count
        ),
        (2, 1, 2)
    );
    assert_eq!(store.count_template_containers(id).await.unwrap(), 0);
    // By name, the row and its parts in one read; the count by name too.
    let by_name = store.get_template_by_name("nginx").await.unwrap();
    assert_eq!(by_name, store.get_template(id).await.unwrap());
    assert_eq!(by_name.scripts[0].content, "echo 2");
    assert_eq!(
        store
            .count_template_containers_named("nginx")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .count_template_containers_named("no-such")
            .await
            .unwrap(),
        0
    );

    let bucket = store.create_bucket("web", "web stack").await.unwrap();
    assert!(matches!(
        store.create_bucket("web", "").await,
        Err(StoreError::Conflict(_))
    ));
    store
        .add_bucket_packages(
            bucket,
            &[
                ("apt".into(), "nginx".into(), None),
                ("npm".into(), "pm2".into(), Some("5".into())),
            ],
        )
        .await
        .unwrap();
    store
        .add_bucket_packages(
            bucket,
            &[("apt".into(), "nginx".into(), Some("1.2".into()))],
        )
        .await
        .unwrap();
    let packages = store.list_bucket_packages(bucket).await.unwrap();
    assert_eq!(packages.len(), 2);
    assert_eq!(packages[0].version.as_deref(), Some("1.2"));
    assert_eq!(
        store
            .remove_bucket_packages(bucket, &[packages[0].id])
            .await
            .unwrap(),
        1
    );
    store.update_bucket(bucket, "web2", "x").await.unwrap();
    assert_eq!(store.get_bucket(bucket).await.unwrap().name, "web2");
    store.delete_bucket(bucket).await.unwrap();
    assert!(store.list_buckets().await.unwrap().is_empty());
    store.delete_template(id).await.unwrap();
    assert!(matches!(
        store.get_template_by_name("nginx").await,
        Err(StoreError::NotFound)
    ));
}

async fn containers_jobs_events(backend: &str) {
    let (store, clock, _dir) = common::fresh_store(backend).await;
    let cluster = store.insert_cluster(&cluster_input("c")).await.unwrap();
    let (template_id, _) = store.upsert_template(&template("t", "x")).await.unwrap();
    let new = NewContainer {
        cluster_id: cluster,
        node: "pve1".into(),
        vmid: 100,
        hostname: "web".into(),
        template_id: Some(template_id),
        status: ctforge::status::RecordStatus::Creating,
        spec_json: "{}".into(),
        root_password_sealed: Some("v1:k:pw".into()),
        created_by: "root@pam".into(),
    };
    let job = NewJob {
        kind: "create_container".into(),
        node: Some("pve1".into()),
        payload_json: "{}".into(),
        ..Default::default()
    };
    let (ct, job_id) = store.create_container_with_job(&new, &job).await.unwrap();
    // Same VMID again: the whole transaction rolls back, no orphan job.
    assert!(matches!(
        store.create_container_with_job(&new, &job).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.list_jobs(10).await.unwrap().len(), 1);
    assert_eq!(
        store.count_template_containers(template_id).await.unwrap(),
        1
    );
    assert_eq!(store.count_template_containers_named("t").await.unwrap(), 1);
    assert_eq!(
        store.get_container_by_vmid(cluster, 100).await.unwrap().id,
        ct
    );

    let claimed = store.claim_job("w1", 30_000, 2).await.unwrap().unwrap();
    assert_eq!(
        (claimed.id, claimed.attempts, claimed.state.as_str()),
        (job_id, 1, "running")
    );
    assert!(
        store.claim_job("w2", 30_000, 2).await.unwrap().is_none(),
        "leased job is not claimed twice"
    );
    store.set_job_step(job_id, "w1", "create").await.unwrap();
    store
        .complete_job_step(job_id, "w1", "create")
        .await
        .unwrap();
    store.set_job_step(job_id, "w1", "start").await.unwrap();
    // The worker dies: its lease expires and another worker resumes after the completed step.
    clock.advance(31_000);
    let resumed = store.claim_job("w2", 30_000, 2).await.unwrap().unwrap();
    assert_eq!(
        (resumed.attempts, resumed.completed_steps.as_str()),
        (2, "create")
    );
    assert!(
        !store.renew_job_lease(job_id, "w1", 30_000).await.unwrap(),
        "the old owner lost its lease"
    );
    assert!(
        store.set_job_step(job_id, "w1", "x").await.is_err(),
        "the old owner cannot checkpoint"
    );
    assert!(store.renew_job_lease(job_id, "w2", 30_000).await.unwrap());
    assert_eq!(
        resumed.result_json, None,
        "no result until a handler sets one"
    );
    assert!(
        store.set_job_result(job_id, "w1", "{}").await.is_err(),
        "only the lease holder writes the result"
    );
    store
        .set_job_result(job_id, "w2", r#"{"items":[1]}"#)
        .await
        .unwrap();
    store
        .finish_job(
            job_id,
            ctforge::status::JobState::Failed,
            Some("script 20-b.sh exited with 1"),
        )
        .await
        .unwrap();
    assert!(
        matches!(
            store
                .finish_job(job_id, ctforge::status::JobState::Succeeded, None)
                .await,
            Err(StoreError::NotFound)
        ),
        "a finished job is not finished again (a worker cannot overwrite a cancel)"
    );
    assert_eq!(store.get_job(job_id).await.unwrap().state, "failed");
    store
        .retry_job(job_id, &["create".to_owned()])
        .await
        .unwrap();
    let retried = store.get_job(job_id).await.unwrap();
    assert_eq!(retried.state, "queued");
    assert_eq!(retried.attempts, 0, "a retry starts with fresh attempts");
    assert_eq!(
        retried.result_json.as_deref(),
        Some(r#"{"items":[1]}"#),
        "the result survives a retry"
    );

    for i in 0..3 {
        let seq = store
            .append_job_event(job_id, "log", Some("install"), &format!("line {i}"))
            .await
            .unwrap();
        assert_eq!(seq, i + 1);
    }
    // A batch (one transaction) continues the sequence; an empty one stores nothing.
    let lines: Vec<String> = (0..3).map(|i| format!("batch {i}")).collect();
    let first = store
        .append_job_events(job_id, "log", Some("install"), &lines)
        .await
        .unwrap();
    assert_eq!(first, 4);
    assert_eq!(
        store
            .append_job_events(job_id, "log", None, &[])
            .await
            .unwrap(),
        0
    );
    let batch = store.job_events_after(job_id, 3, 100).await.unwrap();
    assert_eq!(
        batch
            .iter()
            .map(|e| (e.seq, e.data.as_str()))
            .collect::<Vec<_>>(),
        vec![(4, "batch 0"), (5, "batch 1"), (6, "batch 2")]
    );
    store.compact().await.unwrap();
    let after: Vec<_> = store
        .job_events_after(job_id, 1, 100)
        .await
        .unwrap()
        .into_iter()
        .take(2)
        .collect();
    assert_eq!(after.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
    // Paging backwards: the newest page first, in order, then the one before it.
    let newest = store.job_events_before(job_id, 4, 2).await.unwrap();
    assert_eq!(newest.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
    let older = store.job_events_before(job_id, 2, 2).await.unwrap();
    assert_eq!(older.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1]);
    assert_eq!(
        store.latest_container_job(ct).await.unwrap(),
        Some(job_id),
        "a container's job is found without listing jobs"
    );
    assert_eq!(store.latest_container_job(ct + 1000).await.unwrap(), None);
    assert_eq!(
        store.count_jobs_by_state().await.unwrap(),
        vec![("queued".to_owned(), 1)],
        "one aggregate row per state that has jobs"
    );

    store
        .update_container_status(ct, ctforge::status::RecordStatus::Ready, Some("10.0.0.5"))
        .await
        .unwrap();
    store
        .update_container_status(ct, ctforge::status::RecordStatus::Ready, None)
        .await
        .unwrap();
    assert_eq!(
        store.get_container(ct).await.unwrap().ip.as_deref(),
        Some("10.0.0.5")
    );
    let service = ContainerService {
        unit: "nginx.service".into(),
        active_state: "active".into(),
        sub_state: "running".into(),
        enabled: true,
        port: Some(80),
        url: Some("http://10.0.0.5:80".into()),
        updated_at: 1,
        web_title: Some("Welcome to nginx!".into()),
        web_answered: Some(true),
        web_checked_at: Some(2),
    };
    store
        .replace_services(ct, std::slice::from_ref(&service))
        .await
        .unwrap();
    store
        .replace_services(ct, std::slice::from_ref(&service))
        .await
        .unwrap();
    assert_eq!(store.list_services(ct).await.unwrap(), vec![service]);
    store.put_credential(ct, "admin", "v1:k:a").await.unwrap();
    store.put_credential(ct, "admin", "v1:k:b").await.unwrap();
    assert_eq!(
        store.list_credentials(ct).await.unwrap()[0].value_sealed,
        "v1:k:b"
    );
    for kind in ["created", "started", "started"] {
        store
            .add_container_event(ct, kind, "m", "root@pam", "{}")
            .await
            .unwrap();
    }
    let started = store
        .list_container_events(ct, Some("started"), None, 10)
        .await
        .unwrap();
    assert_eq!(started.len(), 2);
    let page = store
        .list_container_events(ct, None, Some(started[0].id), 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    store.delete_container(ct).await.unwrap();
    assert!(
        store.list_credentials(ct).await.unwrap().is_empty(),
        "credentials go with the container"
    );
}

async fn concurrent_claims(backend: &str) {
    let (store, _clock, _dir) = common::fresh_store(backend).await;
    for _ in 0..20 {
        store
            .enqueue_job(&NewJob {
                kind: "k".into(),
                payload_json: "{}".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(job) = store
                .claim_job(&format!("w{w}"), 60_000, 100)
                .await
                .unwrap()
            {
                got.push(job.id);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 20, "every job claimed once");
    assert_eq!(unique.len(), 20, "no job claimed twice");
}

async fn per_node_limit(backend: &str) {
    let (store, _clock, _dir) = common::fresh_store(backend).await;
    for node in ["pve1", "pve1", "pve1", "pve2"] {
        store
            .enqueue_job(&NewJob {
                kind: "k".into(),
                node: Some(node.into()),
                payload_json: "{}".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut nodes = Vec::new();
    while let Some(job) = store.claim_job("w", 60_000, 2).await.unwrap() {
        nodes.push(job.node.unwrap());
    }
    nodes.sort();
    assert_eq!(
        nodes,
        vec!["pve1", "pve1", "pve2"],
        "at most two jobs per node run at once"
    );
}

async fn sessions_tokens_audit_locks(backend: &str) {
    let (store, clock, _dir) = common::fresh_store(backend).await;
    let now = clock_now(&clock);
    let session = SessionRow {
        id_hash: "h1".into(),
        username: "root@pam".into(),
        data_sealed: "v1:k:t".into(),
        csrf_token: "c".into(),
        expires_at: now + 1000,
        created_at: now,
    };
    store.put_session(&session).await.unwrap();
    assert_eq!(store.get_session("h1").await.unwrap(), session);
    // Wizard drafts: bound to their owner, gone when expired or deleted.
    store
        .put_wizard_draft("d1", "root@pam", "v1:k:sealed", now + 1000)
        .await
        .unwrap();
    assert_eq!(
        store.get_wizard_draft("d1", "root@pam").await.unwrap(),
        "v1:k:sealed"
    );
    assert!(store.get_wizard_draft("d1", "alice@pve").await.is_err());
    store
        .put_wizard_draft("d1", "alice@pve", "v1:k:other", now + 1000)
        .await
        .unwrap();
    assert_eq!(
        store.get_wizard_draft("d1", "root@pam").await.unwrap(),
        "v1:k:sealed",
        "another user cannot overwrite a draft"
    );
    store.delete_wizard_draft("d1").await.unwrap();
    assert!(store.get_wizard_draft("d1", "root@pam").await.is_err());
    store
        .put_wizard_draft("d2", "root@pam", "v1:k:s", now + 10)
        .await
        .unwrap();
    assert_eq!(store.count_sessions().await.unwrap(), 1);
    clock.advance(1001);
    assert!(
        store.get_wizard_draft("d2", "root@pam").await.is_err(),
        "expired"
    );
    assert!(
        matches!(store.get_session("h1").await, Err(StoreError::NotFound)),
        "expired sessions are gone"
    );
    assert_eq!(store.purge_expired_sessions().await.unwrap(), 1);

    let token = store
        .create_api_token("root@pam", "ci", "hash1")
        .await
        .unwrap();
    assert!(matches!(
        store.create_api_token("root@pam", "ci", "hash2").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.use_api_token("hash1").await.unwrap().id, token);
    assert!(
        store
            .use_api_token("hash1")
            .await
            .unwrap()
            .last_used
            .is_some()
    );
    assert!(
        matches!(
            store.revoke_api_token("alice@pve", token).await,
            Err(StoreError::NotFound)
        ),
        "only the owner revokes"
    );
    store.revoke_api_token("root@pam", token).await.unwrap();
    assert!(matches!(
        store.use_api_token("hash1").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.list_api_tokens("root@pam").await.unwrap().len(), 1);

    for (actor, action) in [("a", "login"), ("b", "login"), ("a", "logout")] {
        store
            .add_audit(&NewAudit {
                actor: actor.into(),
                action: action.into(),
                remote_addr: "127.0.0.1".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let filter = AuditFilter {
        actor: Some("a".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list_audit(&filter).await.unwrap().len(), 2);
    let filter = AuditFilter {
        action: Some("login".into()),
        limit: 1,
        ..Default::default()
    };
    let first = store.list_audit(&filter).await.unwrap();
    assert_eq!(first[0].actor, "b");
    let filter = AuditFilter {
        action: Some("login".into()),
        before_id: Some(first[0].id),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list_audit(&filter).await.unwrap()[0].actor, "a");

    assert!(store.try_lock("ct:1", "o1", 1000).await.unwrap());
    assert!(
        !store.try_lock("ct:1", "o2", 1000).await.unwrap(),
        "held lock refuses another owner"
    );
    assert!(
        !store.unlock("ct:1", "o2").await.unwrap(),
        "only the owner releases"
    );
    clock.advance(1001);
    assert!(
        store.try_lock("ct:1", "o2", 1000).await.unwrap(),
        "expired lock is taken over"
    );
    assert!(store.unlock("ct:1", "o2").await.unwrap());
    assert!(store.try_lock("ct:1", "o1", 1000).await.unwrap());
    // A lease nobody releases (a dedupe window) is deleted once expired; live ones stay.
    assert!(store.try_lock("notify:1:k", "n", 500).await.unwrap());
    clock.advance(501);
    assert_eq!(store.purge_expired_locks().await.unwrap(), 1);
    assert_eq!(store.purge_expired_locks().await.unwrap(), 0);
    assert!(
        !store.try_lock("ct:1", "o2", 1000).await.unwrap(),
        "a live lease survives the purge"
    );
}

async fn role_grants_and_token_clusters(backend: &str) {
    let (store, _clock, _dir) = common::fresh_store(backend).await;
    let lab = store.insert_cluster(&cluster_input("lab")).await.unwrap();
    let other = store.insert_cluster(&cluster_input("other")).await.unwrap();
    let g = store
        .insert_role_grant("alice@pve", lab, "editor", "root@pam")
        .await
        .unwrap();
    store
        .insert_role_grant("alice@pve", lab, "auditor", "root@pam")
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_role_grant("alice@pve", lab, "editor", "x")
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store
            .insert_role_grant("alice@pve", lab, "superuser", "x")
            .await
            .is_err(),
        "only known roles"
    );
    let mut roles = store.roles_of("alice@pve", lab).await.unwrap();
    roles.sort();
    assert_eq!(roles, ["auditor", "editor"]);
    assert!(
        store.roles_of("alice@pve", other).await.unwrap().is_empty(),
        "a grant is for one cluster"
    );
    store.delete_role_grant(g).await.unwrap();
    assert!(matches!(
        store.delete_role_grant(g).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.list_role_grants().await.unwrap().len(), 1);

    let t = store.create_api_token("bob@pve", "ci", "h").await.unwrap();
    assert_eq!(store.get_api_token(t).await.unwrap().cluster_id, None);
    store.set_api_token_cluster(t, other).await.unwrap();
    assert_eq!(
        store.get_api_token(t).await.unwrap().cluster_id,
        Some(other)
    );
    assert_eq!(store.list_all_api_tokens().await.unwrap().len(), 1);
    store.delete_cluster(other).await.unwrap();
    assert!(
        matches!(store.get_api_token(t).await, Err(StoreError::NotFound)),
        "a cluster's tokens go with it"
    );
    store.delete_cluster(lab).await.unwrap();
    assert!(
        store.list_role_grants().await.unwrap().is_empty(),
        "and its grants"
    );
}

fn clock_now(clock: &ctforge::clock::ManualClock) -> i64 {
    use ctforge::clock::Clock;
    clock.now_ms()
}

async fn presets(backend: &str) {
    let (store, _clock, _dir) = common::fresh_store(backend).await;
    let input = PresetInput {
        name: "web-small".into(),
        template: "nginx".into(),
        values_json: r#"{"memory":512}"#.into(),
        owner: "alice@pve".into(),
        shared: false,
    };
    let id = store.insert_preset(&input).await.unwrap();
    assert!(matches!(
        store.insert_preset(&input).await,
        Err(StoreError::Conflict(_))
    ));
    let stored = store.get_preset("web-small").await.unwrap();
    assert_eq!(stored.id, id);
    assert_eq!(stored.values_json, input.values_json);
    assert!(!stored.shared);
    let renamed = PresetInput {
        name: "web-large".into(),
        shared: true,
        ..input.clone()
    };
    store.update_preset(id, &renamed).await.unwrap();
    assert!(matches!(
        store.get_preset("web-small").await,
        Err(StoreError::NotFound)
    ));
    let listed = store.list_presets().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].shared);
    store.delete_preset(id).await.unwrap();
    assert!(matches!(
        store.delete_preset(id).await,
        Err(StoreError::NotFound)
    ));
}

/// What was applied to a container and the drift monitoring found (migration 0014): one row
/// per container, replaced on write, gone with the container.
async fn applied_and_drift(backend: &str) {
    let (store, _clock, _dir) = common::fresh_store(backend).await;
    let cluster = store.insert_cluster(&cluster_input("c")).await.unwrap();
    let ct = store
        .create_container(&NewContainer {
            cluster_id: cluster,
            node: "pve1".into(),
            vmid: 100,
            hostname: "web".into(),
            template_id: None,
            status: ctforge::status::RecordStatus::Ready,
            spec_json: "{}".into(),
            root_password_sealed: None,
            created_by: "root@pam".into(),
        })
        .await
        .unwrap();
    assert_eq!(store.get_applied_template(ct).await.unwrap(), None);
    let mut applied = AppliedTemplate {
        container_id: ct,
        template_name: "web".into(),
        template_hash: "h1".into(),
        template_json: "{}".into(),
        job_id: None,
        applied_at: 0,
    };
    store.put_applied_template(&applied).await.unwrap();
    applied.template_hash = "h2".into();
    applied.job_id = Some(7);
    store.put_applied_template(&applied).await.unwrap();
    let stored = store.get_applied_template(ct).await.unwrap().unwrap();
    assert_eq!(
        (stored.template_hash.as_str(), stored.job_id),
        ("h2", Some(7))
    );
    assert!(stored.applied_at > 0, "the store stamps it");

    assert_eq!(store.get_container_drift(ct).await.unwrap(), None);
    store
        .put_container_drift(ct, r#"["/etc/motd"]"#)
        .await
        .unwrap();
    store.put_container_drift(ct, "[]").await.unwrap();
    assert_eq!(
        store.get_container_drift(ct).await.unwrap().as_deref(),
        Some("[]")
    );
    assert_eq!(
        store.list_container_drift().await.unwrap(),
        vec![(ct, "[]".to_owned())]
    );
    store.delete_container(ct).await.unwrap();
    assert_eq!(store.get_applied_template(ct).await.unwrap(), None);
    assert!(store.list_container_drift().await.unwrap().is_empty());
}

/// Images (migration 0013): one bake per version, node and storage; superseded, counted, deleted.
async fn images(backend: &str) {
    let (store, _clock, _dir) = common::fresh_store(backend).await;
    let cluster = store.insert_cluster(&cluster_input("lab")).await.unwrap();
    let image = |hash: &str| NewImage {
        cluster_id: cluster,
        template_name: "web".into(),
        content_hash: hash.into(),
        ostemplate: "local:vztmpl/debian-12.tar.zst".into(),
        node: "pve1".into(),
        storage: "local-lvm".into(),
        created_by: "root@pam".into(),
    };
    let old = store.insert_image(&image("aaa")).await.unwrap();
    // One bake at a time per version, node and storage.
    assert!(matches!(
        store.insert_image(&image("aaa")).await,
        Err(StoreError::Conflict(_))
    ));
    store.set_image_vmid(old, 9000).await.unwrap();
    store.set_image_job(old, 7).await.unwrap();
    store.set_image_size(old, 4 << 30).await.unwrap();
    store.set_image_state(old, "ready", None).await.unwrap();
    store.count_image_use(old).await.unwrap();
    let new = store.insert_image(&image("bbb")).await.unwrap();
    store.set_image_state(new, "ready", None).await.unwrap();
    assert_eq!(
        store
            .supersede_images(cluster, "web", "pve1", "local-lvm", "bbb")
            .await
            .unwrap(),
        1
    );
    let stored = store.get_image(old).await.unwrap();
    assert_eq!(
        (
            stored.state.as_str(),
            stored.vmid,
            stored.containers,
            stored.size_bytes
        ),
        ("superseded", Some(9000), 1, Some(4 << 30))
    );
    let found = store
        .find_images(cluster, "web", "pve1", "local-lvm")
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(store.list_images(Some(cluster)).await.unwrap().len(), 2);
    assert_eq!(store.list_images(Some(cluster + 1)).await.unwrap().len(), 0);
    assert_eq!(store.list_images(None).await.unwrap().len(), 2);
    store
        .set_image_state(new, "failed", Some("boom"))
        .await
        .unwrap();
    assert_eq!(
        store.get_image(new).await.unwrap().error.as_deref(),
        Some("boom")
    );
    store.delete_image(old).await.unwrap();
    assert!(matches!(
        store.delete_image(old).await,
        Err(StoreError::NotFound)
    ));
}

/// A checkpoint and its events are one transaction: both or neither.
async fn job_checkpoints(backend: &str) {
    let (store, _clock, _dir) = common::fresh_store(backend).await;
    let job_id = store
        .enqueue_job(&NewJob {
            kind: "k".into(),
            payload_json: "{}".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let claimed = store.claim_job("w1", 30_000, 2).await.unwrap().unwrap();
    assert_eq!(claimed.id, job_id);
    let event = |kind: &str, step: Option<&str>| NewJobEvent {
        kind: kind.to_owned(),
        step: step.map(str::to_owned),
        data: format!("{{\"kind\":\"{kind}\"}}"),
    };
    let seqs = store
        .checkpoint_job(
            job_id,
            "w1",
            JobChange::Begin("create"),
            &[event("step", Some("create"))],
        )
        .await
        .unwrap();
    assert_eq!(seqs, vec![1]);
    assert_eq!(
        store.get_job(job_id).await.unwrap().current_step.as_deref(),
        Some("create")
    );
    // Another worker's checkpoint writes nothing, its events neither.
    assert!(matches!(
        store
            .checkpoint_job(
                job_id,
                "w2",
                JobChange::Complete("create"),
                &[event("complete", Some("create"))],
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.job_events_after(job_id, 0, 100).await.unwrap().len(),
        1
    );
    assert_eq!(store.get_job(job_id).await.unwrap().completed_steps, "");
    let seqs = store
        .checkpoint_job(
            job_id,
            "w1",
            JobChange::Complete("create"),
            &[event("complete", Some("create")), event("note", None)],
        )
        .await
        .unwrap();
    assert_eq!(seqs, vec![2, 3]);
    assert_eq!(
        store.get_job(job_id).await.unwrap().completed_steps,
        "create"
    );
    let finish = JobChange::Finish {
        state: ctforge::status::JobState::Succeeded,
        error: None,
    };
    let seqs = store
        .checkpoint_job(job_id, "w1", finish, &[event("done", None)])
        .await
        .unwrap();
    assert_eq!(seqs, vec![4]);
    let job = store.get_job(job_id).await.unwrap();
    assert_eq!((job.state.as_str(), job.lease_owner), ("succeeded", None));
    // A finished job is not finished again, and no second terminal event is stored.
    assert!(matches!(
        store
            .checkpoint_job(job_id, "w1", finish, &[event("error", None)])
            .await,
        Err(StoreError::NotFound)
    ));
    let kinds: Vec<String> = store
        .job_events_after(job_id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["step", "complete", "note", "done"]);
}

macro_rules! conformance {
    ($($name:ident),*) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name("sqlite").await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name("postgres").await } )*
        }
    };
}

conformance!(
    clusters,
    templates_and_buckets,
    containers_jobs_events,
    job_checkpoints,
    concurrent_claims,
    per_node_limit,
    sessions_tokens_audit_locks,
    role_grants_and_token_clusters,
    presets,
    applied_and_drift,
    images
);
