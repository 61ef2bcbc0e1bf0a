//! `/nodes/{name}`: a Proxmox node's resource history (CPU, memory, root disk, network, disk
//! I/O) from `/nodes/{node}/rrddata`, read with the user's own ticket, with the same
//! hour/day/week/month/year toggle as the container Resources tab (`?timeframe=day`). The
//! cluster is `?cluster=<name>`, else the one the user signed in to, else the default one.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use ctforge_pve::types::Timeframe;
use maud::html;
use serde::Deserialize;

use crate::auth::CurrentUser;
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
    let cluster_q =
        serde_urlencoded::to_string([("cluster", cluster.name.as_str())]).unwrap_or_default();
    let path_name: String = url_segment(&name);
    let href = |t: Timeframe| format!("/nodes/{path_name}?timeframe={}&{cluster_q}", t.as_str());
    let title = format!("Node {name}");
    let body = html! {
        (ui::breadcrumbs(&[("/", "Containers"), ("", &title)]))
        div.page-head {
            div {
                h1 { "Node " (name) }
                div.row { span { "Cluster " strong { (cluster.name) } } }
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
