//! The application over real HTTP: health, readiness on both databases, request ids,
//! graceful shutdown, secrets rotation.

#![allow(clippy::unwrap_used)]

use crate::common;

use ctforge::config::{CliOverrides, Config, Secret};

#[tokio::test]
async fn healthz_and_readyz_on_sqlite_and_postgres() {
    for backend in ["sqlite", "postgres"] {
        let app = common::spawn_app(backend).await;
        let health = app
            .client
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        assert!(
            health.headers().contains_key("x-request-id"),
            "every response carries a request id"
        );
        let ready = app
            .client
            .get(format!("{}/readyz", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200, "{backend}");
        let body: serde_json::Value = ready.json().await.unwrap();
        assert_eq!(body["checks"]["database"]["ok"], true);
        if backend == "sqlite" {
            assert!(
                app.data_dir.path().join("ctforge.db").exists(),
                "SQLite database created in the data dir"
            );
            assert!(app.data_dir.path().join("secret.key").exists());
        }
        app.stop().await.unwrap();
    }
}

#[tokio::test]
async fn shutdown_stops_listening() {
    let app = common::spawn_app("sqlite").await;
    let address = app.address.clone();
    assert_eq!(
        reqwest::get(format!("{address}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await.unwrap();
    assert!(
        reqwest::get(format!("{address}/healthz")).await.is_err(),
        "no longer listening"
    );
}

async fn rotation_loses_nothing(backend: &str) {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = Config::load_from(&CliOverrides::default(), &[])
        .unwrap()
        .config;
    config.data_dir = data_dir.path().to_owned();
    if backend == "postgres" {
        config.database_url = Some(Secret::new(common::fresh_pg_url().await));
    }
    let clock = std::sync::Arc::new(ctforge::clock::SystemClock);
    let store = ctforge::startup::open_store(&config, clock).await.unwrap();
    let keyring = ctforge::startup::open_keyring(&config).unwrap();
    let old_key = keyring.active_key_id().to_owned();
    store.record_key(&old_key).await.unwrap();

    let mut input = ctforge::storage::model::ClusterInput {
        name: "c".into(),
        url: "https://x:8006".into(),
        token_id: "root@pam!t".into(),
        ssh_user: "root".into(),
        ssh_port: 22,
        ..Default::default()
    };
    input.token_secret_sealed = Some(keyring.seal("token-secret").unwrap());
    input.ssh_password_sealed = Some(keyring.seal("ssh-pw").unwrap());
    let cluster = store.insert_cluster(&input).await.unwrap();
    let mut expected = vec!["token-secret".to_owned(), "ssh-pw".to_owned()];
    let new = ctforge::storage::model::NewContainer {
        cluster_id: cluster,
        node: "pve1".into(),
        vmid: 100,
        hostname: "h".into(),
        status: "ready".into(),
        spec_json: "{}".into(),
        root_password_sealed: Some(keyring.seal("root-pw").unwrap()),
        ..Default::default()
    };
    let (ct, _) = store
        .create_container_with_job(
            &new,
            &ctforge::storage::model::NewJob {
                kind: "k".into(),
                payload_json: "{}".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    expected.push("root-pw".into());
    for i in 0..50 {
        store
            .put_credential(
                ct,
                &format!("cred{i}"),
                &keyring.seal(&format!("value {i} ☃")).unwrap(),
            )
            .await
            .unwrap();
        expected.push(format!("value {i} ☃"));
    }
    store
        .put_session(&ctforge::storage::model::SessionRow {
            id_hash: "s".into(),
            username: "root@pam".into(),
            data_sealed: keyring.seal("ticket").unwrap(),
            csrf_token: "c".into(),
            expires_at: i64::MAX,
            created_at: 0,
        })
        .await
        .unwrap();
    expected.push("ticket".into());

    ctforge::cli::rotate(&config).await.unwrap();

    let rotated = ctforge::startup::open_keyring(&config).unwrap();
    assert_ne!(rotated.active_key_id(), old_key);
    assert_eq!(rotated.key_ids().len(), 1, "the old key is retired");
    let sealed = store.list_sealed().await.unwrap();
    let mut opened: Vec<String> = sealed
        .iter()
        .map(|s| {
            assert_eq!(
                ctforge::secrets::Keyring::sealed_key_id(&s.value),
                Some(rotated.active_key_id())
            );
            rotated.open(&s.value).unwrap().expose().to_owned()
        })
        .collect();
    opened.sort();
    expected.sort();
    assert_eq!(opened, expected, "every secret survives rotation");
    let keys = store.list_keys().await.unwrap();
    assert!(
        keys.iter()
            .any(|(id, _, retired)| *id == old_key && retired.is_some())
    );
}

#[tokio::test]
async fn secrets_rotate_loses_nothing_sqlite() {
    rotation_loses_nothing("sqlite").await;
}

#[tokio::test]
async fn secrets_rotate_loses_nothing_postgres() {
    rotation_loses_nothing("postgres").await;
}
