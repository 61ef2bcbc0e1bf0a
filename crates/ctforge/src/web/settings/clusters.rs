//! `/settings/clusters`: list, add (with TLS fingerprint confirmation), edit (secrets kept unless
//! re-entered; a new URL or SSH port needs every secret again), test, make default and delete
//! clusters — every change and test for ctforge admins only (others see the list without
//! controls). A rejected form keeps everything but the secrets the user typed.
//!
//! The edit page lists the cluster's nodes: each node's SSH address/port override and its
//! confirmed host key; Test shows what every node presents, and Confirm pins it (nothing is
//! sent to a node before its key was confirmed).

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::clusters::{self, ClusterForm, ClusterView, NodeSshForm, NodeSshView, Saved};
use crate::error::AppError;
use crate::guest::nodes::NodeReport;
use crate::state::AppState;
use crate::web::components::{self as ui, Field, Tone, Viewer};
use crate::web::home::viewer;

/// The HTML form (strings, checkbox as "on").
#[derive(Clone, Debug, Default, Deserialize)]
pub struct WebClusterForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    token_id: String,
    #[serde(default)]
    token_secret: String,
    #[serde(default)]
    fingerprint: String,
    #[serde(default)]
    ssh_user: String,
    #[serde(default)]
    ssh_port: String,
    #[serde(default)]
    ssh_password: String,
    #[serde(default)]
    ssh_private_key: String,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    csrf_token: String,
}

impl WebClusterForm {
    fn to_form(&self) -> Result<ClusterForm, (String, String)> {
        let opt = |s: &str| {
            if s.trim().is_empty() {
                None
            } else {
                Some(s.to_owned())
            }
        };
        let ssh_port = if self.ssh_port.trim().is_empty() {
            None
        } else {
            Some(self.ssh_port.trim().parse::<u16>().map_err(|_| {
                (
                    "ssh_port".to_owned(),
                    "enter a port between 1 and 65535".to_owned(),
                )
            })?)
        };
        Ok(ClusterForm {
            name: self.name.clone(),
            url: self.url.clone(),
            token_id: self.token_id.clone(),
            token_secret: opt(&self.token_secret),
            fingerprint: opt(&self.fingerprint),
            ssh_user: opt(&self.ssh_user),
            ssh_port,
            ssh_password: opt(&self.ssh_password),
            ssh_private_key: opt(&self.ssh_private_key),
            ssh_host_key: None,
            default: self.default.is_some(),
        })
    }
}

fn error_for<'a>(errors: &'a [(String, String)], field: &str) -> Option<&'a str> {
    errors
        .iter()
        .find(|(f, _)| f == field)
        .map(|(_, m)| m.as_str())
}

