//! Building and running the application: open the store, migrate, bootstrap clusters, bind the
//! listener, serve until a shutdown signal. `App::build` is what `serve` and the tests call.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::http::HeaderName;
use tokio_util::sync::CancellationToken;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::limiter::LoginLimiter;
use crate::auth::session::{DbSessions, RedisSessions, SessionStore};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::events::{self, EventBus, JobProgress};
use crate::jobs::{JobQueue, JobRegistry, Worker, WorkerHandle, WorkerOptions};
use crate::locks::{DbLocks, Locks, RedisLocks};
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

/// Redis channel prefix of the progress event bus with the default `redis_prefix`.
pub const BUS_PREFIX: &str = "ctforge:events:";

/// Redis channel prefix of the progress event bus: `<redis_prefix>events:`.
pub fn bus_prefix(config: &Config) -> String {
    format!("{}events:", config.redis_prefix)
}

/// Creates the data directory readable by ctforge's user only (0700: it holds the secret key
/// and the SQLite database) and tightens an existing one that others can read.
pub fn create_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let context = || format!("cannot create data directory {}", dir.display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(context)?;
        let mode = std::fs::metadata(dir)
            .with_context(context)?
            .permissions()
            .mode();
        if mode & 0o077 != 0
            && let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        {
            tracing::warn!(
                "the data directory {} is readable by others and cannot be made private (0700): {e}",
                dir.display()
            );
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).with_context(context)?;
    Ok(())
}

/// Everything but the listener: store (migrated), keyring, clusters, sessions, event bus, job
/// queue. `serve` (through [`App::build`]) and `worker` both start from here.
pub async fn build_state(
    config: Config,
    clock: Arc<dyn Clock>,
    bus: Option<Arc<dyn EventBus>>,
) -> anyhow::Result<AppState> {
    let started = Instant::now();
    create_data_dir(&config.data_dir)?;
    let keyring = open_keyring(&config)?;
    let store = open_store(&config, clock.clone()).await?;
    store.record_key(keyring.active_key_id()).await?;
    bootstrap_clusters(&config, store.as_ref(), &keyring).await?;
    crate::notify::targets::bootstrap(&config, store.as_ref(), &keyring).await?;
    let sessions: Arc<dyn SessionStore> = match &config.redis_url {
        Some(url) => Arc::new(
            RedisSessions::connect(url.expose(), &config.redis_prefix)
                .await
                .context("cannot connect to Redis; check CTFORGE_REDIS_URL and that the server is running")?,
        ),
        None => Arc::new(DbSessions(store.clone())),
    };
    let locks: Arc<dyn Locks> = match &config.redis_url {
        Some(url) => Arc::new(
            RedisLocks::connect(url.expose(), &format!("{}lock:", config.redis_prefix))
                .await
                .context("cannot connect to Redis for locks; check CTFORGE_REDIS_URL and that the server is running")?,
        ),
        None => Arc::new(DbLocks(store.clone())),
    };
    let bus = match bus {
        Some(bus) => bus,
        None => events::connect(
            config.redis_url.as_ref().map(|u| u.expose()),
            &bus_prefix(&config),
        )
        .await
        .context("cannot open the event bus; check CTFORGE_REDIS_URL and that Redis is running")?,
    };
    let registry = Arc::new(JobRegistry::new());
    let notifier = Arc::new(crate::notify::Notifier::new(
        config.notifications.queue_capacity,
        Arc::new(
            crate::notify::transport::NetTransport::new(Duration::from_secs(
                config.notifications.timeout_secs.max(1),
            ))
            .map_err(|e| anyhow::anyhow!("notifications: {e}"))?,
        ),
    ));
    let progress =
        JobProgress::new(store.clone(), bus.clone(), clock.clone()).with_observer(notifier.clone());
    let channel =
        crate::jobs::WakeChannel::choose(config.redis_url.is_some(), store.as_ref(), &bus);
    let jobs = Arc::new(JobQueue::new(store.clone(), progress, registry).with_channel(channel));
    let keyring = Arc::new(keyring);
    let pve: Arc<dyn crate::pve::PveConnector> =
        Arc::new(crate::pve::PooledConnector::new(keyring.clone()));
    let trust_first_use = config.provisioning.ssh_trust_on_first_use;
    let state = AppState {
        config: Arc::new(config),
        pve: pve.clone(),
        guests: Arc::new(crate::guest::SshConnector::new(
            store.clone(),
            keyring.clone(),
            pve,
            trust_first_use,
        )),
        permissions: Arc::default(),
        down: Arc::default(),
        reads: Arc::default(),
        store,
        sessions,
        limiter: Arc::new(LoginLimiter::default()),
        keyring,
        clock,
        started,
        bus,
        jobs,
        locks,
        notifier,
        shutdown: CancellationToken::new(),
    };
    register_job_handlers(&state);
    Ok(state)
}

