//! The CLI's API commands beyond `ct`: `ctforge apply` (the fleet file), `presets`, `jobs`,
//! `clusters`, `tokens` and the API side of `templates`, plus `ctforge api METHOD PATH` for any
//! operation of the route table. They share `ct`'s connection (`--url`, `--token`,
//! `--profile`, `--output json|table`) and its client.
//!
//! `ctforge apply` prints the plan, follows the one `fleet_apply` job executing it (a line per
//! `+`/`~`/`-` item with its result or error, as each ends) and exits 0 when there was nothing
//! to change, 2 when it changed something (and every change succeeded), 1 on any error, a failed
//! item included — the contract scripts test (`--plan-only`: 2 when changes are pending).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::ct_client::{Api, Connection, Output};
use crate::fleet::job::{FleetResult, ItemState};
use crate::fleet::{ChangeKind, FleetApplied, FleetPlan};

/// Exit code of `apply` when it changed something (and of `--plan-only` with pending changes).
pub const EXIT_CHANGED: u8 = 2;

/// `ctforge apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The fleet file (TOML, one `[[guest]]` table per guest).
    pub file: PathBuf,
    /// Also remove containers the fleet created that the file no longer declares.
    #[arg(long)]
    pub prune: bool,
    /// Only print the plan (exit 2 when it has changes, 0 when not).
    #[arg(long)]
    pub plan_only: bool,
    /// Return once the job is queued instead of following it.
    #[arg(long)]
    pub no_wait: bool,
}

/// `ctforge presets …`.
#[derive(Debug, Subcommand)]
pub enum PresetsCommand {
    /// List the presets you may use.
    List,
    /// Show one preset.
    Show {
        /// Preset name.
        name: String,
    },
    /// Save a preset: `--set memory=512 --set tags='["web"]'` (values are JSON, else text).
    Create(PresetArgs),
    /// Replace a preset's template and values.
    Update(PresetArgs),
    /// Delete a preset.
    Delete {
        /// Preset name.
        name: String,
    },
}

/// Fields of a preset on the command line.
#[derive(Debug, Args)]
pub struct PresetArgs {
    /// Preset name.
    pub name: String,
    /// Template name.
    #[arg(long)]
    pub template: String,
    /// A value, `field=value` (repeatable); JSON values (`512`, `true`, `["a"]`) or text.
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub set: Vec<String>,
    /// Share with every user (admins only).
    #[arg(long)]
    pub shared: bool,
}

/// `ctforge jobs …`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// The operations of the `cli_ops` table.
    #[command(flatten)]
    More(crate::cli_ops::Ops<{ crate::cli_ops::JOBS }>),
    /// List jobs you may read.
    List,
    /// Show a job with its steps and result.
    Show {
        /// Job id.
        id: i64,
    },
    /// Cancel a running or queued job.
    Cancel {
        /// Job id.
        id: i64,
    },
    /// Retry a failed or cancelled job from the step that failed.
    Retry {
        /// Job id.
        id: i64,
    },
}

/// The API side of `ctforge templates …`.
#[derive(Debug, Subcommand)]
pub enum TemplatesApiCommand {
    /// The operations of the `cli_ops` table.
    #[command(flatten)]
    More(crate::cli_ops::Ops<{ crate::cli_ops::TEMPLATES }>),
    /// List the stored templates (through the API).
    List,
    /// Show a stored template.
    Show {
        /// Template name.
        name: String,
    },
    /// Delete a stored template.
    Delete {
        /// Template name.
        name: String,
    },
    /// Copy a stored template under a new name.
    Duplicate {
        /// Template name.
        name: String,
        /// New name.
        #[arg(long = "as")]
        new_name: String,
    },
    /// Run discovery on the server.
    RemoteDiscover,
    /// Fetch the git sources on the server and discover.
    RemoteSync,
}

