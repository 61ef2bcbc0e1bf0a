//! The CLI commands that are one API operation each, declared as a table ([`OPS`]) instead of
//! hand-written: `buckets`, `images`, `notifications`, `roles`, `audit`, `auth`,
//! `template-sources`, `guests`, and the extra operations of `ct`, `clusters`, `jobs` and
//! `templates remote`. Each row names the family, the subcommand, the method and the path;
//! `{…}` segments of the path become positional arguments, bodies come from `--data` (JSON or
//! `@file.json`), `GET`s take `--query` (`status=failed&limit=10`), and streams (Server-Sent
//! Events) print each event's data line until the server ends them.
//!
//! [`Ops<F>`] is a clap subcommand built from the rows of family `F` (a hand-written
//! [`clap::Subcommand`]), so completions and the man page list them like every other command.
//! [`COVERAGE`] maps the API operations that hand-written commands run; the test below checks
//! that every API operation of the route table has a command and that each parses.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use futures_util::StreamExt;

use crate::ct_client::{Api, Connection};

/// How an operation takes its input and gives its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// No body (`--query` for `GET`s).
    Plain,
    /// A JSON body (`--data`, required).
    Body,
    /// An optional JSON body.
    MaybeBody,
    /// A Server-Sent Events stream.
    Stream,
}

/// One API operation as a CLI command.
#[derive(Debug)]
pub struct Op {
    /// The command family ([`FAMILIES`]).
    pub family: &'static str,
    /// The subcommand.
    pub name: &'static str,
    /// HTTP method.
    pub method: &'static str,
    /// Path pattern.
    pub path: &'static str,
    /// Input and answer.
    pub kind: Kind,
    /// Help text.
    pub about: &'static str,
}

/// Families of [`Ops`], by index (the const parameter).
pub const FAMILIES: &[&str] = &[
    "buckets",
    "images",
    "notifications",
    "roles",
    "audit",
    "auth",
    "template-sources",
    "guests",
    "ct",
    "clusters",
    "jobs",
    "templates",
];
/// Index of `buckets` in [`FAMILIES`].
pub const BUCKETS: usize = 0;
/// Index of `images`.
pub const IMAGES: usize = 1;
/// Index of `notifications`.
pub const NOTIFICATIONS: usize = 2;
/// Index of `roles`.
pub const ROLES: usize = 3;
/// Index of `audit`.
pub const AUDIT: usize = 4;
/// Index of `auth`.
pub const AUTH: usize = 5;
/// Index of `template-sources`.
pub const TEMPLATE_SOURCES: usize = 6;
/// Index of `guests`.
pub const GUESTS: usize = 7;
/// Index of the extra `ct` operations.
pub const CT: usize = 8;
/// Index of the extra `clusters` operations.
pub const CLUSTERS: usize = 9;
/// Index of the extra `jobs` operations.
pub const JOBS: usize = 10;
/// Index of the extra `templates remote` operations.
pub const TEMPLATES: usize = 11;

const fn op(
    family: &'static str,
    name: &'static str,
    method: &'static str,
    path: &'static str,
    kind: Kind,
    about: &'static str,
) -> Op {
    Op {
        family,
        name,
        method,
        path,
        kind,
        about,
    }
}

use Kind::{Body, MaybeBody, Plain, Stream};

