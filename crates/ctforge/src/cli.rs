//! The command line: `ctforge serve|worker|migrate|sim|templates|ct|apply|presets|jobs|clusters|
//! tokens|buckets|images|notifications|roles|audit|auth|template-sources|guests|api|config|
//! secrets|backup|restore|completions|man` (the API operations without a hand-written command
//! come from the table of `cli_ops`).
//!
//! Every failure ends in one `error: …` line on stderr and a non-zero exit code; no panics,
//! no backtraces.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::clock::SystemClock;
use crate::config::{CliOverrides, Config};
use crate::secrets::generate_key;
use crate::startup::{self, App};

/// Templates to provisioned, managed LXC containers on Proxmox VE.
#[derive(Debug, Parser)]
#[command(name = "ctforge", version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CTFORGE_GIT_REVISION"), ")"))]
pub struct Cli {
    /// Configuration file (default: <data-dir>/ctforge.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for the database, secret key and state [env: CTFORGE_DATA_DIR] [default: ./data].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL, sqlite://… or postgres://… [env: CTFORGE_DATABASE_URL].
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the web UI, the JSON API and in-process workers.
    Serve(ServeArgs),
    /// Run background job workers only (scale-out profile).
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Run the built-in Proxmox VE simulator.
    Sim(ctforge_pve_sim::cli::SimArgs),
    /// Validate, discover and export templates.
    #[command(subcommand)]
    Templates(TemplatesCommand),
    /// Manage containers through a running ctforge's API (needs an API token).
    Ct {
        #[command(flatten)]
        connection: crate::ct_client::Connection,
        #[command(subcommand)]
        command: crate::ct_client::CtCommand,
    },
    /// Converge on a fleet file: plan, then create, change and (with --prune) remove
    /// containers (exit 0 no changes, 2 changes applied, 1 error).
    Apply {
        #[command(flatten)]
        connection: crate::ct_client::Connection,
        #[command(flatten)]
        args: crate::cli_api::ApplyArgs,
    },
    /// Saved creation answers (presets) through the API.
    Presets {
        #[command(flatten)]
        connection: crate::ct_client::Connection,
        #[command(subcommand)]
        command: crate::cli_api::PresetsCommand,
    },
    /// Jobs through the API.
    Jobs {
        #[command(flatten)]
        connection: crate::ct_client::Connection,
        #[command(subcommand)]
        command: crate::cli_api::JobsCommand,
    },
    /// Proxmox clusters through the API (admins).
    Clusters {
        #[command(flatten)]
        connection: crate::ct_client::Connection,
        #[command(subcommand)]
        command: crate::cli_api::ClustersCommand,
    },
    /// Your API tokens through the API.
    Tokens {
        #[command(flatten)]
        connection: crate::ct_client::Connection,
        #[command(subcommand)]
        command: crate::cli_api::TokensCommand,
    },
    /// Package buckets through the API (editors).
    Buckets {
        #[command(flatten)]
        connection: crate::ct_client::Connection,
        #[command(subcommand)]
        command: crate::cli_ops::Ops<{ crate::cli_ops::BUCKETS }>,
    },
    /// Baked images through the API.
    Images {
        #[command(flatten)]
        connection: crate::ct_client::Connection,
        #[command(subcommand)]
        command: crate::cli_ops::Ops<{ crate::cli_ops::IMAGES }>,
    },
    /// Notification targets and deliveries through the API (admins).
    Notifications {
        #[command(flatten)]
        connection: crate::ct_client::Connection,
        #[command(subcommand)]
        command: crate::cli_ops::Ops<{ crate::cli_ops::NOTIFICATIONS }>,
    },
    /// ctforge role grants through the API (admins).
    Roles {
        #[command(flatten)]
        connection: crate::ct_client::Connection,
        #[command(subcommand)]
        command: crate::cli_ops::Ops<{ crate::cli_ops::ROLES }>,
    },
    /// The audit log through the API (auditors).
    Audit {
        #[command(flatten)]
        connection: crate::ct_client::Connection,
        #[command(subcommand)]
        command: crate::cli_ops::Ops<{ crate::cli_ops::AUDIT }>,
    },
    /// Who the token acts as.
    Auth {
        #[command(flatten)]
        connection: crate::ct_client::Connection,
        #[command(subcommand)]
        command: crate::cli_ops::Ops<{ crate::cli_ops::AUTH }>,
    },
    /// The git sources of templates and their deploy keys through the API.
    TemplateSources {
        #[command(flatten)]
        connection: crate::ct_client::Connection,
        #[command(subcommand)]
        command: crate::cli_ops::Ops<{ crate::cli_ops::TEMPLATE_SOURCES }>,
    },
    /// Containers and VMs through the API (`/api/v1/guests`).
    Guests {
        #[command(flatten)]
        connection: crate::ct_client::Connection,
        #[command(subcommand)]
        command: crate::cli_ops::Ops<{ crate::cli_ops::GUESTS }>,
    },
    /// Any JSON API operation: `ctforge api GET /api/v1/containers`.
    Api {
        #[command(flatten)]
        connection: crate::ct_client::Connection,
        #[command(flatten)]
        args: crate::cli_api::RawArgs,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (or write one page per command into --dir).
    Man {
        /// Directory for `ctforge.1` and a page per subcommand.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage the keys that encrypt secrets at rest.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Write an encrypted backup of the database and the secret key (safe while ctforge runs).
    Backup {
        /// The backup file to write (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// File whose first line is the passphrase [default: `[backup] passphrase_file`].
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Restore a backup into an empty data directory (and an empty database).
    Restore {
        /// The backup file.
        file: PathBuf,
        /// File whose first line is the passphrase [default: `[backup] passphrase_file`].
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Check that a running ctforge is ready (`GET /readyz`); exit 0 when it is (for container
    /// health checks and scripts).
    Healthcheck {
        /// Base URL of the instance [default: http://<listen address>].
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on [env: CTFORGE_LISTEN] [default: 127.0.0.1:8080].
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Also start the built-in Proxmox simulator with example templates.
    #[arg(long)]
    demo: bool,
    /// A templates root to scan besides the configured ones (repeatable).
    #[arg(long = "templates", value_name = "DIR")]
    templates: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum TemplatesCommand {
    /// Check template directories and print `path:line: severity: message`.
    Validate {
        /// Template directories.
        dirs: Vec<PathBuf>,
    },
    /// Scan the templates roots and store what changed.
    Discover {
        /// A root to scan instead of the configured ones.
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Fetch the `[[templates.git]]` repositories, then scan all sources and store what changed.
    Sync,
    /// Write a stored template back to the on-disk layout.
    Export {
        /// Template name.
        name: String,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Stored templates through a running ctforge's API (list, show, delete, duplicate, …).
    Remote {
        #[command(flatten)]
        connection: crate::ct_client::Connection,
        #[command(subcommand)]
        command: crate::cli_api::TemplatesApiCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration with secrets redacted.
    Show,
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Re-encrypt every stored secret under a new key.
    Rotate,
}

/// Entry point used by `main`.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    crate::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ").replace('\n', " ")
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let overrides = CliOverrides {
        config_file: cli.config.clone(),
        listen: match &cli.command {
            Command::Serve(args) => args.listen.clone(),
            _ => None,
        },
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
    };
    let loaded = Config::load(&overrides)?;
    crate::telemetry::init(loaded.config.log_format, &loaded.config.log_level);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let config = loaded.config;
    match cli.command {
        Command::Serve(args) => {
            let mut config = config;
            config
                .templates
                .roots
                .extend(args.templates.iter().cloned());
            let demo = if args.demo {
                Some(crate::demo::prepare(&mut config).await?)
            } else {
                None
            };
            let app = App::build(config).await?;
            if let Some(demo) = &demo {
                let roots = app.state().config.templates.roots.clone();
                let report =
                    crate::templates::discovery::discover_roots(app.state().store.as_ref(), &roots)
                        .await
                        .context("cannot load the templates")?;
                for warning in &report.warnings {
                    tracing::warn!("{warning}");
                }
                for failed in report
                    .templates
                    .iter()
                    .filter(|t| t.status == crate::templates::discovery::Status::Failed)
                {
                    tracing::warn!(
                        "template {} ({}) was not loaded: {}",
                        failed.name,
                        failed.dir,
                        failed.reason.as_deref().unwrap_or("it has errors")
                    );
                }
                println!(
                    "{}",
                    crate::demo::banner(&format!("http://127.0.0.1:{}", app.port()), demo)
                );
            }
            app.run_until(startup::shutdown_signal()).await?;
            drop(demo);
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker => {
            let state = startup::build_state(config, Arc::new(SystemClock), None).await?;
            let workers = startup::start_workers(&state);
            let monitor = crate::containers::monitor::spawn(&state);
            let notifications = crate::notify::dispatch::spawn(&state);
            let image_gc = crate::images::spawn_gc(&state);
            tracing::info!(owner = %workers.owner(), "ctforge worker running; SIGINT or SIGTERM stops it");
            startup::shutdown_signal().await;
            state.shutdown.cancel();
            if let Some(image_gc) = image_gc {
                image_gc.abort();
            }
            if let Some(monitor) = monitor {
                monitor.stop().await;
            }
            workers.stop().await;
            if let Some(notifications) = notifications {
                notifications.stop().await;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            startup::open_store(&config, Arc::new(SystemClock)).await?;
            println!(
                "migrations applied to {}",
                crate::config::redact_url(&config.database_url())
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim(args) => {
            ctforge_pve_sim::cli::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Templates(command) => templates_command(&config, command).await,
        Command::Healthcheck { url } => healthcheck(&config, url.as_deref()).await,
        Command::Ct {
            connection,
            command,
        } => crate::ct_client::run(&connection, command).await,
        Command::Apply { connection, args } => crate::cli_api::apply(&connection, args).await,
        Command::Presets {
            connection,
            command,
        } => crate::cli_api::presets(&connection, command).await,
        Command::Jobs {
            connection,
            command,
        } => crate::cli_api::jobs(&connection, command).await,
        Command::Clusters {
            connection,
            command,
        } => crate::cli_api::clusters(&connection, command).await,
        Command::Tokens {
            connection,
            command,
        } => crate::cli_api::tokens(&connection, command).await,
        Command::Api { connection, args } => crate::cli_api::raw(&connection, args).await,
        Command::Buckets {
            connection,
            command,
        } => command.run(&connection).await,
        Command::Images {
            connection,
            command,
        } => command.run(&connection).await,
        Command::Notifications {
            connection,
            command,
        } => command.run(&connection).await,
        Command::Roles {
            connection,
            command,
        } => command.run(&connection).await,
        Command::Audit {
            connection,
            command,
        } => command.run(&connection).await,
        Command::Auth {
            connection,
            command,
        } => command.run(&connection).await,
        Command::TemplateSources {
            connection,
            command,
        } => command.run(&connection).await,
        Command::Guests {
            connection,
            command,
        } => command.run(&connection).await,
        Command::Completions { shell } => {
            // Generated into memory first: clap_complete panics on a failed write, and a
            // reader that stops early (`| head`) is not an error of ours.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ctforge", &mut script);
            let mut out = std::io::stdout().lock();
            match std::io::Write::write_all(&mut out, &script)
                .and_then(|()| std::io::Write::flush(&mut out))
            {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
                Err(e) => Err(anyhow::anyhow!("cannot write the completion script: {e}")),
            }
        }
        Command::Man { dir } => man(dir.as_deref()),
        Command::Config(ConfigCommand::Show) => {
            print!("{}", config.to_redacted_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Secrets(SecretsCommand::Rotate) => rotate_secrets(&config).await,
        Command::Backup {
            out,
            passphrase_file,
        } => {
            let passphrase = backup_passphrase(&config, passphrase_file.as_deref())?;
            let summary = crate::backup::create(
                &config,
                &out,
                &passphrase,
                crate::backup::KdfCost::default(),
                &SystemClock,
            )
            .await?;
            println!(
                "backup written to {} ({} bytes, {} database at schema {})",
                summary.path.display(),
                summary.bytes,
                summary.manifest.backend,
                summary.manifest.schema_version
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore {
            file,
            passphrase_file,
        } => {
            let passphrase = backup_passphrase(&config, passphrase_file.as_deref())?;
            let summary = crate::backup::restore(&config, &file, &passphrase).await?;
            println!(
                "restored the backup of {} (ctforge {}, schema {}) into {}; {} sealed secrets open with its key ring",
                crate::backup::schedule::file_name(summary.manifest.created_at_ms)
                    .trim_start_matches("ctforge-backup-")
                    .trim_end_matches(".ctforge"),
                summary.manifest.ctforge_version,
                summary.manifest.schema_version,
                config.data_dir.display(),
                summary.sealed_values
            );
            if summary.key_from_config {
                println!(
                    "note: CTFORGE_SECRET_KEY (secret_key) is set; it is used instead of the restored secret.key"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The passphrase of `backup`/`restore`: `--passphrase-file`, else `[backup] passphrase_file`.
fn backup_passphrase(
    config: &Config,
    file: Option<&std::path::Path>,
) -> anyhow::Result<crate::secrets::Plain> {
    let Some(file) = file.or(config.backup.passphrase_file.as_deref()) else {
        anyhow::bail!(
            "no passphrase: pass --passphrase-file FILE (or set [backup] passphrase_file)"
        );
    };
    Ok(crate::backup::read_passphrase(file)?)
}

/// `ctforge templates validate|discover|sync|export`.
async fn templates_command(config: &Config, command: TemplatesCommand) -> anyhow::Result<ExitCode> {
    match command {
        TemplatesCommand::Remote {
            connection,
            command,
        } => crate::cli_api::templates(&connection, command).await,
        TemplatesCommand::Validate { dirs } => Ok(validate_templates(&dirs)),
        TemplatesCommand::Discover { root } => {
            let roots = match root {
                Some(root) => vec![root],
                None => config.templates.roots.clone(),
            };
            if roots.is_empty() {
                anyhow::bail!(
                    "no templates roots configured: set CTFORGE_TEMPLATES__ROOTS (or templates.roots \
                     in the config file), or pass --root DIR"
                );
            }
            let store = startup::open_store(config, Arc::new(SystemClock)).await?;
            let report = crate::templates::discover_roots(store.as_ref(), &roots).await?;
            print!("{}", report.render());
            Ok(if report.has_failures() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        TemplatesCommand::Sync => {
            if config.templates.git.is_empty() && config.templates.roots.is_empty() {
                anyhow::bail!(
                    "no template sources configured: add [[templates.git]] entries (url, branch, \
                     path) or templates.roots to the config file"
                );
            }
            let store = startup::open_store(config, Arc::new(SystemClock)).await?;
            let keyring = startup::open_keyring(config)?;
            let report = crate::templates::manage::sync_sources(
                store.as_ref(),
                &keyring,
                &config.data_dir,
                &config.templates.roots,
                &config.templates.git,
            )
            .await?;
            print!("{}", report.render());
            Ok(if report.has_failures() || !report.warnings.is_empty() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        TemplatesCommand::Export { name, out } => {
            let target = out.join(&name);
            let occupied = std::fs::read_dir(&target).is_ok_and(|mut e| e.next().is_some());
            if occupied {
                anyhow::bail!(
                    "{} already exists and is not empty: choose another --out directory or remove it",
                    target.display()
                );
            }
            let store = startup::open_store(config, Arc::new(SystemClock)).await?;
            crate::templates::export(store.as_ref(), &name, &target).await?;
            println!("exported {name} to {}", target.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Validates template directories (or roots holding several), printing every diagnostic as
/// `path:line: severity: message` on stdout and `ok: <dir>` on stderr for those without
/// errors. Exit code 1 if any error was found, 2 if no directory was given.
fn validate_templates(dirs: &[PathBuf]) -> ExitCode {
    if dirs.is_empty() {
        eprintln!(
            "error: no template directory given: pass one or more, like `ctforge templates validate ./templates/web`"
        );
        return ExitCode::from(2);
    }
    let mut failed = false;
    for dir in dirs {
        let is_template = dir.join(ctforge_template::conf::CONF_FILE).exists();
        let found = if is_template || !dir.is_dir() {
            vec![(dir.clone(), ctforge_template::load_dir(dir))]
        } else {
            // A root holding several templates; an empty one is reported by load_dir.
            let found = ctforge_template::discover(dir);
            if found.is_empty() {
                vec![(dir.clone(), ctforge_template::load_dir(dir))]
            } else {
                found
            }
        };
        for (template_dir, loaded) in found {
            let mut warnings = 0;
            for diagnostic in &loaded.diagnostics {
                let mut shown = diagnostic.clone();
                shown.file = template_dir.join(&diagnostic.file);
                println!("{shown}");
                if diagnostic.is_error() {
                    failed = true;
                } else {
                    warnings += 1;
                }
            }
            if !loaded.has_errors() {
                if warnings == 0 {
                    eprintln!("ok: {}", template_dir.display());
                } else {
                    eprintln!("ok: {} ({warnings} warnings)", template_dir.display());
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Re-encrypts every sealed value under a fresh key without losing any.
///
/// Order matters for crash safety: the new key is added to the keyring first (old keys kept),
/// then every value is re-sealed in one transaction, and only then are old keys retired.
/// `ctforge man`: the man page on stdout, or every page into `dir`.
fn man(dir: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let command = Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(command).render(&mut out)?;
            use std::io::Write;
            std::io::stdout().write_all(&out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn rotate_secrets(config: &Config) -> anyhow::Result<ExitCode> {
    let store = startup::open_store(config, Arc::new(SystemClock)).await?;
    let mut keyring = startup::open_keyring(config)?;
    let sealed = store.list_sealed().await?;
    let mut plain = Vec::with_capacity(sealed.len());
    for value in &sealed {
        let opened = keyring.open(&value.value).with_context(|| {
            format!(
                "cannot open {}.{} row {}; rotation aborted, nothing changed",
                value.table, value.column, value.key
            )
        })?;
        plain.push(opened);
    }
    keyring.push_active(generate_key());
    keyring.save()?;
    let mut rewritten = Vec::with_capacity(sealed.len());
    for (value, opened) in sealed.iter().zip(&plain) {
        let mut new = value.clone();
        new.value = keyring.seal(opened.expose())?;
        rewritten.push(new);
    }
    store
        .rewrite_sealed(&rewritten, keyring.active_key_id())
        .await?;
    if keyring.is_file_backed() {
        keyring.retire_old();
        keyring.save()?;
        println!(
            "rotated {} secrets to key {}",
            rewritten.len(),
            keyring.active_key_id()
        );
    } else {
        println!(
            "rotated {} secrets to key {}; set CTFORGE_SECRET_KEY to this value (the old key is no longer needed):\n{}",
            rewritten.len(),
            keyring.active_key_id(),
            keyring.active_key_base64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Rotation as a library call (tests use it without the CLI).
pub async fn rotate(config: &Config) -> anyhow::Result<()> {
    rotate_secrets(config).await.map(|_| ())
}

/// `ctforge healthcheck`: `GET <base>/readyz`, one line on failure naming what is not ready.
async fn healthcheck(config: &Config, url: Option<&str>) -> anyhow::Result<ExitCode> {
    let base = match url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => {
            // A wildcard listen address is reached on loopback.
            let listen = config
                .listen
                .replace("0.0.0.0:", "127.0.0.1:")
                .replace("[::]:", "[::1]:");
            format!("http://{listen}")
        }
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .context("cannot build an HTTP client")?;
    let response = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .with_context(|| format!("{base} does not answer"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        println!("ready: {base}");
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!("{base}/readyz answered {status}: {}", body.trim())
    }
}