/// `ctforge clusters …`.
#[derive(Debug, Subcommand)]
pub enum ClustersCommand {
    /// The operations of the `cli_ops` table.
    #[command(flatten)]
    More(crate::cli_ops::Ops<{ crate::cli_ops::CLUSTERS }>),
    /// List clusters.
    List,
    /// Show one cluster.
    Show {
        /// Cluster id.
        id: i64,
    },
    /// Test the connection to a cluster.
    Test {
        /// Cluster id.
        id: i64,
    },
    /// Add a cluster from a JSON body (`--data '{"name": …}'`, or `--data @file.json`).
    Add {
        /// The body.
        #[arg(long)]
        data: String,
    },
    /// Replace a cluster's settings from a JSON body.
    Update {
        /// Cluster id.
        id: i64,
        /// The body.
        #[arg(long)]
        data: String,
    },
    /// Remove a cluster.
    Delete {
        /// Cluster id.
        id: i64,
    },
}

/// `ctforge tokens …`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// List your API tokens.
    List,
    /// Create an API token (printed once).
    Create {
        /// A name to recognise it by.
        name: String,
    },
    /// Revoke an API token.
    Revoke {
        /// Token id.
        id: i64,
    },
}

/// `ctforge api METHOD PATH`: any operation of the JSON API.
#[derive(Debug, Args)]
pub struct RawArgs {
    /// GET, POST, PUT or DELETE.
    pub method: String,
    /// Path under the server, e.g. `/api/v1/containers?status=running`.
    pub path: String,
    /// JSON body (`@file.json` reads a file).
    #[arg(long)]
    pub data: Option<String>,
}

