//! Test helpers shared by the integration test binaries: fresh databases on every backend and
//! `spawn_app()`, which starts the real application on port 0.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod lxc;
pub mod pve;

use std::sync::Arc;

use ctforge::clock::{Clock, ManualClock};
use ctforge::config::{CliOverrides, Config};
use ctforge::storage::{self, Store};

/// The PostgreSQL server used by tests (`CTFORGE_TEST_PG_URL`, default the local server).
pub fn pg_admin_url() -> String {
    std::env::var("CTFORGE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Creates a new, empty PostgreSQL database and returns its URL.
pub async fn fresh_pg_url() -> String {
    use sqlx::Executor;
    let admin = pg_admin_url();
    let name = format!("ctforge_test_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must run for the tests ({admin}): {e}"));
    pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create test database");
    pool.close().await;
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .unwrap_or(admin);
    format!("{base}/{name}")
}

/// A store on the given backend with a manual clock, migrated.
pub async fn fresh_store(backend: &str) -> (Arc<dyn Store>, Arc<ManualClock>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = match backend {
        "sqlite" => format!("sqlite://{}", dir.path().join("test.db").display()),
        _ => fresh_pg_url().await,
    };
    let clock = ManualClock::new(1_700_000_000_000);
    let store = storage::connect(&url, clock.clone() as Arc<dyn Clock>)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    (store, clock, dir)
}

/// A running application.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// Data directory (removed on drop).
    pub data_dir: tempfile::TempDir,
    /// HTTP client.
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    /// The application state (store, keyring, sessions) for arranging test data.
    pub state: ctforge::state::AppState,
    /// The server task.
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.handle).await?
    }
}

/// Starts the real application on port 0 with a fresh database on `backend`.
pub async fn spawn_app(backend: &str) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts the real application after letting `adjust` change the configuration.
pub async fn spawn_app_with(backend: &str, adjust: impl FnOnce(&mut Config)) -> TestApp {
    ctforge::install_crypto_provider();
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::load_from(&CliOverrides::default(), &[])
        .expect("config")
        .config;
    config.listen = "127.0.0.1:0".to_owned();
    config.data_dir = data_dir.path().to_owned();
    if backend == "postgres" {
        config.database_url = Some(ctforge::config::Secret::new(fresh_pg_url().await));
    }
    // Simulated containers have made-up addresses: never probe them from the test machine.
    // Tests that probe real or local servers turn this back on.
    config.monitoring.web_links = false;
    // Tests change the simulator behind ctforge's back and look at once: no shared window
    // (reads in flight are still shared). Tests of the window set it.
    config.dashboard.fresh_ms = 0;
    // A bake after every templated creation would add jobs and guests other tests count;
    // the images tests turn it back on.
    config.images.auto_build = false;
    // The simulators of most tests are made fresh with new host keys: pin them on first use.
    // Tests of the confirmation (`settings::node_host_keys_*`) turn this off.
    config.provisioning.ssh_trust_on_first_use = true;
    adjust(&mut config);
    let app = ctforge::startup::App::build(config)
        .await
        .expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        address,
        data_dir,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        shutdown: Some(tx),
        state,
        handle,
    }
}

/// Starts the real application with `adjust`ed configuration and, if given, this event bus
/// instead of the configured one (tests isolate Redis channels with it).
pub async fn spawn_app_custom(
    backend: &str,
    adjust: impl FnOnce(&mut Config),
    bus: Option<Arc<dyn ctforge::events::EventBus>>,
) -> TestApp {
    spawn_app_clocked(backend, adjust, bus, Arc::new(ctforge::clock::SystemClock)).await
}

/// Starts the real application with the given clock (tests move time).
pub async fn spawn_app_clocked(
    backend: &str,
    adjust: impl FnOnce(&mut Config),
    bus: Option<Arc<dyn ctforge::events::EventBus>>,
    clock: Arc<dyn ctforge::clock::Clock>,
) -> TestApp {
    ctforge::install_crypto_provider();
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::load_from(&CliOverrides::default(), &[])
        .expect("config")
        .config;
    config.listen = "127.0.0.1:0".to_owned();
    config.data_dir = data_dir.path().to_owned();
    if backend == "postgres" {
        config.database_url = Some(ctforge::config::Secret::new(fresh_pg_url().await));
    }
    // Simulated containers have made-up addresses: never probe them from the test machine.
    // Tests that probe real or local servers turn this back on.
    config.monitoring.web_links = false;
    // Tests change the simulator behind ctforge's back and look at once: no shared window
    // (reads in flight are still shared). Tests of the window set it.
    config.dashboard.fresh_ms = 0;
    // A bake after every templated creation would add jobs and guests other tests count;
    // the images tests turn it back on.
    config.images.auto_build = false;
    // The simulators of most tests are made fresh with new host keys: pin them on first use.
    // Tests of the confirmation (`settings::node_host_keys_*`) turn this off.
    config.provisioning.ssh_trust_on_first_use = true;
    adjust(&mut config);
    let app = ctforge::startup::App::build_custom(config, clock, bus)
        .await
        .expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        address,
        data_dir,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        shutdown: Some(tx),
        state,
        handle,
    }
}

