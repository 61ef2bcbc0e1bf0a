//! `ctforge ct …`: a command-line client of the JSON API (list, create with a live progress
//! bar and the streamed log, start/stop/shutdown/reboot/delete). It authenticates with an API
//! token (`--token` / `CTFORGE_TOKEN`) against a running ctforge (`--url` / `CTFORGE_URL`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::api::v1::provisioning::CreateAccepted;
use crate::containers::lifecycle::Outcome;
use crate::containers::listing::Listing;
use crate::error::ErrorBody;
use crate::provisioning::plan::{PlanView, Step};

/// Where the API is and how to authenticate.
#[derive(Debug, Args)]
pub struct Connection {
    /// ctforge URL [env: CTFORGE_URL] [default: http://127.0.0.1:8080].
    #[arg(long, global = true, value_name = "URL")]
    url: Option<String>,
    /// API token from Settings → API tokens [env: CTFORGE_TOKEN].
    #[arg(long, global = true, value_name = "TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// `text` (or `table`) for people; `json` for scripts (`--follow` prints one event per line).
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
    /// Profile of the CLI's profile file (`~/.config/ctforge/cli.toml`) with the URL and token
    /// [env: CTFORGE_PROFILE].
    #[arg(long, global = true, value_name = "NAME")]
    profile: Option<String>,
}

/// How `--follow` prints a job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Steps, percent and log lines (a bar on a terminal); lists as tables.
    #[default]
    #[value(alias = "table")]
    Text,
    /// The raw event envelopes, one per line.
    Json,
}