/// Every table-driven command.
pub const OPS: &[Op] = &[
    op(
        "buckets",
        "list",
        "GET",
        "/api/v1/buckets",
        Plain,
        "List package buckets.",
    ),
    op(
        "buckets",
        "show",
        "GET",
        "/api/v1/buckets/{id}",
        Plain,
        "Show a bucket.",
    ),
    op(
        "buckets",
        "create",
        "POST",
        "/api/v1/buckets",
        Body,
        "Create a bucket from a JSON body.",
    ),
    op(
        "buckets",
        "update",
        "PUT",
        "/api/v1/buckets/{id}",
        Body,
        "Replace a bucket's settings.",
    ),
    op(
        "buckets",
        "delete",
        "DELETE",
        "/api/v1/buckets/{id}",
        Plain,
        "Delete a bucket.",
    ),
    op(
        "buckets",
        "add-packages",
        "POST",
        "/api/v1/buckets/{id}/packages",
        Body,
        "Add packages to a bucket.",
    ),
    op(
        "buckets",
        "remove-packages",
        "DELETE",
        "/api/v1/buckets/{id}/packages",
        Body,
        "Remove packages from a bucket.",
    ),
    op(
        "images",
        "list",
        "GET",
        "/api/v1/images",
        Plain,
        "List baked images.",
    ),
    op(
        "images",
        "build",
        "POST",
        "/api/v1/images",
        Body,
        "Bake an image of a template (a job).",
    ),
    op(
        "images",
        "delete",
        "DELETE",
        "/api/v1/images/{id}",
        Plain,
        "Delete an image.",
    ),
    op(
        "notifications",
        "list",
        "GET",
        "/api/v1/notifications/targets",
        Plain,
        "List notification targets.",
    ),
    op(
        "notifications",
        "show",
        "GET",
        "/api/v1/notifications/targets/{id}",
        Plain,
        "Show a target.",
    ),
    op(
        "notifications",
        "create",
        "POST",
        "/api/v1/notifications/targets",
        Body,
        "Add a target (webhook, ntfy, gotify, smtp) with its rules.",
    ),
    op(
        "notifications",
        "update",
        "PUT",
        "/api/v1/notifications/targets/{id}",
        Body,
        "Replace a target.",
    ),
    op(
        "notifications",
        "delete",
        "DELETE",
        "/api/v1/notifications/targets/{id}",
        Plain,
        "Delete a target.",
    ),
    op(
        "notifications",
        "test",
        "POST",
        "/api/v1/notifications/targets/{id}/test",
        Plain,
        "Send a test notification.",
    ),
    op(
        "notifications",
        "deliveries",
        "GET",
        "/api/v1/notifications/deliveries",
        Plain,
        "Delivery attempts with their errors.",
    ),
    op(
        "roles",
        "list",
        "GET",
        "/api/v1/roles",
        Plain,
        "List role grants.",
    ),
    op(
        "roles",
        "grant",
        "POST",
        "/api/v1/roles",
        Body,
        "Grant a role: --data '{\"user\": …, \"role\": \"editor\"}'.",
    ),
    op(
        "roles",
        "revoke",
        "DELETE",
        "/api/v1/roles/{id}",
        Plain,
        "Revoke a role grant.",
    ),
    op(
        "audit",
        "list",
        "GET",
        "/api/v1/audit",
        Plain,
        "Read the audit log (--query user=…&action=…).",
    ),
    op(
        "auth",
        "me",
        "GET",
        "/api/v1/auth/me",
        Plain,
        "Who the token acts as, with roles.",
    ),
    op(
        "auth",
        "logout",
        "POST",
        "/api/v1/auth/logout",
        Plain,
        "End the session (browser sign-ins; a token stays valid).",
    ),
    op(
        "template-sources",
        "list",
        "GET",
        "/api/v1/template-sources",
        Plain,
        "List the git sources of templates.",
    ),
    op(
        "template-sources",
        "set-key",
        "PUT",
        "/api/v1/template-sources/key",
        Body,
        "Set a source's deploy key.",
    ),
    op(
        "template-sources",
        "delete-key",
        "DELETE",
        "/api/v1/template-sources/key",
        Body,
        "Delete a source's deploy key.",
    ),
    op(
        "guests",
        "list",
        "GET",
        "/api/v1/guests",
        Plain,
        "List guests (containers and VMs).",
    ),
    op(
        "guests",
        "show",
        "GET",
        "/api/v1/guests/{id}",
        Plain,
        "Show a guest.",
    ),
    op(
        "guests",
        "create",
        "POST",
        "/api/v1/guests",
        Body,
        "Create a guest (the template decides container or VM).",
    ),
    op(
        "guests",
        "plan",
        "POST",
        "/api/v1/guests/plan",
        Body,
        "Plan a creation without creating.",
    ),
    op(
        "guests",
        "bulk",
        "POST",
        "/api/v1/guests/bulk",
        Body,
        "One action on many guests (a job).",
    ),
    op(
        "guests",
        "delete",
        "DELETE",
        "/api/v1/guests/{id}",
        Plain,
        "Delete a guest.",
    ),
    op(
        "guests",
        "start",
        "POST",
        "/api/v1/guests/{id}/start",
        Plain,
        "Start a guest.",
    ),
    op(
        "guests",
        "stop",
        "POST",
        "/api/v1/guests/{id}/stop",
        Plain,
        "Stop a guest.",
    ),
    op(
        "guests",
        "shutdown",
        "POST",
        "/api/v1/guests/{id}/shutdown",
        Plain,
        "Shut a guest down.",
    ),
    op(
        "guests",
        "reboot",
        "POST",
        "/api/v1/guests/{id}/reboot",
        Plain,
        "Reboot a guest.",
    ),
    op(
        "guests",
        "services",
        "GET",
        "/api/v1/guests/{id}/services",
        Plain,
        "A guest's services.",
    ),
    op(
        "guests",
        "refresh-services",
        "POST",
        "/api/v1/guests/{id}/services/refresh",
        Plain,
        "Check a guest's services now.",
    ),
    op(
        "guests",
        "reveal",
        "POST",
        "/api/v1/guests/{id}/credentials/reveal",
        MaybeBody,
        "Reveal a guest's credentials (audited).",
    ),
    op(
        "guests",
        "events",
        "GET",
        "/api/v1/guests/{id}/events",
        Stream,
        "Follow a guest's job and container events.",
    ),
    op(
        "guests",
        "config",
        "GET",
        "/api/v1/guests/{id}/config",
        Plain,
        "A guest's Proxmox configuration (with pending changes).",
    ),
    op(
        "guests",
        "set",
        "PUT",
        "/api/v1/guests/{id}/config",
        Body,
        "Change a guest's configuration (memory, cores, …).",
    ),
    op(
        "guests",
        "set-preview",
        "POST",
        "/api/v1/guests/{id}/config/preview",
        Body,
        "What a configuration change would do, nothing changed.",
    ),
    op(
        "guests",
        "resize",
        "POST",
        "/api/v1/guests/{id}/resize",
        Body,
        "Grow a guest's disk.",
    ),
    op(
        "guests",
        "snapshots",
        "GET",
        "/api/v1/guests/{id}/snapshots",
        Plain,
        "A guest's snapshots, as a tree.",
    ),
    op(
        "guests",
        "snapshot",
        "POST",
        "/api/v1/guests/{id}/snapshots",
        Body,
        "Take a snapshot of a guest.",
    ),
    op(
        "guests",
        "rollback",
        "POST",
        "/api/v1/guests/{id}/snapshots/{name}/rollback",
        MaybeBody,
        "Roll a guest back to a snapshot.",
    ),
    op(
        "guests",
        "snapshot-delete",
        "DELETE",
        "/api/v1/guests/{id}/snapshots/{name}",
        Plain,
        "Delete a guest's snapshot.",
    ),
    op(
        "guests",
        "clone",
        "POST",
        "/api/v1/guests/{id}/clone",
        Body,
        "Clone a guest (linked or full).",
    ),
    op(
        "guests",
        "template",
        "POST",
        "/api/v1/guests/{id}/template",
        Plain,
        "Convert a guest into a Proxmox template.",
    ),
    op(
        "guests",
        "task-log",
        "GET",
        "/api/v1/guests/{id}/task-log",
        Stream,
        "Follow the Proxmox task running on a guest.",
    ),
    op(
        "guests",
        "journal",
        "GET",
        "/api/v1/guests/{id}/journal",
        Stream,
        "Follow a container's boot log (containers only).",
    ),
    op(
        "ct",
        "show",
        "GET",
        "/api/v1/containers/{id}",
        Plain,
        "Show a container (services, events, jobs, template).",
    ),
    op(
        "ct",
        "check",
        "GET",
        "/api/v1/containers/check",
        Plain,
        "Check a VMID and hostname (--query vmid=…&hostname=…).",
    ),
    op(
        "ct",
        "bulk",
        "POST",
        "/api/v1/containers/bulk",
        Body,
        "One action on many containers (a job).",
    ),
    op(
        "ct",
        "config",
        "GET",
        "/api/v1/containers/{id}/config",
        Plain,
        "A container's Proxmox configuration.",
    ),
    op(
        "ct",
        "services",
        "GET",
        "/api/v1/containers/{id}/services",
        Plain,
        "A container's services.",
    ),
    op(
        "ct",
        "refresh-services",
        "POST",
        "/api/v1/containers/{id}/services/refresh",
        Plain,
        "Check a container's services now.",
    ),
    op(
        "ct",
        "reveal",
        "POST",
        "/api/v1/containers/{id}/credentials/reveal",
        MaybeBody,
        "Reveal a container's credentials (audited).",
    ),
    op(
        "ct",
        "migrate-check",
        "GET",
        "/api/v1/containers/{id}/migrate",
        Plain,
        "Whether and where a container can migrate.",
    ),
    op(
        "ct",
        "events",
        "GET",
        "/api/v1/containers/{id}/events",
        Stream,
        "Follow a container's job and container events.",
    ),
    op(
        "ct",
        "journal",
        "GET",
        "/api/v1/containers/{id}/journal",
        Stream,
        "Follow a container's boot log.",
    ),
    op(
        "ct",
        "task-log",
        "GET",
        "/api/v1/containers/{id}/task-log",
        Stream,
        "Follow the Proxmox task running on a container.",
    ),
    op(
        "clusters",
        "fingerprint",
        "POST",
        "/api/v1/clusters/fingerprint",
        Body,
        "Read a Proxmox server's TLS fingerprint.",
    ),
    op(
        "clusters",
        "nodes",
        "GET",
        "/api/v1/clusters/{id}/nodes",
        Plain,
        "A cluster's nodes with their SSH host keys.",
    ),
    op(
        "clusters",
        "confirm-host-key",
        "POST",
        "/api/v1/clusters/{id}/nodes/{node}/host-key",
        MaybeBody,
        "Confirm a node's SSH host key.",
    ),
    op(
        "clusters",
        "set-node-ssh",
        "PUT",
        "/api/v1/clusters/{id}/nodes/{node}/ssh",
        Body,
        "Set a node's SSH address and port.",
    ),
    op(
        "jobs",
        "events",
        "GET",
        "/api/v1/jobs/{id}/events",
        Stream,
        "Follow a job's events.",
    ),
    op(
        "templates",
        "create",
        "POST",
        "/api/v1/templates",
        Body,
        "Store a template from a JSON body.",
    ),
    op(
        "templates",
        "update",
        "PUT",
        "/api/v1/templates/{name}",
        Body,
        "Replace a stored template.",
    ),
    op(
        "templates",
        "export",
        "GET",
        "/api/v1/templates/{name}/export",
        Plain,
        "Export a template.",
    ),
    op(
        "templates",
        "reattach",
        "POST",
        "/api/v1/templates/{name}/reattach",
        Plain,
        "Reattach a diverged template to its source.",
    ),
];