fn page(
    v: &Viewer,
    list: &[ClusterView],
    form: &WebClusterForm,
    errors: &[(String, String)],
    notice: Option<(Tone, String)>,
    confirm: Option<&str>,
) -> Markup {
    let body = html! {
        h1 { "Clusters" }
        @if let Some((tone, text)) = &notice { (ui::alert(*tone, text)) }
        @if list.is_empty() {
            (ui::empty_state("No cluster yet", "Add your Proxmox VE cluster: its API address, an API token for background jobs, and SSH access for provisioning.", None))
        } @else {
            table.table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "API" } th scope="col" { "TLS fingerprint" } th scope="col" { "SSH" } th scope="col" { span.skip { "Actions" } } } }
                tbody {
                    @for c in list {
                        tr {
                            td { (c.name) " " @if c.default { (ui::badge(Some(Tone::Info), "default")) } }
                            td { code { (c.url) } br; span.muted { (c.token_id) } }
                            td { @match &c.fingerprint { Some(fp) => { code.fingerprint { (fp) } } None => { span.muted { "system trust store" } } } }
                            td { code { (ssh_target(c)) } br; span.muted { @match &c.ssh_host_key { Some(k) => { "host key " code { (k) } } None => { "host keys per node (Edit)" } } } }
                            td.row {
                                @if v.admin {
                                    a.btn href={ "/settings/clusters/" (c.id) "/edit" } aria-label={ "Edit cluster " (c.name) } { "Edit" }
                                    form method="post" action={ "/settings/clusters/" (c.id) "/test" } { (ui::csrf_field(v)) button.btn type="submit" { "Test" } }
                                    @if !c.default {
                                        form method="post" action={ "/settings/clusters/" (c.id) "/default" } { (ui::csrf_field(v)) button.btn type="submit" { "Make default" } }
                                    }
                                    (ui::dialog_opener(&format!("del-{}", c.id), "Delete", true))
                                    (ui::confirm_dialog(&format!("del-{}", c.id), &format!("Delete cluster {}?", c.name), "ctforge forgets this cluster and its container records. The containers themselves stay on Proxmox.", &format!("/settings/clusters/{}/delete", c.id), "Delete", v))
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !v.admin {
            p.muted { "Changing clusters needs the ctforge admin role." }
        }
        @if v.admin { section.card.stack aria-labelledby="add-title" {
            h2 id="add-title" { "Add a cluster" }
            form.form method="post" action="/settings/clusters" {
                (ui::csrf_field(v))
                (cluster_fields(form, errors, confirm, false))
                div.field { label { input type="checkbox" name="default" checked[form.default.is_some()]; " Default cluster" } }
                button.btn.btn-primary type="submit" { @if confirm.is_some() { "Confirm and add" } @else { "Add cluster" } }
            }
        } }
    };
    ui::layout("Clusters", "/settings/clusters", v, body)
}

/// The fields of the add and edit forms. When editing, secrets are never shown: an empty
/// secret keeps the stored one (the `clusters` module decides when one must be re-entered).
fn cluster_fields(
    form: &WebClusterForm,
    errors: &[(String, String)],
    confirm: Option<&str>,
    editing: bool,
) -> Markup {
    let keep = editing.then_some("Leave empty to keep the stored one");
    html! {
                (ui::field(&Field { value: &form.name, required: true, error: error_for(errors, "name"), hint: Some("A short name, e.g. home"), ..Field::new("name", "Name") }))
                (ui::field(&Field { value: &form.url, required: true, error: error_for(errors, "url"), hint: Some("https://pve1.example:8006"), ..Field::new("url", "API URL") }))
                (ui::field(&Field { value: &form.token_id, required: true, error: error_for(errors, "token_id"), hint: Some("user@realm!name, used for background jobs"), ..Field::new("token_id", "API token id") }))
                (ui::field(&Field { kind: "password", error: error_for(errors, "token_secret"), autocomplete: Some("off"), hint: keep, ..Field::new("token_secret", "API token secret") }))
                @if let Some(fp) = confirm {
                    div.alert.alert-warn role="status" {
                        p { "Confirm the server's TLS certificate. Compare this SHA-256 fingerprint with the output of " code { "pvenode cert info" } " on the node:" }
                        p { code.break-all { (fp) } }
                    }
                    input type="hidden" name="fingerprint" value=(fp);
                } @else {
                    (ui::field(&Field { value: &form.fingerprint, error: error_for(errors, "fingerprint"), hint: Some("Leave empty to fetch and confirm it"), ..Field::new("fingerprint", "TLS fingerprint (SHA-256)") }))
                }
                (ui::field(&Field { value: &form.ssh_user, hint: Some("default root"), ..Field::new("ssh_user", "SSH user") }))
                (ui::field(&Field { value: &form.ssh_port, kind: "number", error: error_for(errors, "ssh_port"), hint: Some("default 22"), ..Field::new("ssh_port", "SSH port") }))
                (ui::field(&Field { kind: "password", autocomplete: Some("off"), error: error_for(errors, "ssh_password"), hint: keep, ..Field::new("ssh_password", "SSH password") }))
                (ui::field(&Field { kind: "textarea", hint: Some("OpenSSH private key, instead of a password"), ..Field::new("ssh_private_key", "SSH private key") }))
    }
}

/// SSH as a person reads it: `user@host:port`, the host being the API URL's.
fn ssh_target(c: &ClusterView) -> String {
    let host = url::Url::parse(&c.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    format!("{}@{host}:{}", c.ssh_user, c.ssh_port)
}

async fn render(
    state: &AppState,
    user: &CurrentUser,
    form: &WebClusterForm,
    errors: &[(String, String)],
    notice: Option<(Tone, String)>,
    confirm: Option<&str>,
) -> Result<Markup, AppError> {
    let list: Vec<ClusterView> = state
        .store
        .list_clusters()
        .await?
        .iter()
        .map(ClusterView::from)
        .collect();
    Ok(page(&viewer(user), &list, form, errors, notice, confirm))
}

/// `GET /settings/clusters`.
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Markup, AppError> {
    render(&state, &user, &WebClusterForm::default(), &[], None, None).await
}

/// `POST /settings/clusters`.
pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Form(web): Form<WebClusterForm>,
) -> Result<Response, AppError> {
    submit(&state, &user, &remote, None, web).await
}

/// `GET /settings/clusters/{id}/edit`: the cluster's settings, secrets not shown.
pub async fn edit_form(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Markup, AppError> {
    crate::auth::require_admin(&user)?;
    let c = load(&state, id).await?;
    let form = WebClusterForm {
        name: c.name.clone(),
        url: c.url.clone(),
        token_id: c.token_id.clone(),
        fingerprint: c.fingerprint.clone().unwrap_or_default(),
        ssh_user: c.ssh_user.clone(),
        ssh_port: c.ssh_port.to_string(),
        default: c.default.then(|| "on".to_owned()),
        ..WebClusterForm::default()
    };
    let nodes = clusters::node_ssh(&state, id).await?;
    let extra = NodesPart {
        nodes: &nodes,
        report: None,
    };
    Ok(edit_page(
        &viewer(&user),
        &c,
        &form,
        &[],
        None,
        None,
        &extra,
    ))
}

/// The cluster's nodes on its edit page, with Test's findings when it just ran.
struct NodesPart<'a> {
    nodes: &'a [NodeSshView],
    report: Option<&'a [NodeReport]>,
}

/// The node table: override form, confirmed key, and what Test saw with its Confirm button.
fn nodes_section(v: &Viewer, c: &ClusterView, part: &NodesPart<'_>) -> Markup {
    let seen = |node: &str| part.report.and_then(|r| r.iter().find(|n| n.node == node));
    html! {
        section.card.stack aria-labelledby="nodes-title" {
            h2 id="nodes-title" { "Nodes (SSH)" }
            p.muted { "ctforge runs " code { "pct" } " on the node that holds each container. A node is reached at its override, else at its address from the cluster (the node answering the API at the URL's host), on the cluster's SSH port. ctforge connects to a node only once its host key is confirmed: Test shows the key each node presents; compare it with " code { "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub" } " on the node, then Confirm." }
            @if part.nodes.is_empty() {
                p { "No node known yet: run Test." }
            } @else {
                div.table-wrap role="region" aria-label="Nodes" tabindex="0" {
                    table.table {
                        thead { tr { th scope="col" { "Node" } th scope="col" { "Address override" } th scope="col" { "Host key" } th scope="col" { "Last test" } } }
                        tbody {
                            @for n in part.nodes {
                                tr data-node=(n.node) {
                                    th scope="row" { (n.node) }
                                    td {
                                        form.row method="post" action={ "/settings/clusters/" (c.id) "/nodes/" (n.node) "/ssh" } {
                                            (ui::csrf_field(v))
                                            label.skip for={ "addr-" (n.node) } { "Address of " (n.node) }
                                            input id={ "addr-" (n.node) } name="address" value=(n.address.clone().unwrap_or_default()) placeholder="from the cluster" size="16";
                                            label.skip for={ "port-" (n.node) } { "SSH port of " (n.node) }
                                            input id={ "port-" (n.node) } name="port" type="number" min="1" max="65535" value=(n.port.map(|p| p.to_string()).unwrap_or_default()) placeholder=(c.ssh_port) size="6";
                                            button.btn type="submit" aria-label={ "Save the SSH address of " (n.node) } { "Save" }
                                        }
                                    }
                                    td {
                                        @match &n.host_key {
                                            Some(k) => { (ui::badge(Some(Tone::Ok), "confirmed")) " " code.break-all { (k) } }
                                            None => { (ui::badge(Some(Tone::Warn), "not confirmed")) }
                                        }
                                    }
                                    td {
                                        @match seen(&n.node) {
                                            None => { span.muted { "not tested" } }
                                            Some(r) => {
                                                span { @if r.reachable { "answers at " } @else { "no answer at " } code { (r.address) } }
                                                @if let Some(e) = &r.error { br; span.error { (e) } }
                                                @if let (Some(k), false) = (&r.host_key, r.confirmed) {
                                                    br; span { "presents " code.break-all { (k) } }
                                                    form method="post" action={ "/settings/clusters/" (c.id) "/nodes/" (n.node) "/host-key" } {
                                                        (ui::csrf_field(v))
                                                        input type="hidden" name="host_key" value=(k);
                                                        button.btn.btn-primary type="submit" aria-label={ "Confirm the host key of " (n.node) } { "Confirm" }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action={ "/settings/clusters/" (c.id) "/test" } { (ui::csrf_field(v)) button.btn type="submit" { "Test" } }
        }
    }
}

/// `POST /settings/clusters/{id}/edit`.
pub async fn update(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
    Form(web): Form<WebClusterForm>,
) -> Result<Response, AppError> {
    submit(&state, &user, &remote, Some(id), web).await
}

async fn load(state: &AppState, id: i64) -> Result<ClusterView, AppError> {
    state
        .store
        .get_cluster(id)
        .await
        .map(|c| ClusterView::from(&c))
        .map_err(|_| AppError::NotFound(format!("cluster {id}")))
}

fn edit_page(
    v: &Viewer,
    c: &ClusterView,
    form: &WebClusterForm,
    errors: &[(String, String)],
    notice: Option<(Tone, String)>,
    confirm: Option<&str>,
    nodes: &NodesPart<'_>,
) -> Markup {
    let title = format!("Edit cluster {}", c.name);
    let body = html! {
        (ui::breadcrumbs(&[("/settings/clusters", "Clusters"), ("", &title)]))
        h1 { (title) }
        @if let Some((tone, text)) = &notice { (ui::alert(*tone, text)) }
        section.card.stack aria-labelledby="edit-title" {
            h2 id="edit-title" { "Settings" }
            p.muted { "Stored: " (if c.has_token_secret { "API token secret" } else { "no API token secret" }) ", " (if c.has_ssh_key { "SSH key" } else if c.has_ssh_password { "SSH password" } else { "no SSH secret" }) "." }
            form.form method="post" action={ "/settings/clusters/" (c.id) "/edit" } {
                (ui::csrf_field(v))
                (cluster_fields(form, errors, confirm, true))
                div.field { label { input type="checkbox" name="default" checked[form.default.is_some()]; " Default cluster" } }
                div.row {
                    button.btn.btn-primary type="submit" { @if confirm.is_some() { "Confirm and save" } @else { "Save" } }
                    a.btn href="/settings/clusters" { "Cancel" }
                }
            }
        }
        (nodes_section(v, c, nodes))
    };
    ui::layout(&title, "/settings/clusters", v, body)
}

/// Adds (`id` None) or updates a cluster through [`clusters::save`], and renders the answer:
/// the list (adding) or the edit page, keeping everything typed except secrets.
async fn submit(
    state: &AppState,
    user: &CurrentUser,
    remote: &SocketAddr,
    id: Option<i64>,
    web: WebClusterForm,
) -> Result<Response, AppError> {
    crate::auth::require_admin(user)?;
    let editing = match id {
        Some(id) => Some(load(state, id).await?),
        None => None,
    };
    let nodes = match id {
        Some(id) => clusters::node_ssh(state, id).await?,
        None => Vec::new(),
    };
    let kept = WebClusterForm {
        token_secret: String::new(),
        ssh_password: String::new(),
        ssh_private_key: String::new(),
        ..web.clone()
    };
    let answer =
        |errors: Vec<(String, String)>, notice: Option<(Tone, String)>, confirm: Option<String>| {
            let kept = kept.clone();
            let editing = editing.clone();
            let nodes = nodes.clone();
            async move {
                match &editing {
                    Some(c) => Ok::<Markup, AppError>(edit_page(
                        &viewer(user),
                        c,
                        &kept,
                        &errors,
                        notice,
                        confirm.as_deref(),
                        &NodesPart {
                            nodes: &nodes,
                            report: None,
                        },
                    )),
                    None => render(state, user, &kept, &errors, notice, confirm.as_deref()).await,
                }
            }
        };
    let form = match web.to_form() {
        Ok(f) => f,
        Err(field_error) => {
            let markup = answer(
                vec![field_error],
                Some((Tone::Err, "The cluster settings need attention.".into())),
                None,
            )
            .await?;
            return Ok((StatusCode::BAD_REQUEST, markup).into_response());
        }
    };
    match clusters::save(state, id, &form, &user.username, &remote.ip().to_string()).await {
        Ok(Saved::Done(c)) if id.is_some() => {
            Ok(Redirect::to(&format!("/settings/clusters?saved={}", c.id)).into_response())
        }
        Ok(Saved::Done(c)) => {
            Ok(Redirect::to(&format!("/settings/clusters?added={}", c.id)).into_response())
        }
        Ok(Saved::ConfirmFingerprint(fp)) => {
            // The secrets must be sent again with the confirmation; they are never echoed.
            let markup = answer(
                vec![(
                    "token_secret".into(),
                    "enter the secret again to confirm".into(),
                )],
                None,
                Some(fp),
            )
            .await?;
            Ok(markup.into_response())
        }
        Err(AppError::Invalid { message, fields }) => {
            let markup = answer(fields, Some((Tone::Err, message)), None).await?;
            Ok((StatusCode::BAD_REQUEST, markup).into_response())
        }
        Err(e) => {
            let status = e.status();
            let markup = answer(Vec::new(), Some((Tone::Err, e.to_string())), None).await?;
            Ok((status, markup).into_response())
        }
    }
}

/// `POST /settings/clusters/{id}/test` (admins only: it sends the cluster's secrets).
pub async fn test(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Markup, AppError> {
    crate::auth::require_admin(&user)?;
    let cluster = state
        .store
        .get_cluster(id)
        .await
        .map_err(|_| AppError::NotFound(format!("cluster {id}")))?;
    let report = clusters::test_connection(&state, &cluster).await;
    let ssh = match (&report.ssh_error, report.ssh_nodes.is_empty()) {
        (Some(e), _) => format!("; SSH: {e}"),
        (None, false) => "; SSH: every node answers with its confirmed key".to_owned(),
        (None, true) => String::new(),
    };
    let notice = match (&report.version, &report.api_error) {
        (Some(v), _) => (
            if report.ssh_error.is_some() {
                Tone::Warn
            } else {
                Tone::Ok
            },
            format!(
                "{}: Proxmox VE {v}; nodes: {}{ssh}",
                cluster.name,
                report
                    .nodes
                    .iter()
                    .map(|(n, s)| format!("{n} ({s})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        (None, Some(e)) => (Tone::Err, format!("{}: {e}{ssh}", cluster.name)),
        (None, None) => (Tone::Warn, format!("{}: no answer", cluster.name)),
    };
    let c = ClusterView::from(&cluster);
    let form = WebClusterForm {
        name: c.name.clone(),
        url: c.url.clone(),
        token_id: c.token_id.clone(),
        fingerprint: c.fingerprint.clone().unwrap_or_default(),
        ssh_user: c.ssh_user.clone(),
        ssh_port: c.ssh_port.to_string(),
        default: c.default.then(|| "on".to_owned()),
        ..WebClusterForm::default()
    };
    let nodes = clusters::node_ssh(&state, id).await?;
    let part = NodesPart {
        nodes: &nodes,
        report: Some(&report.ssh_nodes),
    };
    Ok(edit_page(
        &viewer(&user),
        &c,
        &form,
        &[],
        Some(notice),
        None,
        &part,
    ))
}

/// The per-node SSH form.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct WebNodeForm {
    #[serde(default)]
    address: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    host_key: String,
    #[serde(default)]
    #[allow(dead_code)]
    csrf_token: String,
}

/// The edit page again with `error` (a refused node form).
async fn node_refused(
    state: &AppState,
    user: &CurrentUser,
    id: i64,
    error: AppError,
) -> Result<Response, AppError> {
    let status = error.status();
    let text = match &error {
        AppError::Invalid { message, fields } => {
            let details: Vec<&str> = fields.iter().map(|(_, m)| m.as_str()).collect();
            format!("{message}: {}", details.join("; "))
        }
        other => other.to_string(),
    };
    let c = load(state, id).await?;
    let nodes = clusters::node_ssh(state, id).await?;
    let form = WebClusterForm {
        name: c.name.clone(),
        url: c.url.clone(),
        token_id: c.token_id.clone(),
        fingerprint: c.fingerprint.clone().unwrap_or_default(),
        ssh_user: c.ssh_user.clone(),
        ssh_port: c.ssh_port.to_string(),
        default: c.default.then(|| "on".to_owned()),
        ..WebClusterForm::default()
    };
    let part = NodesPart {
        nodes: &nodes,
        report: None,
    };
    let markup = edit_page(
        &viewer(user),
        &c,
        &form,
        &[],
        Some((Tone::Err, text)),
        None,
        &part,
    );
    Ok((status, markup).into_response())
}

/// `POST /settings/clusters/{id}/nodes/{node}/ssh`: a node's address/port override (admins
/// only; a changed address drops the node's confirmed key).
pub async fn node_ssh(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path((id, node)): Path<(i64, String)>,
    Form(web): Form<WebNodeForm>,
) -> Result<Response, AppError> {
    crate::auth::require_admin(&user)?;
    let port = match web.port.trim() {
        "" => None,
        p => match p.parse::<u16>() {
            Ok(p) => Some(p),
            Err(_) => {
                let e = AppError::Invalid {
                    message: format!("the SSH settings of node {node} need attention"),
                    fields: vec![("port".into(), "enter a port between 1 and 65535".into())],
                };
                return node_refused(&state, &user, id, e).await;
            }
        },
    };
    let form = NodeSshForm {
        address: Some(web.address.trim().to_owned()).filter(|a| !a.is_empty()),
        port,
    };
    let remote = remote.ip().to_string();
    match clusters::set_node_ssh(&state, id, &node, &form, &user.username, &remote).await {
        Ok(_) => Ok(Redirect::to(&format!("/settings/clusters/{id}/edit")).into_response()),
        Err(e @ (AppError::Invalid { .. } | AppError::NotFound(_))) => {
            node_refused(&state, &user, id, e).await
        }
        Err(e) => Err(e),
    }
}

/// `POST /settings/clusters/{id}/nodes/{node}/host-key`: confirms the host key Test showed
/// (admins only).
pub async fn node_host_key(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path((id, node)): Path<(i64, String)>,
    Form(web): Form<WebNodeForm>,
) -> Result<Response, AppError> {
    crate::auth::require_admin(&user)?;
    let remote = remote.ip().to_string();
    match clusters::confirm_node_key(&state, id, &node, &web.host_key, &user.username, &remote)
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/settings/clusters/{id}/edit")).into_response()),
        Err(e @ (AppError::Invalid { .. } | AppError::NotFound(_))) => {
            node_refused(&state, &user, id, e).await
        }
        Err(e) => Err(e),
    }
}

/// `POST /settings/clusters/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Redirect, AppError> {
    crate::auth::require_admin(&user)?;
    clusters::delete(&state, id, &user.username, &remote.ip().to_string()).await?;
    Ok(Redirect::to("/settings/clusters"))
}

/// `POST /settings/clusters/{id}/default` (admins only).
pub async fn make_default(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Redirect, AppError> {
    crate::auth::require_admin(&user)?;
    clusters::make_default(&state, id, &user.username, &remote.ip().to_string()).await?;
    Ok(Redirect::to("/settings/clusters"))
}
