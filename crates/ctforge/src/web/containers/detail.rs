//! `/containers/{id}`: one guest's page — a container or a VM (the header says `CT n` or
//! `VM n`; a VM's overview shows its `status/current` usage, Resources its qemu `rrddata`;
//! day-two buttons are containers only). Header (hostname, VMID, status, node, actions) and tabs as links
//! (`?tab=overview|services|events|resources|template`; Template is `web::containers::drift`). Overview reads `status/current` and the config (and
//! `/interfaces` for DHCP addresses) with the user's ticket, falling back to the record when
//! Proxmox is unreachable; Services lists tracked services and sealed credentials (revealed one
//! at a time through `POST /containers/{id}/credentials/reveal`, audited); Events is the
//! container's timeline with a kind filter and paging; the Services tab's Refresh button
//! (`POST /containers/{id}/services/refresh`) re-runs monitoring and comes back with a notice; Resources charts `rrddata` (CPU,
//! memory, disk, network, disk I/O) for `?timeframe=hour|day|week|month|year`. A container still being created
//! redirects to its job's progress page when that page exists.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use ctforge_pve::types::{IpConfig, LxcConfig, LxcInterface, LxcStatus, QemuStatus, Timeframe};
use maud::{Markup, html};
use serde::Deserialize;

use super::{ActionCtx, action_buttons, flash_cookie, flash_markup, page_response, take_flash};
use crate::auth::CurrentUser;
use crate::containers::guest_kind::{self, GuestState, Located};
use crate::containers::{self, Target, client_for, credentials, monitor, resolve};
use crate::error::AppError;
use crate::state::AppState;
use crate::status::{ContainerStatus, GuestKind, RecordStatus};
use crate::storage::model::ContainerService;
use crate::web::components::chart::{self, RrdSource};
use crate::web::components::{self as ui, Tone, Viewer};
use crate::web::home::viewer;

/// Events per page.
const EVENTS_PAGE: i64 = 50;

/// Query of the detail page.
#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    /// `overview` (default), `services`, `events`, `resources` or `template`.
    #[serde(default)]
    pub tab: Option<String>,
    /// Event kind filter.
    #[serde(default)]
    pub kind: Option<String>,
    /// Events before this id (paging).
    #[serde(default)]
    pub before: Option<String>,
    /// Resources tab time frame (`hour` default, `day`, `week`, `month`, `year`).
    #[serde(default)]
    pub timeframe: Option<String>,
}

/// Live data for the overview.
struct Live {
    node: String,
    /// Container or VM.
    kind: GuestKind,
    /// The usage the overview shows (a VM's `status/current` in the same fields).
    status: LxcStatus,
    config: Option<LxcConfig>,
    interfaces: Vec<LxcInterface>,
}