/// API operations run by hand-written commands: method, path, an example command line.
pub const COVERAGE: &[(&str, &str, &str)] = &[
    ("GET", "/api/v1/containers", "ct list"),
    (
        "POST",
        "/api/v1/containers",
        "ct create --template web --hostname a",
    ),
    (
        "POST",
        "/api/v1/containers/plan",
        "ct create --template web --hostname a --plan",
    ),
    ("POST", "/api/v1/containers/reapply", "ct reapply 1 2"),
    ("DELETE", "/api/v1/containers/{id}", "ct delete 1"),
    ("POST", "/api/v1/containers/{id}/start", "ct start 1"),
    ("POST", "/api/v1/containers/{id}/stop", "ct stop 1"),
    ("POST", "/api/v1/containers/{id}/shutdown", "ct shutdown 1"),
    ("POST", "/api/v1/containers/{id}/reboot", "ct reboot 1"),
    (
        "POST",
        "/api/v1/containers/{id}/migrate",
        "ct migrate 1 --target pve2",
    ),
    ("GET", "/api/v1/containers/{id}/drift", "ct drift 1"),
    ("POST", "/api/v1/containers/{id}/reapply", "ct reapply 1"),
    (
        "PUT",
        "/api/v1/containers/{id}/config",
        "ct set 1 --memory 512",
    ),
    (
        "POST",
        "/api/v1/containers/{id}/config/preview",
        "ct set 1 --memory 512 --dry-run",
    ),
    (
        "POST",
        "/api/v1/containers/{id}/resize",
        "ct resize 1 rootfs +1G",
    ),
    (
        "GET",
        "/api/v1/containers/{id}/snapshots",
        "ct snapshot 1 --list",
    ),
    (
        "POST",
        "/api/v1/containers/{id}/snapshots",
        "ct snapshot 1 before",
    ),
    (
        "DELETE",
        "/api/v1/containers/{id}/snapshots/{name}",
        "ct snapshot 1 before --delete",
    ),
    (
        "POST",
        "/api/v1/containers/{id}/snapshots/{name}/rollback",
        "ct rollback 1 before -y",
    ),
    (
        "POST",
        "/api/v1/containers/{id}/clone",
        "ct clone 1 --hostname b",
    ),
    ("POST", "/api/v1/containers/{id}/template", "ct template 1"),
    ("POST", "/api/v1/templates/{name}/rollout", "ct rollout web"),
    ("POST", "/api/v1/fleet/plan", "apply fleet.toml --plan-only"),
    ("POST", "/api/v1/fleet/apply", "apply fleet.toml"),
    ("GET", "/api/v1/presets", "presets list"),
    ("POST", "/api/v1/presets", "presets create p --template web"),
    ("GET", "/api/v1/presets/{name}", "presets show p"),
    (
        "PUT",
        "/api/v1/presets/{name}",
        "presets update p --template web",
    ),
    ("DELETE", "/api/v1/presets/{name}", "presets delete p"),
    ("GET", "/api/v1/jobs", "jobs list"),
    ("GET", "/api/v1/jobs/{id}", "jobs show 1"),
    ("POST", "/api/v1/jobs/{id}/retry", "jobs retry 1"),
    ("POST", "/api/v1/jobs/{id}/cancel", "jobs cancel 1"),
    ("GET", "/api/v1/clusters", "clusters list"),
    ("POST", "/api/v1/clusters", "clusters add --data {}"),
    ("GET", "/api/v1/clusters/{id}", "clusters show 1"),
    (
        "PUT",
        "/api/v1/clusters/{id}",
        "clusters update 1 --data {}",
    ),
    ("DELETE", "/api/v1/clusters/{id}", "clusters delete 1"),
    ("POST", "/api/v1/clusters/{id}/test", "clusters test 1"),
    ("GET", "/api/v1/tokens", "tokens list"),
    ("POST", "/api/v1/tokens", "tokens create ci"),
    ("DELETE", "/api/v1/tokens/{id}", "tokens revoke 1"),
    ("GET", "/api/v1/templates", "templates remote list"),
    (
        "GET",
        "/api/v1/templates/{name}",
        "templates remote show web",
    ),
    (
        "DELETE",
        "/api/v1/templates/{name}",
        "templates remote delete web",
    ),
    (
        "POST",
        "/api/v1/templates/{name}/duplicate",
        "templates remote duplicate web --as web2",
    ),
    (
        "POST",
        "/api/v1/templates/discover",
        "templates remote remote-discover",
    ),
    (
        "POST",
        "/api/v1/templates/sync",
        "templates remote remote-sync",
    ),
];