/// A `--data` value: JSON, or `@file.json`.
pub(crate) fn body_of(data: &str) -> anyhow::Result<Value> {
    let text = match data.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
        }
        None => data.to_owned(),
    };
    serde_json::from_str(&text).context("the body is not JSON")
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints an answer: JSON as is, or a table of `columns` for a list (found at the top or in
/// the first array field), or `key: value` lines for an object.
fn print(api: &Api, value: &Value, columns: &[&str]) {
    if api.output == Output::Json {
        println!("{value}");
        return;
    }
    let rows = match value {
        Value::Array(items) => Some(items),
        Value::Object(o) => o.values().find_map(Value::as_array),
        _ => None,
    };
    match rows {
        Some(rows) if !columns.is_empty() => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| columns.iter().map(|c| value_text(&r[*c])).collect())
                .collect();
            let widths: Vec<usize> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    cells
                        .iter()
                        .map(|r| r[i].chars().count())
                        .chain([c.len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: Vec<String>| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            println!(
                "{}",
                line(columns.iter().map(|c| c.to_uppercase()).collect())
            );
            for row in cells {
                println!("{}", line(row));
            }
        }
        _ => match value {
            Value::Object(o) => {
                for (k, v) in o {
                    println!("{k}: {}", value_text(v));
                }
            }
            other => println!("{}", value_text(other)),
        },
    }
}

/// Sends one request and prints the answer (a table of `columns` for lists, JSON with
/// `--output json`).
pub(crate) async fn call(
    api: &Api,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    columns: &[&str],
) -> anyhow::Result<ExitCode> {
    let answer: Value = api.send_value(method, path, body).await?;
    print(api, &answer, columns);
    Ok(ExitCode::SUCCESS)
}

/// Runs `ctforge presets …`.
pub async fn presets(conn: &Connection, command: PresetsCommand) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    let api = Api::new(conn)?;
    let cols = ["name", "template", "owner", "shared", "values"];
    match command {
        PresetsCommand::List => call(&api, Method::GET, "/api/v1/presets", None, &cols).await,
        PresetsCommand::Show { name } => {
            call(
                &api,
                Method::GET,
                &format!("/api/v1/presets/{}", enc(&name)),
                None,
                &[],
            )
            .await
        }
        PresetsCommand::Create(a) => {
            let body = preset_body(&a)?;
            call(&api, Method::POST, "/api/v1/presets", Some(body), &[]).await
        }
        PresetsCommand::Update(a) => {
            let body = preset_body(&a)?;
            let path = format!("/api/v1/presets/{}", enc(&a.name));
            call(&api, Method::PUT, &path, Some(body), &[]).await
        }
        PresetsCommand::Delete { name } => {
            api.send_value(
                Method::DELETE,
                &format!("/api/v1/presets/{}", enc(&name)),
                None,
            )
            .await?;
            api.say(&format!("preset {name} deleted"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn enc(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

fn preset_body(a: &PresetArgs) -> anyhow::Result<Value> {
    let mut values = serde_json::Map::new();
    for pair in &a.set {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("--set {pair:?}: write field=value, e.g. memory=512");
        };
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        values.insert(k.trim().to_owned(), value);
    }
    Ok(json!({ "name": a.name, "template": a.template, "values": values, "shared": a.shared }))
}

/// Runs `ctforge jobs …`.
pub async fn jobs(conn: &Connection, command: JobsCommand) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    let api = Api::new(conn)?;
    let cols = ["id", "kind", "state", "current_step", "created_by", "error"];
    match command {
        JobsCommand::More(ops) => ops.run(conn).await,
        JobsCommand::List => call(&api, Method::GET, "/api/v1/jobs", None, &cols).await,
        JobsCommand::Show { id } => {
            call(&api, Method::GET, &format!("/api/v1/jobs/{id}"), None, &[]).await
        }
        JobsCommand::Cancel { id } => {
            call(
                &api,
                Method::POST,
                &format!("/api/v1/jobs/{id}/cancel"),
                None,
                &[],
            )
            .await
        }
        JobsCommand::Retry { id } => {
            call(
                &api,
                Method::POST,
                &format!("/api/v1/jobs/{id}/retry"),
                None,
                &[],
            )
            .await
        }
    }
}

/// Runs the API side of `ctforge templates …`.
pub async fn templates(
    conn: &Connection,
    command: TemplatesApiCommand,
) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    let api = Api::new(conn)?;
    let cols = ["name", "app", "source", "description"];
    match command {
        TemplatesApiCommand::More(ops) => ops.run(conn).await,
        TemplatesApiCommand::List => {
            call(&api, Method::GET, "/api/v1/templates", None, &cols).await
        }
        TemplatesApiCommand::Show { name } => {
            call(
                &api,
                Method::GET,
                &format!("/api/v1/templates/{}", enc(&name)),
                None,
                &[],
            )
            .await
        }
        TemplatesApiCommand::Delete { name } => {
            api.send_value(
                Method::DELETE,
                &format!("/api/v1/templates/{}", enc(&name)),
                None,
            )
            .await?;
            api.say(&format!("template {name} deleted"));
            Ok(ExitCode::SUCCESS)
        }
        TemplatesApiCommand::Duplicate { name, new_name } => {
            let path = format!("/api/v1/templates/{}/duplicate", enc(&name));
            call(
                &api,
                Method::POST,
                &path,
                Some(json!({ "name": new_name })),
                &[],
            )
            .await
        }
        TemplatesApiCommand::RemoteDiscover => {
            call(&api, Method::POST, "/api/v1/templates/discover", None, &[]).await
        }
        TemplatesApiCommand::RemoteSync => {
            call(&api, Method::POST, "/api/v1/templates/sync", None, &[]).await
        }
    }
}

/// Runs `ctforge clusters …`.
pub async fn clusters(conn: &Connection, command: ClustersCommand) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    let api = Api::new(conn)?;
    let cols = ["id", "name", "url", "token_id"];
    match command {
        ClustersCommand::More(ops) => ops.run(conn).await,
        ClustersCommand::List => call(&api, Method::GET, "/api/v1/clusters", None, &cols).await,
        ClustersCommand::Show { id } => {
            call(
                &api,
                Method::GET,
                &format!("/api/v1/clusters/{id}"),
                None,
                &[],
            )
            .await
        }
        ClustersCommand::Test { id } => {
            call(
                &api,
                Method::POST,
                &format!("/api/v1/clusters/{id}/test"),
                None,
                &[],
            )
            .await
        }
        ClustersCommand::Add { data } => {
            call(
                &api,
                Method::POST,
                "/api/v1/clusters",
                Some(body_of(&data)?),
                &[],
            )
            .await
        }
        ClustersCommand::Update { id, data } => {
            let path = format!("/api/v1/clusters/{id}");
            call(&api, Method::PUT, &path, Some(body_of(&data)?), &[]).await
        }
        ClustersCommand::Delete { id } => {
            api.send_value(Method::DELETE, &format!("/api/v1/clusters/{id}"), None)
                .await?;
            api.say(&format!("cluster {id} removed"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs `ctforge tokens …`.
pub async fn tokens(conn: &Connection, command: TokensCommand) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    let api = Api::new(conn)?;
    match command {
        TokensCommand::List => {
            let cols = ["id", "name", "created_at", "last_used", "revoked_at"];
            call(&api, Method::GET, "/api/v1/tokens", None, &cols).await
        }
        TokensCommand::Create { name } => {
            call(
                &api,
                Method::POST,
                "/api/v1/tokens",
                Some(json!({ "name": name })),
                &[],
            )
            .await
        }
        TokensCommand::Revoke { id } => {
            api.send_value(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
                .await?;
            api.say(&format!("token {id} revoked"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs `ctforge api METHOD PATH`.
pub async fn raw(conn: &Connection, args: RawArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(conn)?;
    let method = reqwest::Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .with_context(|| format!("{:?} is not an HTTP method", args.method))?;
    if !args.path.starts_with("/api/") {
        bail!("the path must start with /api/, e.g. /api/v1/containers");
    }
    let body = args.data.as_deref().map(body_of).transpose()?;
    let answer: Value = api.send_value(method, &args.path, body).await?;
    println!("{answer}");
    Ok(ExitCode::SUCCESS)
}

/// Runs `ctforge apply FILE`.
pub async fn apply(conn: &Connection, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(conn)?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let mut request = crate::fleet::parse_toml(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    request.prune |= args.prune;
    let body = serde_json::to_value(&request)?;
    if args.plan_only {
        let plan: FleetPlan = api
            .send(reqwest::Method::POST, "/api/v1/fleet/plan", Some(body))
            .await?;
        if api.output == Output::Json {
            println!("{}", serde_json::to_string(&plan)?);
        } else {
            print!("{}", crate::fleet::render(&plan, false));
        }
        return Ok(if plan.has_changes() {
            ExitCode::from(EXIT_CHANGED)
        } else {
            ExitCode::SUCCESS
        });
    }
    let applied: FleetApplied = api
        .send(reqwest::Method::POST, "/api/v1/fleet/apply", Some(body))
        .await?;
    let text = api.output == Output::Text;
    if text {
        print!("{}", crate::fleet::render(&applied.plan, false));
    }
    let (job_id, true) = (applied.job_id, applied.applied) else {
        if api.output == Output::Json {
            println!("{}", serde_json::to_string(&applied)?);
        }
        return Ok(ExitCode::SUCCESS);
    };
    let Some(job_id) = job_id else {
        bail!("the server applied changes but named no job");
    };
    if args.no_wait {
        if text {
            println!("Queued as job {job_id} (`ctforge jobs show {job_id}`).");
        } else {
            println!("{}", serde_json::to_string(&applied)?);
        }
        return Ok(ExitCode::from(EXIT_CHANGED));
    }
    if text {
        println!("Applying as job {job_id}…");
    }
    // Follow the job: each item's line as soon as its result is known.
    let mut printed = std::collections::HashSet::new();
    let done = loop {
        let job: Value = api
            .send_value(
                reqwest::Method::GET,
                &format!("/api/v1/jobs/{job_id}"),
                None,
            )
            .await?;
        let result: FleetResult = serde_json::from_value(job["result"].clone()).unwrap_or_default();
        if text {
            for r in result
                .items
                .iter()
                .filter(|r| r.state != ItemState::Pending)
            {
                if printed.insert((r.item.key(), r.attempt, r.state)) {
                    println!("{}", crate::fleet::job::result_line(r));
                }
            }
        }
        if matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            break (job, result);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (job, result) = done;
    let failed = job["state"] != "succeeded";
    if api.output == Output::Json {
        println!(
            "{}",
            json!({ "applied": true, "plan": applied.plan, "job_id": job_id, "created": applied.created, "job": job, "result": result })
        );
    } else if failed {
        println!(
            "Apply failed: {} of {} change(s) failed{} (job {job_id} {}). Retry only the failures with `ctforge jobs retry {job_id}`.",
            result.failed,
            result.total,
            if result.pending > 0 {
                format!(", {} not run", result.pending)
            } else {
                String::new()
            },
            value_text(&job["state"])
        );
    } else {
        let done = |kind: ChangeKind| {
            result
                .items
                .iter()
                .filter(|r| r.item.action == kind && r.state == ItemState::Succeeded)
                .count()
        };
        println!(
            "Apply complete: {} created, {} changed, {} removed.",
            done(ChangeKind::Create),
            done(ChangeKind::Update),
            done(ChangeKind::Remove)
        );
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::from(EXIT_CHANGED)
    })
}