/// Live state; `Ok(None)` when Proxmox answers that an unmanaged CT does not exist.
async fn fetch_live(
    state: &AppState,
    user: &CurrentUser,
    target: &Target,
) -> Result<Option<Live>, String> {
    let client = client_for(state, user, &target.cluster).map_err(|e| e.to_string())?;
    let Located {
        node,
        kind,
        state: found,
    } = match guest_kind::locate(client.as_ref(), target).await {
        Ok(found) => found,
        // Gone from Proxmox: the caller shows the record (if any) without the unreachable banner.
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => {
            if containers::is_unreachable(&e) {
                state
                    .down
                    .mark_down(target.cluster.id, state.clock.now_ms());
            }
            return Err(e.to_string());
        }
    };
    state.down.mark_up(target.cluster.id);
    let status = match found {
        GuestState::Lxc(s) => s,
        GuestState::Qemu(q) => vm_usage(q),
    };
    if kind == GuestKind::Qemu {
        // A VM's config and addresses come from qemu endpoints the overview does not read yet.
        return Ok(Some(Live {
            node,
            kind,
            status,
            config: None,
            interfaces: Vec::new(),
        }));
    }
    let config = client.lxc_config_get(&node, target.vmid, false).await.ok();
    let dhcp = config.as_ref().is_some_and(|c| {
        c.nets
            .values()
            .any(|n| matches!(n.ip, Some(IpConfig::Dhcp)))
    });
    let interfaces = if dhcp && status.is_running() {
        client
            .lxc_interfaces(&node, target.vmid)
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Ok(Some(Live {
        node,
        kind,
        status,
        config,
        interfaces,
    }))
}

/// A VM's `status/current` in the fields the overview shows for a container (CPU, memory,
/// disk size, uptime, name, lock).
fn vm_usage(q: QemuStatus) -> LxcStatus {
    LxcStatus {
        vmid: q.vmid,
        status: q.status,
        name: q.name,
        cpus: q.cpus,
        cpu: q.cpu,
        mem: q.mem,
        maxmem: q.maxmem,
        maxdisk: q.maxdisk,
        uptime: q.uptime,
        pid: q.pid,
        lock: q.lock,
        tags: q.tags,
        template: q.template,
        ..LxcStatus::default()
    }
}

/// `GET /containers/{id}`.
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    Query(query): Query<DetailQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let target = resolve(&state, &id).await?;
    crate::authz::read(&state, &user, &target.cluster, target.vmid).await?;
    if let Some(record) = target
        .record
        .as_ref()
        .filter(|r| r.status == RecordStatus::Creating)
        && let Some(job) = creation_job(&state, record.id).await
    {
        return Ok(Redirect::to(&format!("/jobs/{job}")).into_response());
    }
    let flash = take_flash(&headers);
    let back = uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| format!("/containers/{id}"));
    let tab = query.tab.as_deref().unwrap_or("overview");
    let body = render(
        &state,
        &user,
        &target,
        tab,
        &query,
        &back,
        None,
        flash.as_ref().map(|f| &f.0),
    )
    .await?;
    let title = format!("{} (CT {})", target.display_name(), target.vmid);
    // Refreshed like the dashboard, and at once when the container's event stream says
    // something happened (assets/app.js, `[data-refresh]` and `[data-container-events]`).
    let stream = target
        .record
        .as_ref()
        .map(|_| format!("/api/v1/containers/{}/events?follow=true", target.url_id()));
    let body = html! {
        div id="ct-detail" data-refresh="30" data-container-events=[stream] { (body) }
    };
    Ok(page_response(
        ui::layout(&title, "/", &viewer(&user), body),
        flash.map(|f| f.1),
    ))
}

/// The body of `POST /containers/{id}/credentials/reveal`.
#[derive(Debug, Default, Deserialize)]
pub struct RevealForm {
    /// Credential name.
    #[serde(default)]
    pub name: String,
}

/// `POST /containers/{id}/credentials/reveal`: the Services tab with one credential shown.
pub async fn reveal(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<RevealForm>,
) -> Result<Response, AppError> {
    let target = resolve(&state, &id).await?;
    let revealed =
        credentials::reveal(&state, &user, &remote.ip().to_string(), &target, &form.name)
            .await
            .map(|plain| (form.name.clone(), plain.expose().to_owned()));
    let notice = revealed.as_ref().err().map(|e| (Tone::Err, e.to_string()));
    let query = DetailQuery {
        tab: Some("services".to_owned()),
        ..DetailQuery::default()
    };
    let back = format!("/containers/{}?tab=services", target.url_id());
    let body = render(
        &state,
        &user,
        &target,
        "services",
        &query,
        &back,
        revealed.ok(),
        notice.as_ref(),
    )
    .await?;
    let title = format!("{} (CT {})", target.display_name(), target.vmid);
    let mut response = ui::layout(&title, "/", &viewer(&user), body).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// `POST /containers/{id}/services/refresh`: re-checks the services now and returns to the
/// Services tab with what was found or what failed.
pub async fn refresh(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
) -> Response {
    let (back, tone, text) = match resolve(&state, &id).await {
        Err(e) => (
            format!("/containers/{id}?tab=services"),
            Tone::Err,
            e.to_string(),
        ),
        Ok(target) => {
            let back = format!("/containers/{}?tab=services", target.url_id());
            let name = target.display_name();
            match monitor::refresh(&state, &user, &target).await {
                Ok(view) if view.ok => (back, Tone::Ok, format!("{name}: {}", view.summary())),
                Ok(view) => (back, Tone::Warn, format!("{name}: {}", view.summary())),
                Err(e) => (back, Tone::Err, format!("{name}: refresh failed: {e}")),
            }
        }
    };
    let mut response = Redirect::to(&back).into_response();
    if let Some(cookie) = flash_cookie(tone, &text) {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, cookie);
    }
    response
}