impl Op {
    /// The `{…}` segments of the path, in order.
    fn params(&self) -> impl Iterator<Item = &'static str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
    }

    /// The command line of the operation (`ctforge <family> [remote] <name> <args>`).
    pub fn command_line(&self) -> String {
        let family = match self.family {
            "templates" => "templates remote",
            other => other,
        };
        let mut line = format!("{family} {}", self.name);
        for p in self.params() {
            line.push_str(&format!(" <{p}>"));
        }
        line
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(self.name).about(self.about);
        for p in self.params() {
            cmd = cmd.arg(Arg::new(p).required(true).value_name(p));
        }
        match self.kind {
            Kind::Body | Kind::MaybeBody => {
                cmd = cmd.arg(
                    Arg::new("data")
                        .long("data")
                        .required(self.kind == Kind::Body)
                        .value_name("JSON")
                        .help("The JSON body, or @file.json"),
                );
            }
            Kind::Plain | Kind::Stream if self.method == "GET" => {
                cmd = cmd.arg(
                    Arg::new("query")
                        .long("query")
                        .value_name("QUERY")
                        .help("Query string, e.g. status=failed&limit=10"),
                );
            }
            _ => {}
        }
        cmd
    }
}

/// The table-driven subcommands of family `F` ([`FAMILIES`]).
#[derive(Debug, Clone)]
pub struct Ops<const F: usize> {
    op: &'static Op,
    params: Vec<String>,
    data: Option<String>,
    query: Option<String>,
}

