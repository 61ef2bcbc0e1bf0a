//! `/nodes/{name}`: a Proxmox node's page — its status (uptime, CPU, memory, load from
//! `/nodes/{node}/status`), storage usage (`/nodes/{node}/storage`), its guests (the dashboard
//! listing filtered to the node, each linked to its container page) and its resource history
//! (CPU, memory, root disk, network, disk I/O) from `/nodes/{node}/rrddata` with the same
//! hour/day/week/month/year toggle as the container Resources tab (`?timeframe=day`). Everything
//! is read with the user's own ticket. The cluster is `?cluster=<name>`, else the one the user
//! signed in to, else the default one.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use ctforge_pve::types::Timeframe;
use ctforge_pve::types::{NodeStatus, Storage};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::containers::listing::{self, Filter, Row};
use crate::containers::{self, client_for};
use crate::error::AppError;
use crate::state::AppState;
use crate::storage::StoreError;
use crate::storage::model::Cluster;
use crate::web::components::chart::{self, RrdSource};
use crate::web::components::{self as ui, Tone};
use crate::web::home::viewer;

/// Query of the node page.
#[derive(Debug, Default, Deserialize)]
pub struct NodeQuery {
    /// `hour` (default), `day`, `week`, `month` or `year`.
    #[serde(default)]
    pub timeframe: Option<String>,
    /// Cluster name (defaults to the user's cluster, then the default cluster).
    #[serde(default)]
    pub cluster: Option<String>,
}

async fn pick_cluster(
    state: &AppState,
    user: &CurrentUser,
    name: Option<&str>,
) -> Result<Cluster, AppError> {
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        return state
            .store
            .get_cluster_by_name(name)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AppError::NotFound(format!("cluster {name:?}")),
                other => other.into(),
            });
    }
    if let Some(ticket) = &user.ticket {
        return Ok(state.store.get_cluster(ticket.cluster_id).await?);
    }
    let clusters = state.store.list_clusters().await?;
    clusters
        .iter()
        .find(|c| c.is_default)
        .or_else(|| clusters.first())
        .cloned()
        .ok_or_else(|| AppError::NotFound("no cluster is configured".to_owned()))
}

