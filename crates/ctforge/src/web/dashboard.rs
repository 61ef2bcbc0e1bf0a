//! `/`: the dashboard. Summary counts (clickable filters), filters in the URL (`?type=lxc|qemu`
//! among them), a grid or table (`?view=table`) of guests — containers and VMs, with a type
//! column — with live state from one `/cluster/resources` call per cluster
//! merged with ctforge's records, quick start/stop, pagination, and a banner when Proxmox is
//! unreachable. Running containers with configuration changes pending until restart carry a
//! "pending" badge linking to their Edit page (`daytwo::pending_on_page`). `assets/app.js` refreshes the `#ct-live` region every 30 s while the tab is
//! visible, keeping scroll position, filters and the selection. Each container has a checkbox
//! for the bulk action bar ([`crate::web::bulk`]); `?select=all` ticks every one on the page.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use maud::{Markup, html};

use crate::auth::CurrentUser;
use crate::containers::listing::{self, Filter, Listing, Row};
use crate::error::AppError;
use crate::state::AppState;
use crate::status::GuestKind;
use crate::web::bulk;
use crate::web::components::{self as ui, Tone, Viewer};
use crate::web::containers::{ActionCtx, action_buttons, flash_markup, page_response, take_flash};
use crate::web::home::viewer;

/// `GET /`.
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    headers: HeaderMap,
    uri: Uri,
    Query(filter): Query<Filter>,
) -> Result<Response, AppError> {
    let viewer = viewer(&user);
    let listing = listing::list(&state, &user, &filter).await?;
    let pending = crate::containers::daytwo::pending_on_page(&state, &user, &listing.items).await;
    let back = uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let flash = take_flash(&headers);
    let select_all = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "select" && v == "all")
        })
        .unwrap_or(false);
    let select_href = format!(
        "/?{}",
        filter.query_with(&[
            ("page", filter.page.as_deref()),
            ("select", (!select_all).then_some("all")),
        ])
    );
    let body = html! {
        div.page-head {
            h1 { "Containers" }
            a.btn.btn-primary href="/containers/new" { "New container" }
        }
        (flash_markup(flash.as_ref().map(|f| &f.0)))
        @if listing.any {
            (filters(&filter, &listing))
            (bulk::bar(&user, &viewer, &back, &select_href, select_all))
        }
        div id="ct-live" data-refresh="30" {
            (live_region(&user, &viewer, &filter, &listing, &pending, &back, select_all))
        }
    };
    Ok(page_response(
        ui::layout("Containers", "/", &viewer, body),
        flash.map(|f| f.1),
    ))
}

/// `HH:MM:SS UTC` of a Unix-ms time (the "as of" of a shared Proxmox read).
fn clock_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| format!("{:02}:{:02}:{:02} UTC", t.hour(), t.minute(), t.second()))
        .unwrap_or_else(|_| ms.to_string())
}