/// Registers the handler of every job kind (the one place; `serve` and `worker` both use it).
pub fn register_job_handlers(state: &AppState) {
    let create = Arc::new(
        crate::provisioning::pipeline::CreateContainer::new(
            state.store.clone(),
            state.keyring.clone(),
            state.pve.clone(),
            state.guests.clone(),
        )
        .with_limits(crate::provisioning::waits::Limits::from(
            &state.config.provisioning,
        ))
        .with_auto_build(state.config.images.auto_build),
    );
    state.jobs.registry().register(create.clone());
    state
        .jobs
        .registry()
        .register(Arc::new(crate::images::bake::BakeImage::new(
            state.store.clone(),
            state.pve.clone(),
            state.locks.clone(),
            create,
        )));
    state
        .jobs
        .registry()
        .register(Arc::new(crate::containers::migrate::MigrateContainer::new(
            state.store.clone(),
            state.pve.clone(),
            state.guests.clone(),
            state.locks.clone(),
        )));
    let bulk = Arc::new(crate::containers::bulk::BulkAction::new(
        state.store.clone(),
        state.pve.clone(),
        state.locks.clone(),
    ));
    state.jobs.registry().register(bulk.clone());
    let reapply = Arc::new(
        crate::containers::reapply::Reapply::new(
            state.store.clone(),
            state.pve.clone(),
            state.locks.clone(),
            state.guests.clone(),
            Arc::new(
                crate::provisioning::pipeline::CreateContainer::new(
                    state.store.clone(),
                    state.keyring.clone(),
                    state.pve.clone(),
                    state.guests.clone(),
                )
                .with_limits(crate::provisioning::waits::Limits::from(
                    &state.config.provisioning,
                )),
            ),
        )
        .with_keep_snapshots(state.config.images.keep_reapply_snapshots),
    );
    state.jobs.registry().register(reapply.clone());
    state
        .jobs
        .registry()
        .register(Arc::new(crate::fleet::job::FleetApply::new(
            state.store.clone(),
            state.pve.clone(),
            state.locks.clone(),
            bulk,
            reapply,
            Arc::downgrade(&state.jobs),
        )));
    state
        .jobs
        .registry()
        .register(Arc::new(crate::provisioning::batch::CreateBatch::new(
            state.store.clone(),
            Arc::downgrade(&state.jobs),
        )));
}

/// Starts this process's job workers with the `[workers]` configuration.
pub fn start_workers(state: &AppState) -> WorkerHandle {
    Worker::new(
        state.jobs.clone(),
        WorkerOptions {
            log: state.config.job_log,
            ..WorkerOptions::from_config(&state.config.workers)
        },
    )
    .spawn()
}

impl App {
    /// Builds the application with the system clock.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with(config, Arc::new(SystemClock)).await
    }

    /// Builds the application with the given clock.
    pub async fn build_with(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        Self::build_custom(config, clock, None).await
    }

    /// Builds the application with the given clock and, if given, event bus (instead of the
    /// one the configuration selects; tests use it to isolate Redis channels).
    pub async fn build_custom(
        config: Config,
        clock: Arc<dyn Clock>,
        bus: Option<Arc<dyn EventBus>>,
    ) -> anyhow::Result<Self> {
        let addr = config.listen_addr()?;
        create_data_dir(&config.data_dir)?;
        let listener = bind(addr).await?;
        let state = build_state(config, clock, bus).await?;
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
        let workers =
            (self.state.config.workers.concurrency > 0).then(|| start_workers(&self.state));
        let monitor = if workers.is_some() {
            crate::containers::monitor::spawn(&self.state)
        } else {
            None
        };
        let git_schedule = crate::templates::manage::spawn_git_schedule(&self.state);
        let image_gc = if workers.is_some() {
            crate::images::spawn_gc(&self.state)
        } else {
            None
        };
        let notifications = crate::notify::dispatch::spawn(&self.state);
        let backup_schedule = crate::backup::schedule::spawn(&self.state);
        let stopping = self.state.shutdown.clone();
        // Without TCP_NODELAY a small write (an SSE event, the end of a chunked page) waits
        // for the client's delayed ACK of the previous one: tens of ms on every live update.
        let listener = axum::serve::ListenerExt::tap_io(self.listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
            }
        });
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopping.cancel();
        })
        .await;
        self.state.shutdown.cancel();
        if let Some(git_schedule) = git_schedule {
            git_schedule.abort();
        }
        if let Some(image_gc) = image_gc {
            image_gc.abort();
        }
        if let Some(backup_schedule) = backup_schedule {
            backup_schedule.abort();
        }
        if let Some(monitor) = monitor {
            monitor.stop().await;
        }
        if let Some(workers) = workers {
            workers.stop().await;
        }
        if let Some(notifications) = notifications {
            notifications.stop().await;
        }
        served.context("server error")
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
    for n in &config.node_ssh {
        let cluster = store
            .get_cluster_by_name(&n.cluster)
            .await
            .with_context(|| {
                format!(
                    "[[node_ssh]] names cluster {:?}, which does not exist",
                    n.cluster
                )
            })?;
        store
            .set_node_ssh_override(
                cluster.id,
                &n.node,
                n.address.as_deref(),
                n.port.map(i64::from),
            )
            .await?;
        // A key written in the file is the admin's confirmation.
        if let Some(key) = n
            .host_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
        {
            let key = crate::clusters::normalise_host_key(key).with_context(|| {
                format!(
                    "[[node_ssh]] host_key of node {:?} is not a SHA256 fingerprint",
                    n.node
                )
            })?;
            store
                .pin_node_host_key(cluster.id, &n.node, Some(&key))
                .await?;
        }
    }
    Ok(())
}

/// Every registered route and method (for tests and the OpenAPI document).
pub fn route_table() -> &'static [crate::routes::RouteInfo] {
    crate::routes::table()
}

/// The full router with its middleware.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let routes = crate::routes::all();
    let protected = routes
        .protected
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::middleware::require_auth,
        ));
    crate::metrics::install();
    routes
        .public
        .merge(protected)
        .route_layer(axum::middleware::from_fn(crate::metrics::track))
        .fallback(not_found)
        .with_state(state.clone())
        .layer(axum::middleware::from_fn(crate::api::json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state,
            web::errors::html_errors,
        ))
        .layer(axum::middleware::from_fn(web::security::headers))
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

async fn not_found(uri: axum::http::Uri) -> crate::error::AppError {
    crate::error::AppError::NotFound(format!("page {}", uri.path()))
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
