//! `/`: the dashboard. Summary counts (clickable filters), filters in the URL, a grid or table
//! (`?view=table`) of containers with live state from one `/cluster/resources` call per cluster
//! merged with ctforge's records, quick start/stop, pagination, and a banner when Proxmox is
//! unreachable. `assets/app.js` refreshes the `#ct-live` region every 30 s while the tab is
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
            (live_region(&user, &viewer, &filter, &listing, &back, select_all))
        }
    };
    Ok(page_response(
        ui::layout("Containers", "/", &viewer, body),
        flash.map(|f| f.1),
    ))
}

fn live_region(
    user: &CurrentUser,
    viewer: &Viewer,
    filter: &Filter,
    listing: &Listing,
    back: &str,
    select_all: bool,
) -> Markup {
    html! {
        @for u in &listing.unreachable {
            (ui::banner(
                Tone::Warn,
                &format!("Cluster {} unreachable since {}.", u.cluster, ui::fmt_time(u.since)),
                &format!("Showing ctforge's records; actions that need Proxmox are disabled. ({})", u.reason),
            ))
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
                span.muted { (listing.matching) " containers" }
            }
            @if filter.table() {
                (table_view(user, viewer, listing, back, select_all))
            } @else {
                div.grid.ct-grid {
                    @for row in &listing.items { (card(user, viewer, row, back, select_all)) }
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
    html! {
        form.filters.row method="get" action="/" role="search" {
            div.field {
                label for="q" { "Search" }
                input id="q" name="q" type="search" value=(filter.q().unwrap_or("")) placeholder="hostname, VMID, IP, tag";
            }
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

fn card(user: &CurrentUser, viewer: &Viewer, row: &Row, back: &str, select_all: bool) -> Markup {
    html! {
        article.card.ct-card data-vmid=(row.vmid) data-status=(row.status.as_str()) {
            div.ct-head {
                (bulk::pick(row, select_all))
                a.ct-name href={ "/containers/" (row.key) } { (row.hostname) }
                (ui::status_badge(row.status.as_str()))
            }
            dl.ct-facts {
                dt { "VMID" } dd.mono { (row.vmid) }
                dt { "Node" } dd { (row.node) }
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
    listing: &Listing,
    back: &str,
    select_all: bool,
) -> Markup {
    html! {
        div.table-wrap {
            table.table.ct-table {
                thead { tr {
                    th scope="col" { span.skip { "Select" } }
                    th scope="col" { "Hostname" } th scope="col" { "VMID" } th scope="col" { "Node" }
                    th scope="col" { "Status" } th scope="col" { "IP" } th scope="col" { "Template" }
                    th scope="col" { "Tags" } th scope="col" { "CPU" } th scope="col" { "Memory" }
                    th scope="col" { "Uptime" } th scope="col" { span.skip { "Actions" } }
                } }
                tbody {
                    @for row in &listing.items {
                        tr data-vmid=(row.vmid) data-status=(row.status.as_str()) {
                            td { (bulk::pick(row, select_all)) }
                            td { a href={ "/containers/" (row.key) } { (row.hostname) } }
                            td.mono { (row.vmid) }
                            td { (row.node) }
                            td { (ui::status_badge(row.status.as_str())) }
                            td.mono { (row.ip.as_deref().unwrap_or("–")) }
                            td {
                                @match &row.template {
                                    Some(t) => (t),
                                    None if !row.managed => (ui::badge(None, "unmanaged")),
                                    None => "–",
                                }
                            }
                            td { @for t in &row.tags { (ui::tag_chip(t)) " " } }
                            td { @if row.live { (cpu_bar(row)) } }
                            td { @if row.live { (mem_bar(row)) } }
                            td { (row.uptime.map(ui::fmt_duration).unwrap_or_default()) }
                            td { (action_buttons(user, viewer, &ctx(row, back), false)) }
                        }
                    }
                }
            }
        }
    }
}