/// The `ct` subcommands.
#[derive(Debug, Subcommand)]
pub enum CtCommand {
    /// The operations of the `cli_ops` table.
    #[command(flatten)]
    More(crate::cli_ops::Ops<{ crate::cli_ops::CT }>),
    /// List containers (live state merged with ctforge's records).
    List {
        /// Only this status (running, stopped, creating, error).
        #[arg(long)]
        status: Option<String>,
        /// Only this node.
        #[arg(long)]
        node: Option<String>,
        /// Only containers with this tag.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Create a container from a template.
    Create(Box<CreateArgs>),
    /// Start a container (record id, or `cluster:vmid`).
    Start {
        /// Container.
        id: String,
    },
    /// Stop a container.
    Stop {
        /// Container.
        id: String,
    },
    /// Shut a container down gracefully (then force stop after the timeout).
    Shutdown {
        /// Container.
        id: String,
        /// Seconds before forcing.
        #[arg(long, default_value_t = 60)]
        timeout: u32,
    },
    /// Reboot a container.
    Reboot {
        /// Container.
        id: String,
    },
    /// Retry a failed or cancelled job (e.g. a container creation) from the step that failed.
    Retry {
        /// Job id (printed by `create` and after a failure).
        job: i64,
        /// Follow the job until it ends.
        #[arg(long)]
        follow: bool,
    },
    /// Migrate a container to another node (a job; `--restart` moves a running one).
    Migrate {
        /// Container.
        id: String,
        /// Target node.
        #[arg(long)]
        target: String,
        /// Restart mode: shut down, move, start on the target (needed for a running CT).
        #[arg(long)]
        restart: bool,
        /// Follow the job: the migration's log until it ends.
        #[arg(long)]
        follow: bool,
    },
    /// Show what differs between a container, the template version applied to it and the
    /// template today (files, scripts, packages, conflicts).
    Drift {
        /// Container.
        id: String,
    },
    /// Re-apply the template to containers (a job: snapshot, apply, rollback on failure).
    Reapply {
        /// Containers (one, or several for a bulk re-apply).
        #[arg(required = true)]
        ids: Vec<String>,
        /// A choice for a changed or conflicting file: `NAME=keep|take|backup` (one container).
        #[arg(long = "file", value_name = "NAME=CHOICE")]
        files: Vec<String>,
        /// No snapshot first (storages without snapshots): a failure cannot be rolled back.
        #[arg(long)]
        without_snapshot: bool,
        /// On failure keep the container as it is (and the snapshot) instead of rolling back.
        #[arg(long)]
        keep_on_failure: bool,
        /// Follow the job until it ends.
        #[arg(long)]
        follow: bool,
    },
    /// Roll a template out to every container made from it: canary first, then batches,
    /// stopping at the first failure.
    Rollout {
        /// Template name.
        template: String,
        /// Containers re-applied first, one by one.
        #[arg(long, default_value_t = 1)]
        canary: usize,
        /// Then this many at a time.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// No snapshots first.
        #[arg(long)]
        without_snapshot: bool,
        /// Follow the job until it ends.
        #[arg(long)]
        follow: bool,
    },
    /// Day-two operations: set, resize, snapshot, rollback, clone, template.
    #[command(flatten)]
    DayTwo(crate::ct_daytwo::DayTwoCommand),
    /// Delete a container (stops it first, purges it).
    Delete {
        /// Container.
        id: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Options of `ct create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Template name (omit for a bare container).
    #[arg(long)]
    template: Option<String>,
    /// A preset's name: its saved answers, with these options over them.
    #[arg(long)]
    preset: Option<String>,
    /// Hostname (a pattern with `{n}` for `--count`; may come from the preset).
    #[arg(long)]
    hostname: Option<String>,
    /// Create this many (hostname pattern `web-{n}`), as one batch job.
    #[arg(long)]
    count: Option<u32>,
    /// Where a batch goes: fixed, round-robin or least-loaded.
    #[arg(long)]
    placement: Option<String>,
    /// Node (default: the first online node).
    #[arg(long)]
    node: Option<String>,
    /// Cluster name (default: the default cluster).
    #[arg(long)]
    cluster: Option<String>,
    /// VMID (default: next free).
    #[arg(long)]
    vmid: Option<u32>,
    /// Root password [env: CTFORGE_CT_PASSWORD].
    #[arg(long, env = "CTFORGE_CT_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// File with SSH public keys.
    #[arg(long)]
    ssh_keys: Option<std::path::PathBuf>,
    /// CPU cores.
    #[arg(long)]
    cores: Option<u32>,
    /// Memory in MiB.
    #[arg(long)]
    memory: Option<u64>,
    /// Disk in GiB.
    #[arg(long)]
    disk: Option<u32>,
    /// Storage (with `--clone-from`: a full copy there instead of a linked clone).
    #[arg(long)]
    storage: Option<String>,
    /// A vm template only: clone this VM template (its VMID, on the node) instead of importing
    /// the cloud image; linked where its storage allows, unless `--storage` names another.
    #[arg(long, value_name = "VMID")]
    clone_from: Option<u32>,
    /// With `--clone-from`: a full copy (on `--storage`, else the automatic choice's) instead
    /// of a linked clone.
    #[arg(long, requires = "clone_from")]
    full_clone: bool,
    /// Bridge.
    #[arg(long)]
    bridge: Option<String>,
    /// `dhcp` or a CIDR address.
    #[arg(long)]
    ip: Option<String>,
    /// Gateway.
    #[arg(long)]
    gateway: Option<String>,
    /// Tag (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Extra package, `manager:name[=version]` or an apt name (repeatable).
    #[arg(long = "package")]
    packages: Vec<String>,
    /// Only print the plan (dry run).
    #[arg(long)]
    plan: bool,
    /// Follow the job: progress bar and streamed log until it ends.
    #[arg(long)]
    follow: bool,
}

/// A client of the JSON API (shared by every API command of the CLI).
pub(crate) struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
    pub(crate) output: Output,
}

impl Api {
    /// A message for people: stdout, or stderr when stdout carries `--output json`.
    pub(crate) fn say(&self, text: &str) {
        match self.output {
            Output::Text => println!("{text}"),
            Output::Json => eprintln!("{text}"),
        }
    }

    /// URL and token: the flags, else the environment, else the profile file.
    pub(crate) fn new(conn: &Connection) -> anyhow::Result<Self> {
        let profile = crate::cli_profile::load(conn.profile.as_deref())?;
        let base = conn
            .url
            .clone()
            .or_else(|| std::env::var("CTFORGE_URL").ok())
            .or(profile.url)
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned())
            .trim_end_matches('/')
            .to_owned();
        let token = conn.token.clone().or_else(|| std::env::var("CTFORGE_TOKEN").ok()).or(profile.token).filter(|t| !t.is_empty()).context(
            "an API token is needed: create one in Settings → API tokens and pass --token, set CTFORGE_TOKEN or put it in the CLI profile file (~/.config/ctforge/cli.toml)",
        )?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            base,
            token,
            http,
            output: conn.output,
        })
    }

    /// A `GET` of a Server-Sent Events stream of the API (sent by the caller).
    pub(crate) fn events_request(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("accept", "text/event-stream")
    }

    /// Sends a request and reads the API's typed answer (or its error document).
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<T> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach ctforge at {}", self.base))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let Ok(error) = serde_json::from_str::<ErrorBody>(&text) else {
                bail!("{} (HTTP {})", text.trim(), status.as_u16());
            };
            let fields = error
                .fields
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("; ");
            if fields.is_empty() {
                bail!("{} (HTTP {})", error.error, status.as_u16());
            }
            bail!("{}: {fields} (HTTP {})", error.error, status.as_u16());
        }
        // `204 No Content` reads as JSON `null`.
        let text = if text.trim().is_empty() {
            "null".to_owned()
        } else {
            text
        };
        serde_json::from_str(&text).with_context(|| {
            format!(
                "unexpected answer from {path} (is ctforge at {} the same version?)",
                self.base
            )
        })
    }
}

impl Api {
    /// Sends a request and returns the answer as JSON (`null` for `204`).
    pub(crate) async fn send_value(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        self.send(method, path, body).await
    }
}

/// Runs a `ct` subcommand.
pub async fn run(conn: &Connection, command: CtCommand) -> anyhow::Result<ExitCode> {
    let api = Api::new(conn)?;
    match command {
        CtCommand::More(ops) => ops.run(conn).await,
        CtCommand::List { status, node, tag } => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in [("status", status), ("node", node), ("tag", tag)] {
                if let Some(v) = v {
                    query.append_pair(k, &v);
                }
            }
            query.append_pair("per_page", "1000");
            let listing: Listing = api
                .send(
                    reqwest::Method::GET,
                    &format!("/api/v1/containers?{}", query.finish()),
                    None,
                )
                .await?;
            println!(
                "{:<10} {:>6} {:<24} {:<10} {:<10} {:<16} TEMPLATE",
                "ID", "VMID", "HOSTNAME", "NODE", "STATUS", "IP"
            );
            for row in &listing.items {
                println!(
                    "{:<10} {:>6} {:<24} {:<10} {:<10} {:<16} {}",
                    row.key,
                    row.vmid,
                    row.hostname,
                    row.node,
                    row.status.as_str(),
                    row.ip.as_deref().unwrap_or("-"),
                    row.template.as_deref().unwrap_or(if row.managed {
                        "-"
                    } else {
                        "(unmanaged)"
                    }),
                );
            }
            for u in &listing.unreachable {
                eprintln!("warning: cluster {}: {}", u.cluster, u.reason);
            }
            Ok(ExitCode::SUCCESS)
        }
        CtCommand::Create(args) => create(&api, *args).await,
        CtCommand::DayTwo(command) => crate::ct_daytwo::run(&api, command).await,
        CtCommand::Retry {
            job,
            follow: and_follow,
        } => {
            // Follow only what this retry adds, not the earlier attempt's end.
            let before = if and_follow {
                last_seq(&api, job).await?
            } else {
                0
            };
            let out: crate::api::v1::jobs::JobView = api
                .send(
                    reqwest::Method::POST,
                    &format!("/api/v1/jobs/{job}/retry"),
                    None,
                )
                .await?;
            api.say(&format!(
                "job {job} queued again from step {}",
                out.current_step.as_deref().unwrap_or("1")
            ));
            if and_follow {
                follow(&api, job, before).await
            } else {
                Ok(ExitCode::SUCCESS)
            }
        }
        CtCommand::Start { id } => action(&api, &id, "start", "").await,
        CtCommand::Stop { id } => action(&api, &id, "stop", "").await,
        CtCommand::Reboot { id } => action(&api, &id, "reboot", "").await,
        CtCommand::Shutdown { id, timeout } => {
            action(&api, &id, "shutdown", &format!("?timeout={timeout}")).await
        }
        CtCommand::Migrate {
            id,
            target,
            restart,
            follow: and_follow,
        } => {
            let out: crate::containers::migrate::MigrateAccepted = api
                .send(
                    reqwest::Method::POST,
                    &format!("/api/v1/containers/{id}/migrate"),
                    Some(json!({ "target": target, "restart": restart })),
                )
                .await?;
            api.say(&format!(
                "CT {} migrating from {} to {}{}: job {}",
                out.vmid,
                out.from,
                out.target,
                if out.restart { " (restart mode)" } else { "" },
                out.job_id
            ));
            if and_follow {
                follow(&api, out.job_id, 0).await
            } else {
                Ok(ExitCode::SUCCESS)
            }
        }
        CtCommand::Drift { id } => {
            let drift: crate::containers::drift::DriftReport = api
                .send(
                    reqwest::Method::GET,
                    &format!("/api/v1/containers/{id}/drift"),
                    None,
                )
                .await?;
            if api.output == Output::Json {
                println!("{}", serde_json::to_string(&drift)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "template {} (applied {}{})",
                drift.template,
                drift
                    .applied_hash
                    .as_deref()
                    .map_or("unknown", |h| h.get(..12).unwrap_or(h)),
                if drift.newer_template {
                    ", a newer version exists"
                } else {
                    ""
                }
            );
            for f in drift
                .files
                .iter()
                .filter(|f| f.state != crate::containers::drift::FileState::InSync)
            {
                println!("  {:<28} {}", f.state.label(), f.target);
            }
            for s in &drift.scripts {
                println!("  script {:<21} {:?}", s.name, s.state);
            }
            for p in &drift.packages {
                println!("  package {}:{} {:?}", p.manager, p.name, p.state);
            }
            if !drift.drifted {
                println!("no drift");
            }
            Ok(ExitCode::SUCCESS)
        }
        CtCommand::Reapply {
            ids,
            files,
            without_snapshot,
            keep_on_failure,
            follow: and_follow,
        } => {
            let on_failure = if keep_on_failure { "keep" } else { "rollback" };
            let out: crate::containers::reapply::ReapplyAccepted = if let [id] = ids.as_slice() {
                let mut choices = serde_json::Map::new();
                for f in &files {
                    let (name, choice) = f.split_once('=').ok_or_else(|| {
                        anyhow::anyhow!("--file {f:?}: use NAME=keep|take|backup")
                    })?;
                    choices.insert(name.to_owned(), json!(choice));
                }
                api.send(
                    reqwest::Method::POST,
                    &format!("/api/v1/containers/{id}/reapply"),
                    Some(json!({ "files": choices, "without_snapshot": without_snapshot, "on_failure": on_failure })),
                )
                .await?
            } else {
                if !files.is_empty() {
                    anyhow::bail!(
                        "--file applies to one container; a bulk re-apply keeps changed files"
                    );
                }
                api.send(
                    reqwest::Method::POST,
                    "/api/v1/containers/reapply",
                    Some(json!({ "ids": ids, "without_snapshot": without_snapshot, "on_failure": on_failure })),
                )
                .await?
            };
            api.say(&format!("re-apply queued: job {}", out.job_id));
            if and_follow {
                follow(&api, out.job_id, 0).await
            } else {
                Ok(ExitCode::SUCCESS)
            }
        }
        CtCommand::Rollout {
            template,
            canary,
            batch,
            without_snapshot,
            follow: and_follow,
        } => {
            let out: crate::containers::reapply::ReapplyAccepted = api
                .send(
                    reqwest::Method::POST,
                    &format!("/api/v1/templates/{template}/rollout"),
                    Some(json!({ "canary": canary, "batch": batch, "without_snapshot": without_snapshot })),
                )
                .await?;
            api.say(&format!(
                "rollout of {template} to {} container(s) queued: job {}",
                out.ids.len(),
                out.job_id
            ));
            if and_follow {
                follow(&api, out.job_id, 0).await
            } else {
                Ok(ExitCode::SUCCESS)
            }
        }
        CtCommand::Delete { id, yes } => {
            if !yes {
                use std::io::{BufRead, Write};
                eprint!("delete container {id} and purge its disks? type 'yes': ");
                let _ = std::io::stderr().flush();
                let mut answer = String::new();
                std::io::stdin().lock().read_line(&mut answer)?;
                if answer.trim() != "yes" {
                    eprintln!("not deleted");
                    return Ok(ExitCode::from(1));
                }
            }
            let out: Outcome = api
                .send(
                    reqwest::Method::DELETE,
                    &format!("/api/v1/containers/{id}"),
                    None,
                )
                .await?;
            report(&out);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn action(api: &Api, id: &str, verb: &str, query: &str) -> anyhow::Result<ExitCode> {
    let out: Outcome = api
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/containers/{id}/{verb}{query}"),
            None,
        )
        .await?;
    report(&out);
    Ok(ExitCode::SUCCESS)
}

/// Prints what an action did, step by step, then the state afterwards.
fn report(out: &Outcome) {
    for step in &out.steps {
        println!("{}", step.message);
    }
    if let Some(warning) = &out.warning {
        eprintln!("warning: {warning}");
    }
    println!(
        "CT {} ({}): {} {}",
        out.vmid,
        out.hostname,
        out.action.as_str(),
        out.status
    );
}

async fn create(api: &Api, a: CreateArgs) -> anyhow::Result<ExitCode> {
    let ssh_public_keys = match &a.ssh_keys {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        ),
        None => None,
    };
    let mut body = json!({});
    let fields: [(&str, Option<Value>); 21] = [
        ("hostname", a.hostname.map(Value::from)),
        ("preset", a.preset.map(Value::from)),
        ("count", a.count.map(Value::from)),
        ("placement", a.placement.map(Value::from)),
        ("template", a.template.map(Value::from)),
        ("node", a.node.map(Value::from)),
        ("cluster", a.cluster.map(Value::from)),
        ("vmid", a.vmid.map(Value::from)),
        ("password", a.password.map(Value::from)),
        ("ssh_public_keys", ssh_public_keys.map(Value::from)),
        ("cores", a.cores.map(Value::from)),
        ("memory", a.memory.map(Value::from)),
        ("disk", a.disk.map(Value::from)),
        ("storage", a.storage.map(Value::from)),
        ("clone_from", a.clone_from.map(Value::from)),
        ("full_clone", a.full_clone.then_some(Value::Bool(true))),
        ("bridge", a.bridge.map(Value::from)),
        ("ip", a.ip.map(Value::from)),
        ("gateway", a.gateway.map(Value::from)),
        (
            "tags",
            (!a.tags.is_empty()).then(|| Value::from(a.tags.clone())),
        ),
        (
            "extra_packages",
            (!a.packages.is_empty()).then(|| Value::from(a.packages.clone())),
        ),
    ];
    for (key, value) in fields {
        if let Some(v) = value {
            body[key] = v;
        }
    }
    if a.plan {
        let plan: PlanView = api
            .send(reqwest::Method::POST, "/api/v1/containers/plan", Some(body))
            .await?;
        println!("{}", plan.create_call);
        for (key, value) in &plan.create_params {
            println!("  {key}={value}");
        }
        for step in &plan.steps {
            if let Step::CloneVm { vmid, full, config } = step {
                let how = if *full { "full copy" } else { "linked" };
                println!(
                    "PUT /nodes/{}/qemu/{}/config (the clone of {vmid}, {how})",
                    plan.node, plan.vmid
                );
                for (key, value) in config {
                    println!("  {key}={value}");
                }
            }
        }
        println!("steps:");
        for (i, step) in plan.steps.iter().enumerate() {
            let (kind, detail) = step_line(step);
            println!("  {:>2}. {kind} {detail}", i + 1);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let created = match api
        .send::<CreateAccepted>(reqwest::Method::POST, "/api/v1/containers", Some(body))
        .await?
    {
        CreateAccepted::One(one) => one,
        CreateAccepted::Many(batch) => {
            if api.output == Output::Json {
                println!("{}", serde_json::to_string(&batch)?);
            }
            for item in &batch.items {
                api.say(&format!(
                    "container {} {} (VMID {}) on {} queued as job {}",
                    item.id, item.hostname, item.vmid, item.node, item.job_id
                ));
            }
            for failed in &batch.not_queued {
                eprintln!("warning: {} not queued: {}", failed.hostname, failed.error);
            }
            api.say(&format!("batch job {}", batch.job_id));
            if !a.follow {
                return Ok(ExitCode::SUCCESS);
            }
            return follow(api, batch.job_id, 0).await;
        }
    };
    let job_id = created.job_id;
    api.say(&format!(
        "container {} (VMID {}) queued as job {job_id}",
        created.id, created.vmid
    ));
    if !a.follow {
        return Ok(ExitCode::SUCCESS);
    }
    follow(api, job_id, 0).await
}

/// The sequence number of the job's newest event (0 when it has none).
async fn last_seq(api: &Api, job_id: i64) -> anyhow::Result<i64> {
    let mut after = 0i64;
    loop {
        let page: crate::api::v1::jobs::JobEventsPage = api
            .send(
                reqwest::Method::GET,
                &format!("/api/v1/jobs/{job_id}/events?after={after}&limit=1000"),
                None,
            )
            .await?;
        let events = page.events;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(after);
        };
        after = last;
        if events.len() < 1000 {
            return Ok(after);
        }
    }
}

/// Streams a job's events: a bar with the current step and percent on a terminal, plain lines
/// otherwise, every log line; `--output json` prints the event envelopes instead.
async fn follow(api: &Api, job_id: i64, after: i64) -> anyhow::Result<ExitCode> {
    use futures_util::StreamExt;
    let mut screen = crate::ct_progress::Screen::new(api.output == Output::Json);
    let mut last_id = after;
    loop {
        let response = api
            .http
            .get(format!("{}/api/v1/jobs/{job_id}/events", api.base))
            .bearer_auth(&api.token)
            .header("accept", "text/event-stream")
            .header("last-event-id", last_id.to_string())
            .send()
            .await
            .context("cannot follow the job")?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            // Finished before we looked, and nothing new: the job's row says how.
            let job = api
                .send(
                    reqwest::Method::GET,
                    &format!("/api/v1/jobs/{job_id}"),
                    None,
                )
                .await?;
            return Ok(screen.finished_without_events(job_id, &job));
        }
        if !response.status().is_success() {
            bail!(
                "cannot follow job {job_id}: HTTP {}",
                response.status().as_u16()
            );
        }
        let mut stream = response.bytes_stream();
        let mut buffer = String::new();
        let mut data = String::new();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(pos) = buffer.find('\n') {
                let line = buffer[..pos].trim_end_matches('\r').to_owned();
                buffer.drain(..=pos);
                if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                } else if let Some(v) = line.strip_prefix("id:") {
                    last_id = v.trim().parse().unwrap_or(last_id);
                } else if line.is_empty() && !data.is_empty() {
                    let raw = std::mem::take(&mut data);
                    match serde_json::from_str::<crate::events::BusEvent>(&raw) {
                        Ok(event) => {
                            if let Some(code) = screen.show(job_id, &event, &raw) {
                                return Ok(code);
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "unreadable job event"),
                    }
                }
            }
        }
        // The stream ended without a final event (server restart): reconnect from the last id.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A plan step as `ct create --plan` lists it: its kind and what it names.
fn step_line(step: &Step) -> (&'static str, &str) {
    match step {
        Step::Create => ("create", ""),
        Step::CloneImage { node, .. } => ("clone_image", node),
        Step::CloneVm { .. } => ("clone_vm", ""),
        Step::Identity => ("identity", ""),
        Step::ResizeDisk { disk, .. } => ("resize_disk", disk),
        Step::CloudInitSnippet { volid, .. } => ("cloud_init_snippet", volid),
        Step::Start => ("start", ""),
        Step::DeployFile { name, .. } => ("deploy_file", name),
        Step::ConfigManager => ("config_manager", ""),
        Step::Install { manager, .. } => ("install", manager),
        Step::CustomPackage { name, .. } => ("custom_package", name),
        Step::CustomInstaller { .. } => ("custom_installer", ""),
        Step::RunScript { name, .. } => ("run_script", name),
        Step::Discover => ("discover", ""),
    }
}