async fn creation_job(state: &AppState, container_id: i64) -> Option<i64> {
    let filter = crate::storage::model::JobFilter {
        kind: Some(crate::provisioning::submit::JOB_KIND.to_owned()),
        container_id: Some(container_id),
        limit: 1,
        ..Default::default()
    };
    state
        .store
        .find_jobs(&filter)
        .await
        .ok()?
        .first()
        .map(|j| j.id)
}

#[allow(clippy::too_many_arguments)]
async fn render(
    state: &AppState,
    user: &CurrentUser,
    target: &Target,
    tab: &str,
    query: &DetailQuery,
    back: &str,
    revealed: Option<(String, String)>,
    notice: Option<&(Tone, String)>,
) -> Result<Markup, AppError> {
    let viewer = viewer(user);
    // A record whose guest Proxmox no longer has (e.g. its creation failed at `create`): the
    // page still shows the record, and Delete removes it.
    let mut gone = false;
    let live = match fetch_live(state, user, target).await {
        Ok(Some(live)) => Ok(live),
        Ok(None) if target.record.is_some() => {
            gone = true;
            Err(format!("CT {} no longer exists in Proxmox", target.vmid))
        }
        Ok(None) => {
            return Err(AppError::NotFound(format!(
                "CT {} in cluster {}",
                target.vmid, target.cluster.name
            )));
        }
        Err(e) => Err(e),
    };
    let record = target.record.as_ref();
    let status = match (record.and_then(|r| r.status.overrides()), &live) {
        (Some(s), _) => s,
        (None, Ok(l)) => ContainerStatus::from_proxmox(Some(l.status.status.as_str())),
        (None, Err(_)) if gone => ContainerStatus::Missing,
        (None, Err(_)) => ContainerStatus::Unknown,
    };
    // A guest in state "error" keeps its power controls: they follow what Proxmox reports.
    let power = match (&live, status) {
        (Ok(l), ContainerStatus::Error) => {
            ContainerStatus::from_proxmox(Some(l.status.status.as_str()))
        }
        _ => status,
    };
    let node = match (&live, record) {
        (Ok(l), _) => l.node.clone(),
        (Err(_), Some(r)) => r.node.clone(),
        (Err(_), None) => "?".to_owned(),
    };
    let hostname = live
        .as_ref()
        .ok()
        .and_then(|l| {
            l.config
                .as_ref()
                .and_then(|c| c.hostname.clone())
                .or_else(|| l.status.name.clone())
        })
        .unwrap_or_else(|| target.display_name());
    let unavailable = live.as_ref().err().cloned().filter(|_| !gone);
    let key = target.url_id();
    let lock = live
        .as_ref()
        .ok()
        .and_then(|l| l.status.lock.clone())
        .filter(|l| !l.is_empty());
    let ctx = ActionCtx {
        key: &key,
        name: &hostname,
        vmid: target.vmid,
        status: power,
        unavailable: unavailable.as_deref(),
        lock: lock.as_deref(),
        back,
        managed: record.is_some(),
    };
    let base = format!("/containers/{key}");
    let tabs = [
        ("overview", "Overview", format!("{base}?tab=overview")),
        ("services", "Services", format!("{base}?tab=services")),
        ("events", "Events", format!("{base}?tab=events")),
        ("resources", "Resources", format!("{base}?tab=resources")),
        ("template", "Template", format!("{base}?tab=template")),
    ];
    let kind = live.as_ref().map_or_else(
        |_| {
            record
                .map(crate::containers::record_kind)
                .unwrap_or_default()
        },
        |l| l.kind,
    );
    let ct = kind.short();
    let crumb = format!("{hostname} ({ct} {})", target.vmid);
    let content = match tab {
        "services" => services_tab(state, user, &viewer, target, revealed).await?,
        "events" => events_tab(state, target, query).await?,
        "resources" => resources_tab(state, user, target, live.as_ref().ok(), query).await,
        "template" => super::drift::template_tab(state, user, &viewer, target).await,
        _ => {
            // The config-manager panel belongs to managed containers (ctforge installed it).
            let panel = match record {
                Some(r) => Some(super::config_manager::panel(
                    crate::containers::config_manager::load(state.store.as_ref(), r.id)
                        .await?
                        .as_ref(),
                )),
                None => None,
            };
            html! { (overview_tab(target, live.as_ref().ok(), &node)) @if let Some(p) = panel { (p) } }
        }
    };
    let failure = match record.filter(|r| r.status == "error") {
        Some(r) => match creation_job(state, r.id).await {
            Some(job) => crate::web::jobs::failure_panel(state, &viewer, job).await,
            None => None,
        },
        None => None,
    };
    let extras = if gone {
        html! {}
    } else {
        super::daytwo::head_extras(
            state,
            user,
            target,
            &node,
            kind,
            power == ContainerStatus::Running,
        )
        .await
    };
    Ok(html! {
        (ui::breadcrumbs(&[("/", "Containers"), ("", &crumb)]))
        (flash_markup(notice))
        @if let Some(reason) = &unavailable {
            // "Unreachable" only for transport failures (the down map says so); any other
            // refusal is shown as what Proxmox answered.
            @if state.down.since(target.cluster.id).is_some() {
                (ui::banner(Tone::Warn, "Proxmox is unreachable.", &format!("Showing ctforge's record; actions that need Proxmox are disabled. ({reason})")))
            } @else {
                (ui::banner(Tone::Warn, "Proxmox could not show this container.", &format!("Showing ctforge's record. Proxmox answered: {reason}")))
            }
        }
        @if gone {
            (ui::alert(Tone::Warn, &format!("{ct} {} no longer exists in Proxmox. Delete removes ctforge's record of it.", target.vmid)))
        }
        @if status == ContainerStatus::Creating {
            (ui::alert(Tone::Info, "This container is still being created; its progress page is not available yet. This page shows its record."))
        }
        div.page-head.ct-detail-head {
            div {
                h1 { (hostname) " " span.muted.mono { (ct) " " (target.vmid) } }
                div.row {
                    (ui::status_badge(status.as_str()))
                    span { "Node " strong { a href={ "/nodes/" (node) "?" (serde_urlencoded::to_string([("cluster", target.cluster.name.as_str())]).unwrap_or_default()) } { (node) } } }
                    span { "Cluster " strong { (target.cluster.name) } }
                    @if record.is_none() { (ui::badge(None, "unmanaged")) }
                }
            }
            div {
                (action_buttons(user, &viewer, &ctx, true))
                (extras)
            }
        }
        @if let Some(panel) = failure { (panel) }
        (ui::tabs("Container", &tabs, tab, content))
    })
}

