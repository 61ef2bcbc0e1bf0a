//! Building and running the application: open the store, migrate, bootstrap clusters, bind the
//! listener, serve until a shutdown signal. `App::build` is what `serve` and the tests call.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::http::HeaderName;
use axum::routing::get;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::secrets::Keyring;
use crate::state::AppState;
use crate::storage::{self, Store};
use crate::web;

/// A built application: listener bound, database migrated, ready to serve.
pub struct App {
    listener: tokio::net::TcpListener,
    state: AppState,
}

/// Opens the store for `config` and applies migrations.
pub async fn open_store(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.database_url();
    let store = storage::connect(&url, clock).await.with_context(|| {
        format!(
            "cannot open database {}; check CTFORGE_DATABASE_URL and that the server is running",
            crate::config::redact_url(&url)
        )
    })?;
    store
        .migrate()
        .await
        .context("cannot apply database migrations")?;
    Ok(store)
}

/// Loads the keyring from the configuration or `<data-dir>/secret.key`.
pub fn open_keyring(config: &Config) -> anyhow::Result<Keyring> {
    let keyring = match &config.secret_key {
        Some(key) => Keyring::from_config(key.expose()).context("invalid CTFORGE_SECRET_KEY")?,
        None => Keyring::load_or_create(&config.data_dir).context("cannot load the secret key")?,
    };
    Ok(keyring)
}

impl App {
    /// Builds the application with the system clock.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with(config, Arc::new(SystemClock)).await
    }

    /// Builds the application with the given clock.
    pub async fn build_with(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let started = Instant::now();
        let addr = config.listen_addr()?;
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("cannot create data directory {}", config.data_dir.display())
        })?;
        let listener = bind(addr).await?;
        let keyring = open_keyring(&config)?;
        let store = open_store(&config, clock.clone()).await?;
        store.record_key(keyring.active_key_id()).await?;
        bootstrap_clusters(&config, store.as_ref(), &keyring).await?;
        let state = AppState {
            config: Arc::new(config),
            store,
            keyring: Arc::new(keyring),
            clock,
            started,
        };
        Ok(Self { listener, state })
    }

    /// The bound port (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves; in-flight requests finish first.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = router(self.state.clone());
        tracing::info!(addr = %self.listener.local_addr()?, "ctforge listening");
        axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("server error")
    }
}

async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "the port is in use; stop the other process or choose another with --listen"
            }
            std::io::ErrorKind::PermissionDenied => "permission denied; use a port above 1024",
            _ => "check the --listen address",
        };
        anyhow::anyhow!("cannot listen on {addr}: {e}; {hint}")
    })
}

/// Creates the `[[clusters]]` of the configuration that do not exist yet (by name).
async fn bootstrap_clusters(
    config: &Config,
    store: &dyn Store,
    keyring: &Keyring,
) -> anyhow::Result<()> {
    use crate::storage::StoreError;
    use crate::storage::model::ClusterInput;
    for cluster in &config.clusters {
        match store.get_cluster_by_name(&cluster.name).await {
            Ok(_) => continue,
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let seal = |value: Option<&str>| value.map(|v| keyring.seal(v)).transpose();
        let ssh_key = match &cluster.ssh_key_file {
            Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
                format!(
                    "cannot read ssh_key_file {} of cluster {:?}",
                    path.display(),
                    cluster.name
                )
            })?),
            None => None,
        };
        let input = ClusterInput {
            name: cluster.name.clone(),
            url: cluster.url.clone(),
            token_id: cluster.token_id.clone(),
            token_secret_sealed: seal(cluster.token_secret.as_ref().map(|s| s.expose()))?,
            fingerprint: cluster.fingerprint.clone(),
            ssh_user: cluster.ssh_user.clone(),
            ssh_port: i64::from(cluster.ssh_port),
            ssh_password_sealed: seal(cluster.ssh_password.as_ref().map(|s| s.expose()))?,
            ssh_key_sealed: seal(ssh_key.as_deref())?,
            ssh_host_key: cluster.ssh_host_key.clone(),
            is_default: cluster.default,
        };
        store.insert_cluster(&input).await?;
        tracing::info!(cluster = %cluster.name, "cluster bootstrapped from configuration");
    }
    Ok(())
}

/// The full router with its middleware.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(web::health::healthz))
        .route("/readyz", get(web::health::readyz))
        .with_state(state)
        .layer(CompressionLayer::new())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down; waiting up to 30 s for in-flight requests");
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        std::process::exit(0);
    });
}