fn ops_of(family: usize) -> impl Iterator<Item = &'static Op> {
    let name = FAMILIES.get(family).copied().unwrap_or_default();
    OPS.iter().filter(move |o| o.family == name)
}

impl<const F: usize> clap::FromArgMatches for Ops<F> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let Some((name, sub)) = matches.subcommand() else {
            return Err(clap::Error::new(clap::error::ErrorKind::MissingSubcommand));
        };
        let op = ops_of(F)
            .find(|o| o.name == name)
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidSubcommand))?;
        let get = |id: &str| sub.try_get_one::<String>(id).ok().flatten().cloned();
        Ok(Self {
            op,
            params: op.params().map(|p| get(p).unwrap_or_default()).collect(),
            data: get("data"),
            query: get("query"),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl<const F: usize> clap::Subcommand for Ops<F> {
    fn augment_subcommands(cmd: Command) -> Command {
        ops_of(F).fold(cmd, |cmd, op| cmd.subcommand(op.command()))
    }

    fn augment_subcommands_for_update(cmd: Command) -> Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        ops_of(F).any(|o| o.name == name)
    }
}

fn enc(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

impl<const F: usize> Ops<F> {
    /// The request path with the arguments in place.
    fn path(&self) -> String {
        let mut params = self.params.iter();
        let mut path = self
            .op
            .path
            .split('/')
            .map(|s| {
                if s.starts_with('{') {
                    enc(params.next().map_or("", String::as_str))
                } else {
                    s.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        if let Some(q) = self.query.as_deref().filter(|q| !q.is_empty()) {
            path.push('?');
            path.push_str(q.trim_start_matches('?'));
        }
        path
    }

    /// Runs the operation against the API.
    pub async fn run(&self, conn: &Connection) -> anyhow::Result<ExitCode> {
        let api = Api::new(conn)?;
        let path = self.path();
        if self.op.kind == Kind::Stream {
            return stream(&api, &path).await;
        }
        let method = reqwest::Method::from_bytes(self.op.method.as_bytes())
            .with_context(|| format!("{} is not an HTTP method", self.op.method))?;
        let body = self
            .data
            .as_deref()
            .map(crate::cli_api::body_of)
            .transpose()?;
        crate::cli_api::call(&api, method, &path, body, &[]).await
    }
}

/// Prints the `data:` of each event of a stream until the server ends it.
async fn stream(api: &Api, path: &str) -> anyhow::Result<ExitCode> {
    let response = api
        .events_request(path)
        .send()
        .await
        .context("cannot reach ctforge")?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        anyhow::bail!("{} (HTTP {})", text.trim(), status.as_u16());
    }
    let mut body = response.bytes_stream();
    let mut pending = String::new();
    while let Some(chunk) = body.next().await {
        pending.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            // Each event's data is one JSON document: the same for people and scripts.
            if let Some(data) = line.trim_end().strip_prefix("data:") {
                println!("{}", data.trim_start());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parses(line: &str) -> Result<(), String> {
        let argv = std::iter::once("ctforge").chain(line.split_whitespace());
        crate::cli::Cli::try_parse_from(argv)
            .map(|_| ())
            .map_err(|e| format!("{line}: {e}"))
    }

    #[test]
    fn every_api_operation_has_a_command_that_parses() {
        let mut missing = Vec::new();
        for route in crate::routes::table()
            .iter()
            .filter(|r| r.path.starts_with("/api/v1/"))
        {
            let in_ops = OPS
                .iter()
                .find(|o| o.method == route.method && o.path == route.path);
            let by_hand = COVERAGE
                .iter()
                .find(|(m, p, _)| *m == route.method && *p == route.path);
            match (in_ops, by_hand) {
                (Some(op), _) => {
                    let line = op.command_line().replace(['<', '>'], "");
                    let line = match op.kind {
                        Kind::Body => format!("{line} --data {{}}"),
                        _ => line,
                    };
                    if let Err(e) = parses(&line) {
                        missing.push(e);
                    }
                }
                (None, Some((_, _, line))) => {
                    if let Err(e) = parses(line) {
                        missing.push(e);
                    }
                }
                (None, None) => {
                    // Sign-in is what a token replaces.
                    if route.path != "/api/v1/auth/login" {
                        missing.push(format!("{} {}", route.method, route.path));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "API operations without a CLI command, or whose command does not parse: {missing:#?}"
        );
    }

    #[test]
    fn paths_take_their_arguments_encoded() {
        let ops = Ops::<CLUSTERS> {
            op: ops_of(CLUSTERS)
                .find(|o| o.name == "set-node-ssh")
                .unwrap_or(&OPS[0]),
            params: vec!["3".into(), "pve 1".into()],
            data: None,
            query: None,
        };
        assert_eq!(ops.path(), "/api/v1/clusters/3/nodes/pve+1/ssh");
        let audit = Ops::<AUDIT> {
            op: &OPS[20],
            params: Vec::new(),
            data: None,
            query: Some("user=root@pam".into()),
        };
        assert_eq!(audit.path(), "/api/v1/audit?user=root@pam");
    }
}
