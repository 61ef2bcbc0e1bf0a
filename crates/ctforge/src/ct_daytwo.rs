//! `ctforge ct set|resize|snapshot|rollback|clone|template`: the day-two operations of the
//! JSON API (`/api/v1/containers/{id}/config`, `…/resize`, `…/snapshots`, `…/clone`,
//! `…/template`) from the command line. `set --dry-run` prints the diff without applying;
//! `rollback` names what is lost and asks before it acts (`-y` skips the question).
//!
//! While an operation that is a Proxmox task runs, its task log is followed live
//! (`…/task-log?until_end=true`) and printed line by line; the answer then adds only the lines
//! the stream missed.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::containers::daytwo::{ConfigPreview, OpOutcome, SnapshotList};
use crate::containers::edit::{Change, ConfigEdit, MountEdit, NetEdit, Startup};
use crate::ct_client::Api;

/// The day-two subcommands of `ctforge ct`.
#[derive(Debug, Subcommand)]
pub enum DayTwoCommand {
    /// Change a container's configuration (what waits for a restart is listed).
    Set(Box<SetArgs>),
    /// Grow a disk: `ct resize 42 rootfs +2G` (never smaller).
    Resize {
        /// Container (record id, or `cluster:vmid`).
        id: String,
        /// `rootfs` or `mpN`.
        disk: String,
        /// `+2G` grows by, `10G` grows to.
        size: String,
    },
    /// Take a snapshot (`ct snapshot 42 before-upgrade`), list them (`--list`) or delete one
    /// (`--delete`).
    Snapshot {
        /// Container.
        id: String,
        /// Snapshot name.
        name: Option<String>,
        /// Description of a new snapshot.
        #[arg(long)]
        description: Option<String>,
        /// List the snapshots as a tree.
        #[arg(long, conflicts_with_all = ["description", "delete"])]
        list: bool,
        /// Delete the named snapshot.
        #[arg(long)]
        delete: bool,
    },
    /// Roll back to a snapshot: the current state is lost.
    Rollback {
        /// Container.
        id: String,
        /// Snapshot name.
        name: String,
        /// Start the container afterwards.
        #[arg(long)]
        start: bool,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Clone a container (full copy, or linked from a template).
    Clone {
        /// Container.
        id: String,
        /// VMID of the clone (default: the next free one).
        #[arg(long)]
        newid: Option<u32>,
        /// Hostname of the clone.
        #[arg(long)]
        hostname: Option<String>,
        /// Linked clone (templates only).
        #[arg(long, conflicts_with = "full")]
        linked: bool,
        /// Full copy (the default for a normal container).
        #[arg(long)]
        full: bool,
        /// Target storage of a full clone.
        #[arg(long)]
        storage: Option<String>,
        /// Clone from this snapshot.
        #[arg(long)]
        snapshot: Option<String>,
    },
    /// Convert a stopped container into a Proxmox template.
    Template {
        /// Container.
        id: String,
    },
}

/// Options of `ct set`.
#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// Container (record id, or `cluster:vmid`).
    id: String,
    /// CPU cores.
    #[arg(long)]
    cores: Option<u32>,
    /// Memory in MiB.
    #[arg(long)]
    memory: Option<u64>,
    /// Swap in MiB.
    #[arg(long)]
    swap: Option<u64>,
    /// Start on boot (true/false).
    #[arg(long)]
    onboot: Option<bool>,
    /// Boot order and delays: `order=2,up=30,down=60` (empty removes it).
    #[arg(long)]
    startup: Option<String>,
    /// Tags (repeat; replaces all tags).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Remove all tags.
    #[arg(long, conflicts_with = "tags")]
    no_tags: bool,
    /// Description (empty removes it).
    #[arg(long)]
    description: Option<String>,
    /// DNS servers, space-separated (empty: the node's).
    #[arg(long)]
    nameserver: Option<String>,
    /// DNS search domain (empty: the node's).
    #[arg(long)]
    searchdomain: Option<String>,
    /// A network interface: `0:ip=192.0.2.10/24,gw=192.0.2.1,tag=20,firewall=1,rate=10,mtu=1400`
    /// (also `bridge=`, `name=`; `ip=dhcp`) — repeat for more.
    #[arg(long)]
    net: Vec<String>,
    /// Remove network interface N.
    #[arg(long)]
    remove_net: Vec<u8>,
    /// A mount point: `0:storage=local-lvm,size=8,path=/data` or `1:host=/srv/media,path=/media,ro=1`
    /// (bind mounts: root@pam only).
    #[arg(long)]
    mp: Vec<String>,
    /// Remove mount point N.
    #[arg(long)]
    remove_mp: Vec<u16>,
    /// Show the diff, change nothing.
    #[arg(long)]
    dry_run: bool,
}