async fn resources_tab(
    state: &AppState,
    user: &CurrentUser,
    target: &Target,
    live: Option<&Live>,
    query: &DetailQuery,
) -> Markup {
    let timeframe = chart::parse_timeframe(query.timeframe.as_deref());
    let key = target.url_id();
    let href = |t: Timeframe| format!("/containers/{key}?tab=resources&timeframe={}", t.as_str());
    let Some(live) = live else {
        return ui::empty_state(
            "Resource history unavailable",
            "Proxmox cannot be reached, so its recorded history cannot be shown.",
            None,
        );
    };
    let points = match client_for(state, user, &target.cluster) {
        Ok(client) => guest_kind::rrddata(
            client.as_ref(),
            live.kind,
            &live.node,
            target.vmid,
            timeframe,
            None,
        )
        .await
        .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    html! {
        section.card.resources {
            div.row.resources-head {
                h2 { "Resource history" }
                (chart::timeframe_toggle(timeframe, &href))
            }
            @match &points {
                Ok(points) => (chart::rrd_charts(points, RrdSource::Container)),
                Err(e) => (ui::alert(Tone::Err, &format!("Could not load the resource history: {e}"))),
            }
        }
    }
}

fn dl_row(label: &str, value: Markup) -> Markup {
    html! { dt { (label) } dd { (value) } }
}

fn overview_tab(target: &Target, live: Option<&Live>, node: &str) -> Markup {
    let record = target.record.as_ref();
    let config = live.and_then(|l| l.config.as_ref());
    let status = live.map(|l| &l.status);
    let frac = |u: Option<u64>, m: Option<u64>| match (u, m) {
        (Some(u), Some(m)) if m > 0 => (
            Some(u as f64 / m as f64),
            format!("{} / {}", ui::fmt_bytes(u), ui::fmt_bytes(m)),
        ),
        _ => (None, "–".to_owned()),
    };
    html! {
        div.grid.detail-grid {
            section.card {
                h2 { "Resources" }
                @if let Some(s) = status {
                    @let cpu_text = match (s.cpu, s.cpus) {
                        (Some(c), Some(n)) => format!("{:.0} % of {n} CPU", c * 100.0),
                        _ => "–".to_owned(),
                    };
                    (ui::usage_bar("CPU", s.cpu, &cpu_text))
                    @let (f, t) = frac(s.mem, s.maxmem);
                    (ui::usage_bar("Memory", f, &t))
                    @let (f, t) = frac(s.swap, s.maxswap);
                    (ui::usage_bar("Swap", f, &t))
                    @let (f, t) = frac(s.disk, s.maxdisk);
                    (ui::usage_bar("Root disk", f, &t))
                    @if let Some(up) = s.uptime.filter(|u| *u > 0) { p.muted { "Up " (ui::fmt_duration(up)) } }
                } @else {
                    p.muted { "Live usage is unavailable while Proxmox cannot be reached." }
                }
                @if let Some(c) = config {
                    dl.facts {
                        (dl_row("Cores", html! { (c.cores.map(|v| v.to_string()).unwrap_or_else(|| "all".to_owned())) }))
                        (dl_row("Memory", html! { (c.memory.map(|m| format!("{m} MiB")).unwrap_or_default()) }))
                        (dl_row("Swap", html! { (c.swap.map(|m| format!("{m} MiB")).unwrap_or_default()) }))
                        (dl_row("Root disk", html! { span.mono { (c.rootfs.as_ref().map(ToString::to_string).unwrap_or_default()) } }))
                    }
                }
            }
            section.card {
                h2 { "Network" }
                @if let Some(c) = config {
                    @if c.nets.is_empty() { p.muted { "No network interfaces." } }
                    table.table {
                        thead { tr { th scope="col" { "Interface" } th scope="col" { "Bridge" } th scope="col" { "IPv4" } th scope="col" { "MAC" } } }
                        tbody {
                            @for net in c.nets.values() {
                                @let ip = match &net.ip {
                                    Some(IpConfig::Dhcp) => {
                                        let seen = live
                                            .and_then(|l| l.interfaces.iter().find(|i| i.name == net.name))
                                            .and_then(|i| i.inet.clone());
                                        match seen {
                                            Some(ip) => format!("{ip} (DHCP)"),
                                            None => "DHCP (no lease seen)".to_owned(),
                                        }
                                    }
                                    Some(other) => other.to_string(),
                                    None => "–".to_owned(),
                                };
                                tr {
                                    td.mono { (net.name) }
                                    td { (net.bridge.clone().unwrap_or_default()) }
                                    td.mono { (ip) }
                                    td.mono { (net.hwaddr.clone().unwrap_or_default()) }
                                }
                            }
                        }
                    }
                } @else {
                    p { "IP " span.mono { (record.and_then(|r| r.ip.clone()).unwrap_or_else(|| "unknown".to_owned())) } }
                }
            }
            section.card {
                h2 { "Details" }
                dl.facts {
                    (dl_row("Type", html! { (match live.map_or(GuestKind::Lxc, |l| l.kind) { GuestKind::Lxc => "Container (lxc)", GuestKind::Qemu => "Virtual machine (qemu)" }) }))
                    (dl_row("Node", html! { (node) }))
                    (dl_row("Cluster", html! { (target.cluster.name) }))
                    (dl_row("Template", html! { @match record.and_then(|r| spec_template(&r.spec_json)) { Some(t) => (t), None => "–" } }))
                    @if let Some(c) = config {
                        (dl_row("OS", html! { (c.ostype.clone().unwrap_or_default()) }))
                        (dl_row("Unprivileged", html! { (if c.unprivileged.unwrap_or(false) { "yes" } else { "no" }) }))
                        (dl_row("Start on boot", html! { (if c.onboot.unwrap_or(false) { "yes" } else { "no" }) }))
                        (dl_row("Features", html! { (c.features.as_ref().filter(|f| !f.is_empty()).map(ToString::to_string).unwrap_or_else(|| "none".to_owned())) }))
                        @if let Some(tags) = &c.tags {
                            (dl_row("Tags", html! { @for t in containers::listing::split_tags(Some(tags)) { (ui::tag_chip(&t)) " " } }))
                        }
                    }
                    @if let Some(r) = record {
                        (dl_row("Created", html! { (ui::fmt_time(r.created_at)) " by " (r.created_by) }))
                        (dl_row("Updated", html! { (ui::fmt_time(r.updated_at)) }))
                    } @else {
                        (dl_row("Managed", html! { "no — created outside ctforge" }))
                    }
                }
            }
        }
    }
}

/// The template name recorded in the creation request, if any, as `name@<short sha>` when
/// it came from git.
fn spec_template(spec_json: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(spec_json).ok()?;
    let name = value.get("template").and_then(|t| {
        t.as_str()
            .map(str::to_owned)
            .or_else(|| t.get("name")?.as_str().map(str::to_owned))
    })?;
    let commit = value
        .get("template_git")
        .and_then(|g| g.get("commit"))
        .and_then(|c| c.as_str());
    Some(match commit {
        Some(commit) => format!("{name}@{}", commit.get(..12).unwrap_or(commit)),
        None => name,
    })
}

async fn services_tab(
    state: &AppState,
    user: &CurrentUser,
    viewer: &Viewer,
    target: &Target,
    revealed: Option<(String, String)>,
) -> Result<Markup, AppError> {
    let Some(record) = &target.record else {
        return Ok(ui::empty_state(
            "Not tracked by ctforge",
            "ctforge tracks services and credentials of the containers it creates.",
            None,
        ));
    };
    let services = state.store.list_services(record.id).await?;
    let credentials = state.store.list_credentials(record.id).await?;
    let units: Vec<&str> = services.iter().map(|s| s.unit.as_str()).collect();
    let links: Vec<(String, Option<String>)> = credentials
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                credentials::service_for(&c.name, &units).map(str::to_owned),
            )
        })
        .collect();
    // What the user holds on exactly this guest (one question to Proxmox).
    let held = match crate::authz::Rights::of(state, user, &target.cluster) {
        Ok(rights) => rights
            .on(&crate::authz::vm_path(target.vmid))
            .await
            .unwrap_or_default(),
        Err(_) => Default::default(),
    };
    let can_reveal = crate::authz::REVEAL.iter().all(|p| held.contains(*p));
    let can_refresh = crate::authz::READ.iter().all(|p| held.contains(*p));
    let key = target.url_id();
    Ok(html! {
        section.card {
            div.row {
                h2 { "Services" }
                @if can_refresh {
                    (ui::action_form(&format!("/containers/{key}/services/refresh"), "Refresh", false, &[], viewer))
                } @else {
                    (ui::disabled_button("Refresh", &format!("refreshing needs {} on /vms/{}", monitor::REFRESH_PRIVILEGE, target.vmid)))
                }
            }
            @if services.is_empty() {
                p.muted { "No services tracked yet." }
            } @else {
                div.table-wrap role="region" aria-label="Services" tabindex="0" { table.table {
                    thead { tr { th scope="col" { "Unit" } th scope="col" { "State" } th scope="col" { "Enabled" } th scope="col" { "Port" } th scope="col" { "Checked" } th scope="col" { "Web UI" } th scope="col" { "Credentials" } } }
                    tbody {
                        @for s in &services {
                            tr {
                                td.mono { (s.unit) }
                                td { (ui::status_badge(&s.active_state)) " " span.muted { (s.sub_state) } }
                                td { (if s.enabled { "yes" } else { "no" }) }
                                td.mono { (s.port.map(|p| p.to_string()).unwrap_or_default()) }
                                td { (ui::fmt_time(s.updated_at)) }
                                td { (web_link(s)) }
                                td {
                                    @for (name, _) in links.iter().filter(|(_, u)| u.as_deref() == Some(s.unit.as_str())) {
                                        span.mono { (name) } " " span.muted { "(sealed)" } " "
                                    }
                                }
                            }
                        }
                    }
                } }
            }
        }
        section.card {
            h2 { "Credentials" }
            @if credentials.is_empty() {
                p.muted { "No credentials found." }
            } @else {
                ul.creds {
                    @for c in &credentials {
                        li.row {
                            span.mono { (c.name) }
                            @if let Some(unit) = links.iter().find(|(n, _)| *n == c.name).and_then(|(_, u)| u.as_deref()) {
                                span.muted { "for " (unit) }
                            }
                            @match revealed.as_ref().filter(|(n, _)| *n == c.name) {
                                Some((_, value)) => {
                                    input.mono.secret readonly value=(value) size=(value.chars().count().clamp(12, 64)) aria-label={ "Value of " (c.name) };
                                    button.btn type="button" data-copy=(value) { "Copy" }
                                }
                                None => {
                                    span.muted aria-hidden="true" { "••••••••" }
                                    @if can_reveal {
                                        (ui::action_form(&format!("/containers/{key}/credentials/reveal"), "Reveal", false, &[("name", c.name.as_str())], viewer))
                                    } @else {
                                        (ui::disabled_button("Reveal", &format!("revealing needs VM.Audit and {} on /vms/{}", credentials::REVEAL_PRIVILEGE, target.vmid)))
                                    }
                                }
                            }
                        }
                    }
                }
                p.muted { "Reveals are recorded in the audit log." }
            }
        }
    })
}