fn live_region(
    user: &CurrentUser,
    viewer: &Viewer,
    filter: &Filter,
    listing: &Listing,
    pending: &Pending,
    back: &str,
    select_all: bool,
) -> Markup {
    html! {
        @for u in &listing.unreachable {
            @if u.transport {
                (ui::banner(
                    Tone::Warn,
                    &format!("Cluster {} unreachable since {}.", u.cluster, ui::fmt_time(u.since)),
                    &format!("Showing ctforge's records; actions that need Proxmox are disabled. ({})", u.reason),
                ))
            } @else {
                (ui::banner(
                    Tone::Warn,
                    &format!("Cluster {} could not list its containers.", u.cluster),
                    &format!("Showing ctforge's records. ({})", u.reason),
                ))
            }
        }
        @for name in &listing.sign_in {
            p.muted {
                "You are signed in to another cluster; the containers of cluster " strong { (name) } " need a sign-in there: "
                a href=(format!("/login?cluster={}", url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>())) { "sign in to " (name) }
                "."
            }
        }
        (summary(filter, listing))
        @if !listing.any {
            @if listing.unreachable.is_empty() {
                (ui::empty_state(
                    "Create your first container",
                    "ctforge turns a template into a provisioned LXC container on your Proxmox cluster.",
                    Some(("/containers/new", "Create your first container")),
                ))
            } @else {
                (ui::empty_state(
                    "No containers to show",
                    "Proxmox could not be reached and ctforge has no container records yet.",
                    None,
                ))
            }
        } @else if listing.items.is_empty() {
            (ui::empty_state(
                "No container matches these filters",
                "Change or clear the filters to see more.",
                Some(("/", "Clear filters")),
            ))
        } @else {
            div.view-toggle.row role="group" aria-label="View" {
                @let grid = format!("/?{}", filter.query_with(&[("view", None)]));
                @let table = format!("/?{}", filter.query_with(&[("view", Some("table"))]));
                a.btn href=(grid) aria-current=[(!filter.table()).then_some("true")] { "Grid" }
                a.btn href=(table) aria-current=[filter.table().then_some("true")] { "Table" }
                span.muted { (ui::count(listing.matching, "container")) }
                @if let Some(at) = listing.as_of {
                    span.muted.as-of { "Proxmox as of " (clock_time(at)) }
                }
            }
            @if filter.table() {
                (table_view(user, viewer, filter, listing, pending, back, select_all))
            } @else {
                div.grid.ct-grid {
                    @for row in &listing.items { (card(user, viewer, row, pending.get(&row.key), back, select_all)) }
                }
            }
            @let href = |p: usize| {
                let page = p.to_string();
                format!("/?{}", filter.query_with(&[("page", Some(page.as_str()))]))
            };
            (ui::pagination(listing.page, listing.pages, &href))
        }
    }
}

fn summary(filter: &Filter, listing: &Listing) -> Markup {
    let c = &listing.counts;
    let items: [(&str, Option<&str>, usize); 5] = [
        ("Total", None, c.total),
        ("Running", Some("running"), c.running),
        ("Stopped", Some("stopped"), c.stopped),
        ("Creating", Some("creating"), c.creating),
        ("Error", Some("error"), c.error),
    ];
    html! {
        ul.counts aria-label="Summary" {
            @for (label, status, n) in items {
                @let href = format!("/?{}", filter.query_with(&[("status", status)]));
                @let current = filter.status() == status;
                li {
                    a.count href=(href) aria-current=[current.then_some("true")] data-status=[status] {
                        span.count-n { (n) } span.count-label { (label) }
                    }
                }
            }
        }
    }
}

fn filters(filter: &Filter, listing: &Listing) -> Markup {
    let opts = |all: &str, values: &[String]| -> Vec<(String, String)> {
        std::iter::once((String::new(), all.to_owned()))
            .chain(values.iter().map(|v| (v.clone(), v.clone())))
            .collect()
    };
    let statuses: Vec<String> = [
        "running", "stopped", "creating", "error", "missing", "unknown",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let kinds: Vec<(String, String)> = [("", "Any type"), ("lxc", "Container"), ("qemu", "VM")]
        .iter()
        .map(|(v, l)| ((*v).to_owned(), (*l).to_owned()))
        .collect();
    html! {
        form.filters.row method="get" action="/" role="search" {
            div.field {
                label for="q" { "Search" }
                input id="q" name="q" type="search" value=(filter.q().unwrap_or("")) placeholder="hostname, VMID, IP, tag";
            }
            (ui::select("type", "Type", &kinds, filter.kind().unwrap_or(""), None))
            (ui::select("status", "Status", &opts("Any status", &statuses), filter.status().unwrap_or(""), None))
            (ui::select("node", "Node", &opts("Any node", &listing.nodes), filter.node().unwrap_or(""), None))
            (ui::select("tag", "Tag", &opts("Any tag", &listing.tags), filter.tag().unwrap_or(""), None))
            (ui::select("template", "Template", &opts("Any template", &listing.templates), filter.template().unwrap_or(""), None))
            @if filter.table() { input type="hidden" name="view" value="table"; }
            button.btn type="submit" { "Apply" }
            a.btn href=(if filter.table() { "/?view=table" } else { "/" }) { "Clear" }
        }
    }
}

/// How the dashboard names a guest's kind.
fn kind_label(kind: GuestKind) -> &'static str {
    match kind {
        GuestKind::Lxc => "Container",
        GuestKind::Qemu => "VM",
    }
}