fn flag(v: &str) -> anyhow::Result<bool> {
    match v {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => bail!("{other:?} is not a yes/no value (use 1 or 0)"),
    }
}

fn pairs(spec: &str) -> anyhow::Result<(String, Vec<(String, String)>)> {
    let (index, rest) = spec
        .split_once(':')
        .with_context(|| format!("{spec:?}: start with the index, e.g. 0:ip=dhcp"))?;
    let mut out = Vec::new();
    for part in rest.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .with_context(|| format!("{part:?}: use key=value"))?;
        out.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    Ok((index.trim().to_owned(), out))
}

fn parse_net(spec: &str) -> anyhow::Result<(u8, NetEdit)> {
    let (index, kv) = pairs(spec)?;
    let index: u8 = index
        .parse()
        .with_context(|| format!("{index:?} is not an interface index"))?;
    let mut n = NetEdit::default();
    for (k, v) in kv {
        match k.as_str() {
            "ip" => n.ip = Some(v),
            "gw" => n.gw = Some(v),
            "tag" => n.tag = Some(v.parse().context("tag must be a number")?),
            "firewall" => n.firewall = Some(flag(&v)?),
            "rate" => n.rate = Some(v.parse().context("rate must be a number (MB/s)")?),
            "mtu" => n.mtu = Some(v.parse().context("mtu must be a number")?),
            "bridge" => n.bridge = Some(v),
            "name" => n.name = Some(v),
            other => bail!(
                "unknown network key {other:?} (ip, gw, tag, firewall, rate, mtu, bridge, name)"
            ),
        }
    }
    Ok((index, n))
}

fn parse_mp(spec: &str) -> anyhow::Result<(u16, MountEdit)> {
    let (index, kv) = pairs(spec)?;
    let index: u16 = index
        .parse()
        .with_context(|| format!("{index:?} is not a mount point index"))?;
    let mut m = MountEdit::default();
    for (k, v) in kv {
        match k.as_str() {
            "storage" => m.storage = Some(v),
            "size" => m.size_gib = Some(v.trim_end_matches('G').parse().context("size is in GiB")?),
            "host" => m.host_path = Some(v),
            "path" | "mp" => m.path = Some(v),
            "backup" => m.backup = Some(flag(&v)?),
            "ro" => m.ro = Some(flag(&v)?),
            other => {
                bail!("unknown mount point key {other:?} (storage, size, host, path, backup, ro)")
            }
        }
    }
    Ok((index, m))
}

fn parse_startup(spec: &str) -> anyhow::Result<Startup> {
    let mut s = Startup::default();
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .with_context(|| format!("{part:?}: use key=value"))?;
        let v: u32 = v.parse().with_context(|| format!("{k} must be a number"))?;
        match k {
            "order" => s.order = Some(v),
            "up" => s.up = Some(v),
            "down" => s.down = Some(v),
            other => bail!("unknown startup key {other:?} (order, up, down)"),
        }
    }
    Ok(s)
}

fn edit_of(a: &SetArgs) -> anyhow::Result<ConfigEdit> {
    let mut net = BTreeMap::new();
    for spec in &a.net {
        let (i, n) = parse_net(spec)?;
        net.insert(i, n);
    }
    for i in &a.remove_net {
        net.insert(
            *i,
            NetEdit {
                remove: true,
                ..NetEdit::default()
            },
        );
    }
    let mut mp = BTreeMap::new();
    for spec in &a.mp {
        let (i, m) = parse_mp(spec)?;
        mp.insert(i, m);
    }
    for i in &a.remove_mp {
        mp.insert(
            *i,
            MountEdit {
                remove: true,
                ..MountEdit::default()
            },
        );
    }
    Ok(ConfigEdit {
        cores: a.cores,
        memory: a.memory,
        swap: a.swap,
        onboot: a.onboot,
        startup: a.startup.as_deref().map(parse_startup).transpose()?,
        tags: if a.no_tags {
            Some(Vec::new())
        } else if a.tags.is_empty() {
            None
        } else {
            Some(a.tags.clone())
        },
        description: a.description.clone(),
        nameserver: a.nameserver.clone(),
        searchdomain: a.searchdomain.clone(),
        net,
        mp,
        digest: None,
    })
}