/// The button opening a service's web UI, labelled with the page title (else unit and port),
/// and a badge when the last probe got no answer.
fn web_link(s: &ContainerService) -> Markup {
    let Some(url) = s
        .url
        .as_deref()
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
    else {
        return html! {};
    };
    let label = match (&s.web_title, s.port) {
        (Some(title), _) => title.clone(),
        (None, Some(port)) => format!("{} :{port}", s.unit.trim_end_matches(".service")),
        (None, None) => s.unit.trim_end_matches(".service").to_owned(),
    };
    html! {
        a.btn href=(url) target="_blank" rel="noopener noreferrer" title={ "Open web UI of " (s.unit) " (" (url) ")" } { (label) }
        @if s.web_answered == Some(false) {
            " " (ui::badge(Some(Tone::Warn), "not answering"))
        }
    }
}

async fn events_tab(
    state: &AppState,
    target: &Target,
    query: &DetailQuery,
) -> Result<Markup, AppError> {
    let Some(record) = &target.record else {
        return Ok(ui::empty_state(
            "No events",
            "ctforge records events for the containers it creates; actions on this container are in the audit log.",
            Some(("/audit", "Open the audit log")),
        ));
    };
    let kind = query
        .kind
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let before = query.before.as_deref().and_then(|b| b.parse::<i64>().ok());
    let events = state
        .store
        .list_container_events(record.id, kind, before, EVENTS_PAGE + 1)
        .await?;
    let more = events.len() as i64 > EVENTS_PAGE;
    let events: Vec<_> = events.into_iter().take(EVENTS_PAGE as usize).collect();
    let key = target.url_id();
    let kinds: Vec<(String, String)> = std::iter::once((String::new(), "All kinds".to_owned()))
        .chain(
            [
                "created",
                "started",
                "stopped",
                "shutdown",
                "shutdown_timeout",
                "force_stopped",
                "rebooted",
                "service_down",
                "service_up",
            ]
            .iter()
            .map(|k| ((*k).to_owned(), (*k).replace('_', " "))),
        )
        .chain(
            ["start", "stop", "shutdown", "reboot", "delete"]
                .iter()
                .map(|a| (format!("{a}_failed"), format!("{a} failed"))),
        )
        .collect();
    Ok(html! {
        form.row.filters method="get" action={ "/containers/" (key) } {
            input type="hidden" name="tab" value="events";
            (ui::select("kind", "Type", &kinds, kind.unwrap_or(""), None))
            button.btn type="submit" { "Filter" }
        }
        @if events.is_empty() {
            p.muted { "No events." }
        } @else {
            ol.timeline data-live-events {
                @for e in &events {
                    @let (tone, icon) = event_icon(&e.kind);
                    li class={ "event event-" (tone) } {
                        span.event-icon aria-hidden="true" { (icon) }
                        div {
                            div.row { strong { (e.kind.replace('_', " ")) } span.muted title=(e.created_at) { (ui::fmt_time(e.created_at)) " · " (e.actor) } }
                            div { (e.message) }
                        }
                    }
                }
            }
            @if more {
                @if let Some(last) = events.last() {
                    @let query = serde_urlencoded::to_string([("tab", "events"), ("kind", kind.unwrap_or("")), ("before", &last.id.to_string())]).unwrap_or_default();
                    @let href = format!("/containers/{key}?{query}");
                    a.btn href=(href) { "Older events →" }
                }
            }
        }
    })
}

fn event_icon(kind: &str) -> (&'static str, &'static str) {
    match kind {
        k if k.ends_with("_failed") || k == "service_down" => ("err", "✕"),
        "shutdown_timeout" | "force_stopped" => ("warn", "!"),
        "started" | "rebooted" | "service_up" | "created" => ("ok", "▶"),
        "stopped" | "shutdown" => ("muted", "■"),
        _ => ("info", "•"),
    }
}