fn ctx<'a>(row: &'a Row, back: &'a str) -> ActionCtx<'a> {
    ActionCtx {
        key: &row.key,
        name: &row.hostname,
        vmid: row.vmid,
        status: row.status,
        unavailable: row.unavailable.as_deref(),
        lock: row.lock.as_deref(),
        back,
        managed: row.managed,
    }
}

/// A sortable column head: a link that sorts by it (again: the other way), `aria-sort` on the
/// current one.
fn sort_header(filter: &Filter, key: &str, label: &str) -> Markup {
    let current = filter.sort() == Some(key);
    let desc = current && filter.descending();
    let next_dir = if current && !desc { Some("desc") } else { None };
    let href = format!(
        "/?{}",
        filter.query_with(&[("sort", Some(key)), ("dir", next_dir), ("page", None)])
    );
    let aria = current.then_some(if desc { "descending" } else { "ascending" });
    html! {
        th scope="col" aria-sort=[aria] {
            a.sort href=(href) {
                (label)
                @if current { span aria-hidden="true" { (if desc { " ▼" } else { " ▲" }) } }
                span.skip { (if current && !desc { ", sorted ascending; sort descending" } else if desc { ", sorted descending; sort ascending" } else { ", sort" }) }
            }
        }
    }
}

/// The table's CPU cell: the column head names it, so only the value and a bar.
fn cpu_cell(row: &Row) -> Markup {
    let text = match (row.cpu, row.maxcpu) {
        (Some(c), Some(m)) => format!("{:.0} % of {m}", c * 100.0),
        _ => "–".to_owned(),
    };
    ui::usage_cell("CPU", row.cpu, &text)
}

/// The table's memory cell.
fn mem_cell(row: &Row) -> Markup {
    let (fraction, text) = match (row.mem, row.maxmem) {
        (Some(u), Some(m)) if m > 0 => (
            Some(u as f64 / m as f64),
            format!("{} / {}", ui::fmt_bytes(u), ui::fmt_bytes(m)),
        ),
        _ => (None, "–".to_owned()),
    };
    ui::usage_cell("Memory", fraction, &text)
}

/// The node page of a row's node (`/nodes/<node>?cluster=<cluster>`).
fn node_href(row: &Row) -> String {
    let node: String = url::form_urlencoded::byte_serialize(row.node.as_bytes()).collect();
    let cluster =
        serde_urlencoded::to_string([("cluster", row.cluster.as_str())]).unwrap_or_default();
    format!("/nodes/{node}?{cluster}")
}

fn cpu_bar(row: &Row) -> Markup {
    let text = match (row.cpu, row.maxcpu) {
        (Some(c), Some(m)) => format!("{:.0} % of {m} CPU", c * 100.0),
        _ => "–".to_owned(),
    };
    ui::usage_bar("CPU", row.cpu, &text)
}

fn mem_bar(row: &Row) -> Markup {
    let (fraction, text) = match (row.mem, row.maxmem) {
        (Some(u), Some(m)) if m > 0 => (
            Some(u as f64 / m as f64),
            format!("{} / {}", ui::fmt_bytes(u), ui::fmt_bytes(m)),
        ),
        _ => (None, "–".to_owned()),
    };
    ui::usage_bar("Memory", fraction, &text)
}

/// "drifted" when monitoring found managed files changed in the container, linking to its
/// Template tab.
fn drift_badge(row: &Row) -> Markup {
    html! {
        @if row.drifted > 0 {
            a href={ "/containers/" (row.key) "?tab=template" } title={ (row.drifted) " managed file(s) changed since they were applied" } {
                (ui::badge(Some(Tone::Warn), "drifted"))
            }
        }
    }
}

/// Keys pending until restart, by row key (running guests only).
type Pending = std::collections::BTreeMap<String, Vec<String>>;

/// The "pending until restart" badge of a row: a link to the CT's Edit page, which shows them.
fn pending_badge(row: &Row, keys: Option<&Vec<String>>) -> Markup {
    html! {
        @if let Some(keys) = keys.filter(|k| !k.is_empty()) {
            " "
            a.pending-badge href={ "/containers/" (row.key) "/edit" } title={ "Pending until restart: " (keys.join(", ")) } {
                (ui::badge(Some(Tone::Warn), &format!("pending: {}", keys.join(", "))))
            }
        }
    }
}