fn print_changes(changes: &[Change]) {
    if changes.is_empty() {
        println!("no change: the configuration already has these values");
    }
    for c in changes {
        match (&c.current, &c.new) {
            (Some(old), Some(new)) => println!("~ {}: {old} → {new}", c.key),
            (None, Some(new)) => println!("+ {}: {new}", c.key),
            (Some(old), None) => println!("- {}: {old}", c.key),
            (None, None) => {}
        }
    }
}

/// Prints what the operation did: the task log lines not shown live yet (`shown` were),
/// then its message.
fn print_outcome(api: &Api, out: &OpOutcome, shown: usize) {
    for line in out.task_log.iter().skip(shown) {
        api.say(&format!("  {line}"));
    }
    println!("{}", out.message);
}

/// Runs `call` while following CT `id`'s task log: each line is printed as Proxmox writes it.
/// Returns the answer and how many lines were printed.
async fn with_live_log<T>(
    api: &Api,
    id: &str,
    call: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(T, usize)> {
    use futures_util::StreamExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let shown = Arc::new(AtomicUsize::new(0));
    // Subscribed once the stream's headers are here: no line of the task is missed.
    let stream = api
        .events_request(&format!("/api/v1/containers/{id}/task-log?until_end=true"))
        .send()
        .await
        .ok()
        .filter(|r| r.status().is_success());
    let to_stderr = api.output == crate::ct_client::Output::Json;
    let printer = stream.map(|response| {
        let shown = shown.clone();
        tokio::spawn(async move {
            let mut bytes = response.bytes_stream();
            let mut buffer = String::new();
            while let Some(Ok(chunk)) = bytes.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(pos) = buffer.find('\n') {
                    let line = buffer[..pos].trim_end_matches('\r').to_owned();
                    buffer.drain(..=pos);
                    let Some(data) = line.strip_prefix("data:") else {
                        continue;
                    };
                    let Ok(event) = serde_json::from_str::<crate::events::BusEvent>(data.trim())
                    else {
                        continue;
                    };
                    match (event.kind.as_str(), event.data.as_str()) {
                        ("log", Some(text)) => {
                            if to_stderr {
                                eprintln!("  {text}");
                            } else {
                                println!("  {text}");
                            }
                            shown.fetch_add(1, Ordering::SeqCst);
                        }
                        ("done" | "error", _) => return,
                        _ => {}
                    }
                }
            }
        })
    });
    let answer = call.await;
    if let Some(handle) = printer {
        // The lines were published before the answer; give the stream a moment to deliver.
        if tokio::time::timeout(std::time::Duration::from_secs(2), handle)
            .await
            .is_err()
        {
            tracing::debug!("the task log stream did not end with the answer");
        }
    }
    Ok((answer?, shown.load(Ordering::SeqCst)))
}