/// The simulator an integration test talks to: TLS (its fingerprint is pinned by
/// [`sim_cluster`]), the SSH `pct` endpoint, and `scenario` (TOML as for `ctforge sim
/// --scenario`; empty for none). `adjust` sets what differs per test (nodes, timings, generated
/// containers).
pub async fn sim(
    scenario: &str,
    adjust: impl FnOnce(ctforge_pve_sim::SimConfig) -> ctforge_pve_sim::SimConfig,
) -> ctforge_pve_sim::SimHandle {
    let mut config = ctforge_pve_sim::SimConfig::for_tests()
        .with_tls(true)
        .with_ssh();
    if !scenario.trim().is_empty() {
        let parsed: ctforge_pve_sim::scenario::Scenario = toml::from_str(scenario)
            .unwrap_or_else(|e| panic!("the test's simulator scenario does not parse: {e}"));
        config = config.with_scenario(parsed);
    }
    ctforge_pve_sim::start(adjust(config))
        .await
        .unwrap_or_else(|e| panic!("the simulator did not start: {e}"))
}

/// The `[[clusters]]` entry for a running simulator (API token, pinned TLS fingerprint, SSH
/// password when the simulator has SSH).
pub fn sim_cluster(sim: &ctforge_pve_sim::SimHandle) -> ctforge::config::ClusterBootstrap {
    use ctforge::config::Secret;
    ctforge::config::ClusterBootstrap {
        name: "sim".into(),
        url: sim.base_url.clone(),
        token_id: sim.token_id.clone(),
        token_secret: Some(Secret::new(sim.token_secret.clone())),
        token_secret_file: None,
        fingerprint: Some(sim.fingerprint.clone()),
        ssh_user: "root".into(),
        ssh_port: sim.ssh_addr.map(|a| a.port()).unwrap_or(22),
        ssh_password: Some(Secret::new(sim.root_password.clone())),
        ssh_key_file: None,
        ssh_host_key: None,
        default: true,
        allow_insecure_http: false,
    }
}

/// The cluster sessions made directly in tests are signed in to: the oldest stored cluster, or
/// a placeholder `home` (never contacted) stored now. With no `[[clusters]]` configured, its
/// `root@pam` is the bootstrap ctforge admin.
pub async fn home_cluster(state: &ctforge::state::AppState) -> i64 {
    let clusters = state.store.list_clusters().await.expect("clusters");
    if let Some(id) = clusters.iter().map(|c| c.id).min() {
        return id;
    }
    state
        .store
        .insert_cluster(&ctforge::storage::model::ClusterInput {
            name: "home".into(),
            url: "https://home.invalid:8006".into(),
            token_id: "root@pam!ctforge".into(),
            token_secret_sealed: None,
            fingerprint: None,
            ssh_user: "root".into(),
            ssh_port: 22,
            ssh_password_sealed: None,
            ssh_key_sealed: None,
            ssh_host_key: None,
            is_default: true,
        })
        .await
        .expect("placeholder cluster")
}

/// A session signed in through `POST /api/v1/auth/login` (a real Proxmox login against the
/// simulator): the `Cookie` header value and the CSRF token for state changes.
pub struct ApiSession {
    /// `ctforge_session=…`.
    pub cookie: String,
    /// For `X-CSRF-Token`.
    pub csrf: String,
}

impl ApiSession {
    /// The session token alone (what a browser cookie holds).
    pub fn token(&self) -> &str {
        self.cookie.trim_start_matches("ctforge_session=")
    }

    /// `POST {base}{path}` with the session and its CSRF token.
    pub async fn post(
        &self,
        client: &reqwest::Client,
        base: &str,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        client
            .post(format!("{base}{path}"))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `DELETE {base}{path}` with the session and its CSRF token.
    pub async fn delete(
        &self,
        client: &reqwest::Client,
        base: &str,
        path: &str,
    ) -> reqwest::Response {
        client
            .delete(format!("{base}{path}"))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .send()
            .await
            .unwrap()
    }
}

/// Posts the wizard's form (`POST {base}/containers/new`) with `fields` as the session of
/// `cookie` (`ctforge_session=…`), its CSRF token added: status, `Location` and page.
pub async fn post_wizard(
    client: &reqwest::Client,
    base: &str,
    cookie: &str,
    csrf: &str,
    fields: &[(&str, &str)],
) -> (u16, String, String) {
    let mut form = vec![("csrf_token", csrf)];
    form.extend_from_slice(fields);
    let r = client
        .post(format!("{base}/containers/new"))
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    status_location_body(r).await
}

/// Signs `username` in at `base` (`http://127.0.0.1:PORT`); panics unless Proxmox accepts it.
pub async fn api_login(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
    realm: &str,
) -> ApiSession {
    let login = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({ "username": username, "password": password, "realm": realm }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "sign-in of {username}@{realm}");
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = login.json::<serde_json::Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    ApiSession { cookie, csrf }
}

/// A form post's answer as a browser meets it: status, `Location` (empty when none), body.
pub async fn status_location_body(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, location, r.text().await.unwrap_or_default())
}

/// Writes `vm-web-ssh` under `root` (beside the shipped `vm-web`): the same template with the
/// guest agent turned off (`TEMPLATE_AGENT=0`) and a cloud-init user-data that installs no
/// agent, so ctforge can only reach the VM over SSH.
pub fn vm_without_agent(root: &std::path::Path) {
    let from = root.join("vm-web");
    let to = root.join("vm-web-ssh");
    copy_dir(&from, &to);
    let conf = std::fs::read_to_string(to.join("template.conf")).unwrap();
    std::fs::write(
        to.join("template.conf"),
        format!("{conf}TEMPLATE_AGENT=0\n"),
    )
    .unwrap();
    std::fs::write(
        to.join("cloud-init/user-data.yaml"),
        "#cloud-config\n# No guest agent: ctforge reaches this VM over SSH with its own key.\nssh_pwauth: false\n",
    )
    .unwrap();
}

/// Copies directory `from` (a template, a fixture) to `to`, recursively.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