/// `GET /nodes/{name}`.
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
    Query(query): Query<NodeQuery>,
) -> Result<Response, AppError> {
    let cluster = pick_cluster(&state, &user, query.cluster.as_deref()).await?;
    let timeframe = chart::parse_timeframe(query.timeframe.as_deref());
    let client = client_for(&state, &user, &cluster)?;
    let points = match client.node_rrddata(&name, timeframe, None).await {
        Ok(p) => {
            state.down.mark_up(cluster.id);
            Ok(p)
        }
        Err(e) if e.is_not_found() => {
            return Err(AppError::NotFound(format!(
                "node {name:?} in cluster {}",
                cluster.name
            )));
        }
        Err(e) if containers::is_unreachable(&e) => {
            state.down.mark_down(cluster.id, state.clock.now_ms());
            Err(e.to_string())
        }
        Err(e) => {
            // Proxmox answers an unknown node with a 500 ("hostname lookup failed").
            if let Ok(nodes) = client.nodes().await
                && !nodes.iter().any(|n| n.node == name)
            {
                return Err(AppError::NotFound(format!(
                    "node {name:?} in cluster {}",
                    cluster.name
                )));
            }
            Err(e.to_string())
        }
    };
    let filter = Filter {
        node: Some(name.clone()),
        ..Filter::default()
    };
    let (status, storages, guests) = tokio::join!(
        client.node_status(&name),
        client.node_storage(&name, None),
        listing::list(&state, &user, &filter),
    );
    let guests = guests?;
    let guests: Vec<&Row> = guests
        .items
        .iter()
        .filter(|r| r.cluster == cluster.name)
        .collect();
    let running: Vec<(crate::status::GuestKind, u32)> = guests
        .iter()
        .filter(|r| r.status == crate::status::ContainerStatus::Running)
        .map(|r| (r.kind, r.vmid))
        .collect();
    let pending = crate::containers::daytwo::pending_keys(client.as_ref(), &name, &running).await;
    let cluster_q =
        serde_urlencoded::to_string([("cluster", cluster.name.as_str())]).unwrap_or_default();
    let path_name: String = url_segment(&name);
    let href = |t: Timeframe| format!("/nodes/{path_name}?timeframe={}&{cluster_q}", t.as_str());
    let all_guests = format!(
        "/?{}",
        serde_urlencoded::to_string([("node", name.as_str()), ("view", "table")])
            .unwrap_or_default()
    );
    let title = format!("Node {name}");
    let body = html! {
        (ui::breadcrumbs(&[("/", "Containers"), ("", &title)]))
        div.page-head {
            div {
                h1 { "Node " (name) }
                div.row { span { "Cluster " strong { (cluster.name) } } }
            }
        }
        div.grid.node-grid {
            section.card aria-labelledby="node-status" {
                h2 id="node-status" { "Status" }
                @match &status {
                    Ok(s) => (status_card(s)),
                    Err(e) => (ui::alert(Tone::Err, &format!("Could not read the node's status: {e}"))),
                }
            }
            section.card aria-labelledby="node-storage" {
                h2 id="node-storage" { "Storage" }
                @match &storages {
                    Ok(list) if list.is_empty() => p.muted { "No storage on this node." },
                    Ok(list) => (storage_card(list)),
                    Err(e) => (ui::alert(Tone::Err, &format!("Could not read the node's storage: {e}"))),
                }
            }
        }
        section.card aria-labelledby="node-guests" {
            div.row.resources-head {
                h2 id="node-guests" { "Guests" }
                a href=(all_guests) { "Show on the dashboard" }
            }
            @if guests.is_empty() {
                p.muted { "No guest on this node." }
            } @else {
                div.table-wrap {
                    table.table {
                        thead { tr {
                            th scope="col" { "VMID" } th scope="col" { "Name" } th scope="col" { "Type" }
                            th scope="col" { "Status" } th scope="col" { "Template" }
                            th scope="col" { "Proxmox lock" } th scope="col" { "Pending until restart" }
                        } }
                        tbody {
                            @for row in &guests {
                                tr {
                                    td.mono { a href={ "/containers/" (row.key) } { (row.vmid) } }
                                    td { a href={ "/containers/" (row.key) } { (row.hostname) } }
                                    td { (if row.kind == crate::status::GuestKind::Qemu { "VM" } else { "Container" }) }
                                    td { (ui::status_badge(row.status.as_str())) }
                                    td { (row.template.as_deref().unwrap_or("–")) }
                                    td { @match &row.lock { Some(l) => (ui::badge(Some(Tone::Warn), &format!("lock: {l}"))), None => "–" } }
                                    td {
                                        @match pending.get(&row.vmid) {
                                            Some(keys) => a href={ "/containers/" (row.key) "/edit" } { (ui::badge(Some(Tone::Warn), &keys.join(", "))) },
                                            None => "–",
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.card.resources {
            div.row.resources-head {
                h2 { "Resource history" }
                (chart::timeframe_toggle(timeframe, &href))
            }
            @match &points {
                Ok(points) => (chart::rrd_charts(points, RrdSource::Node)),
                Err(e) => (ui::alert(Tone::Err, &format!("Could not load the resource history: {e}"))),
            }
        }
    };
    Ok(ui::layout(&title, "/", &viewer(&user), body).into_response())
}

fn fraction(used: Option<u64>, total: Option<u64>) -> (Option<f64>, String) {
    match (used, total) {
        (Some(u), Some(t)) if t > 0 => (
            Some(u as f64 / t as f64),
            format!("{} of {}", ui::fmt_bytes(u), ui::fmt_bytes(t)),
        ),
        _ => (None, "–".to_owned()),
    }
}

fn status_card(s: &NodeStatus) -> Markup {
    let cpu_text = match (s.cpu, s.cpuinfo.cpus) {
        (Some(c), Some(n)) => format!("{:.0} % of {n} CPUs", c * 100.0),
        (Some(c), None) => format!("{:.0} %", c * 100.0),
        _ => "–".to_owned(),
    };
    let (mem, mem_text) = fraction(s.memory.used, s.memory.total);
    let (root, root_text) = fraction(s.rootfs.used, s.rootfs.total);
    html! {
        dl.facts {
            dt { "Uptime" } dd { (s.uptime.map(ui::fmt_duration).unwrap_or_else(|| "–".to_owned())) }
            dt { "Load average" } dd.mono { (if s.loadavg.is_empty() { "–".to_owned() } else { s.loadavg.join(" ") }) }
            @if let Some(v) = &s.pveversion { dt { "Version" } dd { (v) } }
        }
        (ui::usage_bar("CPU", s.cpu, &cpu_text))
        (ui::usage_bar("Memory", mem, &mem_text))
        (ui::usage_bar("Root disk", root, &root_text))
    }
}

fn storage_card(list: &[Storage]) -> Markup {
    html! {
        @for st in list {
            @let (f, text) = fraction(st.used, st.total);
            @let label = format!("{} ({})", st.storage, st.kind);
            (ui::usage_bar(&label, f, &text))
        }
    }
}

/// Percent-encodes a path segment (node names are simple, but never trust input).
fn url_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