/// Runs a day-two subcommand.
pub(crate) async fn run(api: &Api, command: DayTwoCommand) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    match command {
        DayTwoCommand::Set(a) => {
            let edit = edit_of(&a)?;
            let body = serde_json::to_value(&edit)?;
            if a.dry_run {
                let p: ConfigPreview = api
                    .send(
                        Method::POST,
                        &format!("/api/v1/containers/{}/config/preview", a.id),
                        Some(body),
                    )
                    .await?;
                print_changes(&p.changes);
                if p.running && !p.changes.is_empty() {
                    println!(
                        "(the CT runs: what Proxmox cannot change live waits for the next start)"
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            let out: OpOutcome = api
                .send(
                    Method::PUT,
                    &format!("/api/v1/containers/{}/config", a.id),
                    Some(body),
                )
                .await?;
            print_changes(&out.changes);
            for p in &out.pending {
                println!(
                    "pending until restart: {} = {}",
                    p.key,
                    p.pending.as_deref().unwrap_or("(deleted)")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DayTwoCommand::Resize { id, disk, size } => {
            let (out, shown) = with_live_log(
                api,
                &id,
                api.send::<OpOutcome>(
                    Method::POST,
                    &format!("/api/v1/containers/{id}/resize"),
                    Some(json!({ "disk": disk, "size": size })),
                ),
            )
            .await?;
            print_outcome(api, &out, shown);
            Ok(ExitCode::SUCCESS)
        }
        DayTwoCommand::Snapshot {
            id,
            name,
            description,
            list,
            delete,
        } => {
            if list || name.is_none() {
                let l: SnapshotList = api
                    .send(
                        Method::GET,
                        &format!("/api/v1/containers/{id}/snapshots"),
                        None,
                    )
                    .await?;
                for s in &l.snapshots {
                    let here = if l.current_parent.as_deref() == Some(s.name.as_str()) {
                        "  ← current state"
                    } else {
                        ""
                    };
                    println!("{}{} {}{here}", "  ".repeat(s.depth), s.name, s.description);
                }
                if l.snapshots.is_empty() {
                    println!("no snapshots");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let name = name.unwrap_or_default();
            let (out, shown) = if delete {
                with_live_log(
                    api,
                    &id,
                    api.send::<OpOutcome>(
                        Method::DELETE,
                        &format!("/api/v1/containers/{id}/snapshots/{name}"),
                        None,
                    ),
                )
                .await?
            } else {
                let mut body = json!({ "name": name });
                if let Some(d) = description {
                    body["description"] = Value::from(d);
                }
                with_live_log(
                    api,
                    &id,
                    api.send::<OpOutcome>(
                        Method::POST,
                        &format!("/api/v1/containers/{id}/snapshots"),
                        Some(body),
                    ),
                )
                .await?
            };
            print_outcome(api, &out, shown);
            Ok(ExitCode::SUCCESS)
        }
        DayTwoCommand::Rollback {
            id,
            name,
            start,
            yes,
        } => {
            if !yes {
                use std::io::{BufRead, Write};
                let l: SnapshotList = api
                    .send(
                        Method::GET,
                        &format!("/api/v1/containers/{id}/snapshots"),
                        None,
                    )
                    .await?;
                let Some(snap) = l.snapshots.iter().find(|s| s.name == name) else {
                    bail!("CT {id} has no snapshot {name:?}");
                };
                eprintln!(
                    "rolling back to {name} loses the current state of CT {id} (everything since the snapshot)."
                );
                if !snap.newer.is_empty() {
                    eprintln!(
                        "newer snapshots no longer lead to the current state: {}",
                        snap.newer.join(", ")
                    );
                }
                eprint!("type 'yes' to roll back: ");
                let _ = std::io::stderr().flush();
                let mut answer = String::new();
                std::io::stdin().lock().read_line(&mut answer)?;
                if answer.trim() != "yes" {
                    eprintln!("not rolled back");
                    return Ok(ExitCode::from(1));
                }
            }
            let (out, shown) = with_live_log(
                api,
                &id,
                api.send::<OpOutcome>(
                    Method::POST,
                    &format!("/api/v1/containers/{id}/snapshots/{name}/rollback"),
                    Some(json!({ "start": start })),
                ),
            )
            .await?;
            print_outcome(api, &out, shown);
            Ok(ExitCode::SUCCESS)
        }
        DayTwoCommand::Clone {
            id,
            newid,
            hostname,
            linked,
            full,
            storage,
            snapshot,
        } => {
            let mut body = json!({});
            if let Some(n) = newid {
                body["newid"] = json!(n);
            }
            if let Some(h) = hostname {
                body["hostname"] = json!(h);
            }
            if linked {
                body["full"] = json!(false);
            } else if full {
                body["full"] = json!(true);
            }
            if let Some(s) = storage {
                body["storage"] = json!(s);
            }
            if let Some(s) = snapshot {
                body["snapshot"] = json!(s);
            }
            let (out, shown) = with_live_log(
                api,
                &id,
                api.send::<OpOutcome>(
                    Method::POST,
                    &format!("/api/v1/containers/{id}/clone"),
                    Some(body),
                ),
            )
            .await?;
            print_outcome(api, &out, shown);
            if let Some(new_id) = out.new_id {
                api.say(&format!("ctforge id of the clone: {new_id}"));
            }
            Ok(ExitCode::SUCCESS)
        }
        DayTwoCommand::Template { id } => {
            let out: OpOutcome = api
                .send(
                    Method::POST,
                    &format!("/api/v1/containers/{id}/template"),
                    None,
                )
                .await?;
            print_outcome(api, &out, 0);
            Ok(ExitCode::SUCCESS)
        }
    }
}