fn card(
    user: &CurrentUser,
    viewer: &Viewer,
    row: &Row,
    pending: Option<&Vec<String>>,
    back: &str,
    select_all: bool,
) -> Markup {
    html! {
        article.card.ct-card data-vmid=(row.vmid) data-type=(row.kind.as_str()) data-status=(row.status.as_str()) {
            div.ct-head {
                (bulk::pick(row, select_all))
                a.ct-name href={ "/containers/" (row.key) } { (row.hostname) }
                (ui::status_badge(row.status.as_str()))
                @if let Some(l) = &row.lock { (ui::badge(Some(Tone::Warn), &format!("lock: {l}"))) }
                (drift_badge(row))
                (pending_badge(row, pending))
            }
            dl.ct-facts {
                dt { "Type" } dd { (kind_label(row.kind)) }
                dt { "VMID" } dd.mono { (row.vmid) }
                dt { "Node" } dd { a href=(node_href(row)) { (row.node) } }
                dt { "IP" } dd.mono { (row.ip.as_deref().unwrap_or("–")) }
                dt { "Template" } dd {
                    @match &row.template {
                        Some(t) => (t),
                        None if !row.managed => (ui::badge(None, "unmanaged")),
                        None => "–",
                    }
                }
                @if let Some(up) = row.uptime { dt { "Uptime" } dd { (ui::fmt_duration(up)) } }
            }
            @if !row.tags.is_empty() {
                div.tags { @for t in &row.tags { (ui::tag_chip(t)) } }
            }
            @if row.live {
                (cpu_bar(row))
                (mem_bar(row))
            }
            (action_buttons(user, viewer, &ctx(row, back), false))
        }
    }
}

fn table_view(
    user: &CurrentUser,
    viewer: &Viewer,
    filter: &Filter,
    listing: &Listing,
    pending: &Pending,
    back: &str,
    select_all: bool,
) -> Markup {
    html! {
        div.table-wrap {
            table.table.ct-table {
                thead { tr {
                    th scope="col" { span.skip { "Select" } }
                    @for (key, label) in [("hostname", "Hostname"), ("vmid", "VMID"), ("type", "Type"), ("node", "Node"), ("status", "Status"), ("ip", "IP"), ("template", "Template"), ("tags", "Tags"), ("cpu", "CPU"), ("memory", "Memory"), ("uptime", "Uptime")] {
                        (sort_header(filter, key, label))
                    }
                    th scope="col" { span.skip { "Actions" } }
                } }
                tbody {
                    @for row in &listing.items {
                        tr data-vmid=(row.vmid) data-type=(row.kind.as_str()) data-status=(row.status.as_str()) {
                            td { (bulk::pick(row, select_all)) }
                            td { a href={ "/containers/" (row.key) } { (row.hostname) } }
                            td.mono { (row.vmid) }
                            td { (kind_label(row.kind)) }
                            td { a href=(node_href(row)) { (row.node) } }
                            td {
                                (ui::status_badge(row.status.as_str()))
                                @if let Some(l) = &row.lock { " " (ui::badge(Some(Tone::Warn), &format!("lock: {l}"))) }
                                " " (drift_badge(row))
                                (pending_badge(row, pending.get(&row.key)))
                            }
                            td.mono { (row.ip.as_deref().unwrap_or("–")) }
                            td {
                                @match &row.template {
                                    Some(t) => (t),
                                    None if !row.managed => (ui::badge(None, "unmanaged")),
                                    None => "–",
                                }
                            }
                            td { @for t in &row.tags { (ui::tag_chip(t)) " " } }
                            td { @if row.live { (cpu_cell(row)) } }
                            td { @if row.live { (mem_cell(row)) } }
                            td { (row.uptime.map(ui::fmt_duration).unwrap_or_default()) }
                            td { (action_buttons(user, viewer, &ctx(row, back), false)) }
                        }
                    }
                }
            }
        }
    }
}
