//! The day-two pages of a guest (a VM's show the fields and links that apply to it): Edit (`/containers/{id}/edit`: form → review of the diff
//! → apply; what waits for a restart shown as Proxmox shows it; resize, clone and convert to
//! template below it) and Snapshots (`/containers/{id}/snapshots`: the tree, take one, roll
//! back with a confirmation naming what is lost, delete). Every change goes through
//! [`crate::containers::daytwo`]; the pages only turn forms into its requests.
//!
//! The form carries every field; only fields whose value differs from what the form showed
//! become part of the edit, so an untouched field never turns into a change.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use ctforge_pve::types::{IpConfig, NetConfig};
use maud::{Markup, html};

use super::{flash_cookie, flash_markup, page_response, take_flash};
use crate::auth::CurrentUser;
use crate::containers::daytwo::{
    self, Actor, CloneRequest, ConfigView, ResizeRequest, RollbackRequest, SnapshotList,
    SnapshotRequest,
};
use crate::containers::edit::{Change, ConfigEdit, MountEdit, NetEdit, PendingChange, Startup};
use crate::containers::{Target, resolve};
use crate::error::AppError;
use crate::state::AppState;
use crate::status::GuestKind;
use crate::web::components::{self as ui, Tone, Viewer};
use crate::web::home::viewer;

type Form = BTreeMap<String, String>;

/// Whether a checkbox was sent checked (browsers send `on`; the rendered values are `1`).
fn checked(form: &Form, name: &str) -> bool {
    form.get(name).is_some_and(|v| v == "1" || v == "on")
}

fn form_of(pairs: Vec<(String, String)>) -> Form {
    pairs.into_iter().collect()
}

/// The Console link: Proxmox's own console for the guest, on the cluster's URL (xterm.js for
/// a container, noVNC for a VM, as Proxmox's own buttons open them).
pub fn console_url(cluster_url: &str, kind: GuestKind, vmid: u32, node: &str) -> String {
    let base = cluster_url.trim_end_matches('/');
    let node: String = url::form_urlencoded::byte_serialize(node.as_bytes()).collect();
    match kind {
        GuestKind::Lxc => format!("{base}/?console=lxc&vmid={vmid}&node={node}&xtermjs=1"),
        GuestKind::Qemu => format!("{base}/?console=kvm&novnc=1&vmid={vmid}&node={node}"),
    }
}

/// `Container` or `virtual machine`, for sentences.
fn noun(kind: GuestKind) -> &'static str {
    match kind {
        GuestKind::Lxc => "container",
        GuestKind::Qemu => "virtual machine",
    }
}

/// The day-two part of the container page's head: what waits for a restart (asked of
/// Proxmox for a running CT) and the Edit, Snapshots and Console links.
pub async fn head_extras(
    state: &AppState,
    user: &CurrentUser,
    target: &Target,
    node: &str,
    kind: GuestKind,
    running: bool,
) -> Markup {
    let pending = if running {
        match crate::containers::client_for(state, user, &target.cluster) {
            Ok(client) => daytwo::pending_keys(client.as_ref(), node, &[(kind, target.vmid)])
                .await
                .remove(&target.vmid)
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    } else {
        Vec::new()
    };
    html! {
        @if !pending.is_empty() {
            a.pending-badge href={ "/containers/" (target.url_id()) "/edit" } {
                (ui::badge(Some(Tone::Warn), &format!("pending until restart: {}", pending.join(", "))))
            }
        }
        (links(target, node, kind))
    }
}

/// The day-two links of the guest page: Edit, Snapshots, Migrate and Boot log (containers:
/// `pct` on the node) and Console (a new tab).
pub fn links(target: &Target, node: &str, kind: GuestKind) -> Markup {
    let key = target.url_id();
    html! {
        div.row.actions {
            a.btn href={ "/containers/" (key) "/edit" } { "Edit" }
            a.btn href={ "/containers/" (key) "/snapshots" } { "Snapshots" }
            @if kind == GuestKind::Lxc {
                a.btn href={ "/containers/" (key) "/migrate" } { "Migrate…" }
                a.btn href={ "/containers/" (key) "/journal" } { "Boot log" }
            }
            a.btn href=(console_url(&target.cluster.url, kind, target.vmid, node)) target="_blank" rel="noopener noreferrer" {
                "Console" span.sr-only { " (opens Proxmox in a new tab)" }
            }
        }
    }
}

/// Why changes are impossible now (a Proxmox lock), for disabled buttons.
fn lock_reason(view: &ConfigView) -> Option<String> {
    view.lock.as_ref().map(|l| {
        format!(
            "{} is locked in Proxmox ({l}); wait for that operation to finish",
            view.kind.short()
        )
    })
}

fn net_of(values: &BTreeMap<String, String>, idx: u8) -> Option<NetConfig> {
    values
        .get(&format!("net{idx}"))
        .and_then(|v| v.parse().ok())
}

/// What the form shows for each field, from the current values (a VM's form has no swap,
/// interfaces or mount points).
fn shown(values: &BTreeMap<String, String>, kind: GuestKind) -> Form {
    let mut f = Form::new();
    let get = |k: &str, d: &str| values.get(k).cloned().unwrap_or_else(|| d.to_owned());
    f.insert("cores".into(), get("cores", "1"));
    f.insert("memory".into(), get("memory", "512"));
    f.insert(
        "onboot".into(),
        if get("onboot", "0") == "1" { "1" } else { "0" }.into(),
    );
    let startup = get("startup", "");
    for part in ["order", "up", "down"] {
        let v = startup
            .split(',')
            .find_map(|p| p.strip_prefix(&format!("{part}=")))
            .unwrap_or("")
            .to_owned();
        f.insert(format!("startup_{part}"), v);
    }
    f.insert("tags".into(), get("tags", "").replace(';', " "));
    f.insert("description".into(), get("description", ""));
    f.insert("nameserver".into(), get("nameserver", ""));
    f.insert("searchdomain".into(), get("searchdomain", ""));
    if kind == GuestKind::Qemu {
        return f;
    }
    f.insert("swap".into(), get("swap", "512"));
    for idx in 0..=crate::containers::edit::MAX_NET {
        let Some(net) = net_of(values, idx) else {
            continue;
        };
        let ip = match &net.ip {
            Some(IpConfig::Dhcp) => "dhcp".to_owned(),
            Some(IpConfig::Manual) => "manual".to_owned(),
            Some(IpConfig::Static(c)) => c.clone(),
            None => String::new(),
        };
        let p = |k: &str| format!("net{idx}_{k}");
        f.insert(p("ip"), ip);
        f.insert(p("gw"), net.gw.clone().unwrap_or_default());
        f.insert(p("tag"), net.tag.map(|t| t.to_string()).unwrap_or_default());
        f.insert(
            p("firewall"),
            if net.firewall == Some(true) { "1" } else { "0" }.into(),
        );
        f.insert(
            p("rate"),
            net.rate.map(|r| r.to_string()).unwrap_or_default(),
        );
        f.insert(p("mtu"), net.mtu.map(|m| m.to_string()).unwrap_or_default());
        f.insert(p("bridge"), net.bridge.clone().unwrap_or_default());
    }
    f
}

fn num<T: std::str::FromStr>(
    form: &Form,
    key: &str,
    errors: &mut Vec<(String, String)>,
) -> Option<T> {
    let v = form.get(key).map(|s| s.trim()).unwrap_or("");
    if v.is_empty() {
        return None;
    }
    match v.parse() {
        Ok(n) => Some(n),
        Err(_) => {
            errors.push((key.to_owned(), format!("{key} must be a number")));
            None
        }
    }
}

/// The edit a submitted form asks for: only what differs from what the form showed. A
/// checkbox not sent is unchecked.
fn edit_of(
    form: &Form,
    values: &BTreeMap<String, String>,
    kind: GuestKind,
) -> Result<ConfigEdit, AppError> {
    let before = shown(values, kind);
    let mut errors = Vec::new();
    let val = |k: &str| -> String {
        match k {
            "onboot" => if checked(form, k) { "1" } else { "0" }.to_owned(),
            k if k.ends_with("_firewall") => if checked(form, k) { "1" } else { "0" }.to_owned(),
            k => form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default(),
        }
    };
    let changed = |k: &str| before.get(k).map(String::as_str).unwrap_or("") != val(k);
    let mut e = ConfigEdit::default();
    if changed("cores") {
        e.cores = num(form, "cores", &mut errors);
    }
    if changed("memory") {
        e.memory = num(form, "memory", &mut errors);
    }
    if kind == GuestKind::Lxc && changed("swap") {
        e.swap = num(form, "swap", &mut errors);
    }
    if changed("onboot") {
        e.onboot = Some(val("onboot") == "1");
    }
    if ["startup_order", "startup_up", "startup_down"]
        .iter()
        .any(|k| changed(k))
    {
        e.startup = Some(Startup {
            order: num(form, "startup_order", &mut errors),
            up: num(form, "startup_up", &mut errors),
            down: num(form, "startup_down", &mut errors),
        });
    }
    if changed("tags") {
        e.tags = Some(
            val("tags")
                .split([' ', ',', ';'])
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
        );
    }
    if changed("description") {
        e.description = Some(form.get("description").cloned().unwrap_or_default());
    }
    if changed("nameserver") {
        e.nameserver = Some(val("nameserver"));
    }
    if changed("searchdomain") {
        e.searchdomain = Some(val("searchdomain"));
    }
    if kind == GuestKind::Qemu {
        e.digest = form.get("digest").filter(|d| !d.is_empty()).cloned();
        return if errors.is_empty() {
            Ok(e)
        } else {
            Err(AppError::Invalid {
                message: "some fields are not valid".into(),
                fields: errors,
            })
        };
    }
    for idx in 0..=crate::containers::edit::MAX_NET {
        let p = |k: &str| format!("net{idx}_{k}");
        let exists = net_of(values, idx).is_some();
        if exists && checked(form, &p("remove")) {
            e.net.insert(
                idx,
                NetEdit {
                    remove: true,
                    ..NetEdit::default()
                },
            );
            continue;
        }
        if !exists {
            continue;
        }
        let mut n = NetEdit::default();
        let mut any = false;
        if changed(&p("ip")) {
            n.ip = Some(val(&p("ip")));
            any = true;
        }
        if changed(&p("gw")) {
            n.gw = Some(val(&p("gw")));
            any = true;
        }
        if changed(&p("tag")) {
            n.tag = Some(num(form, &p("tag"), &mut errors).unwrap_or(0));
            any = true;
        }
        if changed(&p("firewall")) {
            n.firewall = Some(val(&p("firewall")) == "1");
            any = true;
        }
        if changed(&p("rate")) {
            n.rate = Some(num(form, &p("rate"), &mut errors).unwrap_or(0.0));
            any = true;
        }
        if changed(&p("mtu")) {
            n.mtu = Some(num(form, &p("mtu"), &mut errors).unwrap_or(0));
            any = true;
        }
        if changed(&p("bridge")) {
            n.bridge = Some(val(&p("bridge")));
            any = true;
        }
        if any {
            e.net.insert(idx, n);
        }
    }
    // A new interface, when its address is filled in.
    let new_ip = val("netnew_ip");
    if !new_ip.is_empty() {
        let idx = (0..=crate::containers::edit::MAX_NET).find(|i| net_of(values, *i).is_none());
        match idx {
            Some(idx) => {
                let gw = val("netnew_gw");
                e.net.insert(
                    idx,
                    NetEdit {
                        ip: Some(new_ip),
                        gw: (!gw.is_empty()).then_some(gw),
                        bridge: Some(val("netnew_bridge")).filter(|b| !b.is_empty()),
                        tag: num(form, "netnew_tag", &mut errors),
                        ..NetEdit::default()
                    },
                );
            }
            None => errors.push(("netnew_ip".into(), "every interface slot is used".into())),
        }
    }
    let mp_path = val("mpnew_path");
    if !mp_path.is_empty() {
        let idx =
            (0..=crate::containers::edit::MAX_MP).find(|i| !values.contains_key(&format!("mp{i}")));
        let host = val("mpnew_host");
        let storage = val("mpnew_storage");
        if let Some(idx) = idx {
            e.mp.insert(
                idx,
                MountEdit {
                    path: Some(mp_path),
                    host_path: (!host.is_empty()).then_some(host),
                    storage: (!storage.is_empty()).then_some(storage),
                    size_gib: num(form, "mpnew_size", &mut errors),
                    ..MountEdit::default()
                },
            );
        }
    }
    e.digest = form.get("digest").filter(|d| !d.is_empty()).cloned();
    if errors.is_empty() {
        Ok(e)
    } else {
        Err(AppError::Invalid {
            message: "some fields are not valid".into(),
            fields: errors,
        })
    }
}

fn pending_panel(pending: &[PendingChange], kind: GuestKind) -> Markup {
    html! {
        @if !pending.is_empty() {
            section.card.pending-changes aria-labelledby="pending-title" {
                h2 id="pending-title" { "Pending until restart" }
                p.muted { "Proxmox applies these at the next start of the " (noun(kind)) " (shown in red in Proxmox)." }
                table.table {
                    thead { tr { th scope="col" { "Key" } th scope="col" { "Running value" } th scope="col" { "After restart" } } }
                    tbody {
                        @for p in pending {
                            tr {
                                td.mono { (p.key) }
                                td.mono { (p.current.as_deref().unwrap_or("—")) }
                                td.mono.pending-value { (p.pending.as_deref().unwrap_or("(deleted)")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn diff_table(changes: &[Change]) -> Markup {
    html! {
        table.table.diff aria-label="Changes" {
            thead { tr { th scope="col" { "Key" } th scope="col" { "Now" } th scope="col" { "After" } } }
            tbody {
                @for c in changes {
                    tr data-key=(c.key) {
                        td.mono { (c.key) }
                        td.mono.diff-old { (c.current.as_deref().unwrap_or("—")) }
                        td.mono.diff-new { (c.new.as_deref().unwrap_or("(removed)")) }
                    }
                }
            }
        }
    }
}

fn text_field(
    form: &Form,
    name: &str,
    label: &str,
    hint: Option<&str>,
    errors: &[(String, String)],
) -> Markup {
    let value = form.get(name).map(String::as_str).unwrap_or("");
    let error = errors
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    ui::field(&ui::Field {
        value,
        hint,
        error,
        ..ui::Field::new(name, label)
    })
}

fn edit_form(
    key: &str,
    view: &ConfigView,
    form: &Form,
    errors: &[(String, String)],
    viewer: &Viewer,
) -> Markup {
    let nets: Vec<u8> = (0..=crate::containers::edit::MAX_NET)
        .filter(|i| view.values.contains_key(&format!("net{i}")))
        .collect();
    let locked = lock_reason(view);
    let lxc = view.kind == GuestKind::Lxc;
    html! {
        form.card.edit-form method="post" action={ "/containers/" (key) "/edit" } {
            (ui::csrf_field(viewer))
            input type="hidden" name="step" value="review";
            input type="hidden" name="digest" value=(view.digest.as_deref().unwrap_or(""));
            h2 { "Resources" }
            div.grid-3 {
                (text_field(form, "cores", "Cores", None, errors))
                (text_field(form, "memory", "Memory (MiB)", None, errors))
                @if lxc {
                    (text_field(form, "swap", "Swap (MiB)", None, errors))
                }
            }
            h2 { "Boot" }
            (ui::checkbox("onboot", "Start on boot", checked(form, "onboot"), None))
            div.grid-3 {
                (text_field(form, "startup_order", "Startup order", None, errors))
                (text_field(form, "startup_up", "Up delay (s)", None, errors))
                (text_field(form, "startup_down", "Down delay (s)", None, errors))
            }
            h2 { "Notes" }
            (text_field(form, "tags", "Tags", Some("separated by spaces"), errors))
            (ui::field(&ui::Field { kind: "textarea", value: form.get("description").map(String::as_str).unwrap_or(""), ..ui::Field::new("description", "Description") }))
            h2 { "DNS" }
            @if !lxc {
                p.muted { "Given to the VM by cloud-init at its next boot." }
            }
            div.grid-3 {
                (text_field(form, "nameserver", "DNS servers", Some("empty: the node's"), errors))
                (text_field(form, "searchdomain", "Search domain", Some("empty: the node's"), errors))
            }
            @if lxc {
            h2 { "Network" }
            @for idx in &nets {
                fieldset.net {
                    legend { "net" (idx) }
                    div.grid-3 {
                        (text_field(form, &format!("net{idx}_ip"), "IPv4 (CIDR or dhcp)", None, errors))
                        (text_field(form, &format!("net{idx}_gw"), "Gateway", None, errors))
                        (text_field(form, &format!("net{idx}_bridge"), "Bridge", None, errors))
                        (text_field(form, &format!("net{idx}_tag"), "VLAN tag", None, errors))
                        (text_field(form, &format!("net{idx}_rate"), "Rate limit (MB/s)", None, errors))
                        (text_field(form, &format!("net{idx}_mtu"), "MTU", None, errors))
                    }
                    (ui::checkbox(&format!("net{idx}_firewall"), "Firewall", checked(form, &format!("net{idx}_firewall")), None))
                    @if *idx > 0 {
                        (ui::checkbox(&format!("net{idx}_remove"), "Remove this interface", false, None))
                    }
                }
            }
            fieldset.net {
                legend { "New interface" }
                div.grid-3 {
                    (text_field(form, "netnew_ip", "IPv4 (CIDR or dhcp)", Some("leave empty for none"), errors))
                    (text_field(form, "netnew_gw", "Gateway", None, errors))
                    (text_field(form, "netnew_bridge", "Bridge", Some("default vmbr0"), errors))
                    (text_field(form, "netnew_tag", "VLAN tag", None, errors))
                }
            }
            h2 { "New mount point" }
            div.grid-3 {
                (text_field(form, "mpnew_path", "Path in the CT", Some("leave empty for none"), errors))
                (text_field(form, "mpnew_storage", "Storage", None, errors))
                (text_field(form, "mpnew_size", "Size (GiB)", None, errors))
                (text_field(form, "mpnew_host", "Or bind mount of host path", Some("root@pam only"), errors))
            }
            }
            div.row {
                @match &locked {
                    Some(reason) => (ui::disabled_button("Review changes", reason)),
                    None => button.btn.btn-primary type="submit" { "Review changes" },
                }
                a.btn href={ "/containers/" (key) } { "Cancel" }
            }
        }
    }
}

/// The live view of the CT's day-two Proxmox tasks (resize, clone, snapshot, rollback, delete):
/// hidden until a task starts; `assets/app.js` follows `…/task-log` while the page is open,
/// so the log of a task this page submitted shows line by line until its answer arrives.
fn task_log_panel(key: &str) -> Markup {
    // `/api/v1/containers/{id}` names a guest of either kind.
    html! {
        section.card.task-log hidden data-task-log={ "/api/v1/containers/" (key) "/task-log" } aria-labelledby="task-log-title" {
            h2 id="task-log-title" { "Proxmox task" }
            p.muted data-task-status role="status" {}
            pre.code.log tabindex="0" aria-label="Proxmox task log" {}
        }
    }
}

fn extra_forms(key: &str, view: &ConfigView, viewer: &Viewer) -> Markup {
    let locked = lock_reason(view);
    let short = view.kind.short();
    let (disk, disk_label, name_label) = match view.kind {
        GuestKind::Lxc => ("rootfs", "Disk (rootfs or mpN)", "Hostname"),
        GuestKind::Qemu => (
            view.values
                .keys()
                .find(|k| daytwo::is_qemu_disk_key(k))
                .map_or("scsi0", String::as_str),
            "Disk (scsiN, virtioN, sataN or ideN)",
            "Name",
        ),
    };
    let disabled = |label: &str, why: Option<String>| -> Option<Markup> {
        why.or_else(|| locked.clone())
            .map(|r| ui::disabled_button(label, &r))
    };
    html! {
        section.card {
            h2 { "Grow a disk" }
            form method="post" action={ "/containers/" (key) "/resize" } {
                (ui::csrf_field(viewer))
                div.grid-3 {
                    (ui::field(&ui::Field { value: disk, ..ui::Field::new("disk", disk_label) }))
                    (ui::field(&ui::Field { value: "+1G", hint: Some("+2G grows by 2 GiB; never smaller"), ..ui::Field::new("size", "Size") }))
                }
                @match disabled("Grow", None) {
                    Some(b) => (b),
                    None => button.btn type="submit" { "Grow" },
                }
            }
        }
        section.card {
            h2 { "Clone" }
            form method="post" action={ "/containers/" (key) "/clone" } {
                (ui::csrf_field(viewer))
                div.grid-3 {
                    (ui::field(&ui::Field { hint: Some("empty: the next free one"), ..ui::Field::new("newid", "New VMID") }))
                    (ui::field(&ui::Field::new("hostname", name_label)))
                }
                @if view.template {
                    (ui::checkbox("linked", "Linked clone (shares the template's disk)", true, None))
                }
                @let why = (view.running && view.kind == GuestKind::Lxc).then(|| "a running CT can only be cloned from a snapshot (Proxmox); take one on the Snapshots page".to_owned());
                @match disabled("Clone", why) {
                    Some(b) => (b),
                    None => button.btn type="submit" { "Clone" },
                }
            }
        }
        @if !view.template {
            section.card {
                h2 { "Convert to template" }
                p.muted { "A template cannot be started; new " (noun(view.kind)) "s are cloned from it. Proxmox refuses while the " (short) " runs or has snapshots." }
                @let why = (view.running).then(|| format!("stop the {short} first"));
                @match disabled("Convert to template", why) {
                    Some(b) => (b),
                    None => {
                        @let id = format!("dlg-template-{}", key.replace(':', "-"));
                        @let path = format!("/containers/{key}/template");
                        (ui::confirm_button(&ui::Confirm {
                            id: &id,
                            label: "Convert to template",
                            title: &format!("Convert {short} {key} to a template?"),
                            text: &format!("The {} can no longer be started; this cannot be undone from ctforge.", noun(view.kind)),
                            action: &path,
                            confirm: "Convert",
                            hidden: &[],
                        }, viewer))
                    }
                }
            }
        }
    }
}

async fn edit_page(
    state: &AppState,
    user: &CurrentUser,
    target: &Target,
    form: Option<&Form>,
    errors: &[(String, String)],
    notice: Option<&(Tone, String)>,
) -> Result<Markup, AppError> {
    let view = daytwo::config(state, user, target).await?;
    let viewer = viewer(user);
    let key = target.url_id();
    let shown_form = shown(&view.values, view.kind);
    let form = form.unwrap_or(&shown_form);
    let crumb = format!(
        "{} ({} {})",
        target.display_name(),
        view.kind.short(),
        target.vmid
    );
    let ct_href = format!("/containers/{key}");
    Ok(ui::layout(
        &format!("Edit {crumb}"),
        "/",
        &viewer,
        html! {
            (ui::breadcrumbs(&[("/", "Containers"), (&ct_href, &crumb), ("", "Edit")]))
            (flash_markup(notice))
            h1 { "Edit " (crumb) }
            @if let Some(l) = &view.lock {
                (ui::alert(Tone::Warn, &format!("Proxmox holds lock: {l}. Changes are disabled until it is released.")))
            }
            @if view.running {
                @match view.kind {
                    GuestKind::Lxc => p.muted { "The container runs: cores, memory, swap and network change at once; other keys wait for the next start." },
                    GuestKind::Qemu => p.muted { "The VM runs: what Proxmox cannot hot-plug waits for the next start." },
                }
            }
            (pending_panel(&view.pending, view.kind))
            (task_log_panel(&key))
            (edit_form(&key, &view, form, errors, &viewer))
            (extra_forms(&key, &view, &viewer))
        },
    ))
}

fn redirect_with(back: &str, tone: Tone, text: &str) -> Response {
    let mut response = Redirect::to(back).into_response();
    if let Some(cookie) = flash_cookie(tone, text) {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, cookie);
    }
    response
}

/// `GET /containers/{id}/edit`.
pub async fn edit(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let target = resolve(&state, &id).await?;
    let flash = take_flash(&headers);
    let page = edit_page(
        &state,
        &user,
        &target,
        None,
        &[],
        flash.as_ref().map(|f| &f.0),
    )
    .await?;
    Ok(page_response(page, flash.map(|f| f.1)))
}

/// `POST /containers/{id}/edit`: `step=review` shows the diff, `step=apply` applies it.
pub async fn edit_submit(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let target = resolve(&state, &id).await?;
    let form = form_of(pairs);
    let key = target.url_id();
    let view = daytwo::config(&state, &user, &target).await?;
    let edit = match edit_of(&form, &view.values, view.kind) {
        Ok(e) => e,
        Err(AppError::Invalid { fields, .. }) => {
            let page = edit_page(&state, &user, &target, Some(&form), &fields, None).await?;
            return Ok(page.into_response());
        }
        Err(e) => return Err(e),
    };
    if form.get("step").map(String::as_str) == Some("apply") {
        let actor = Actor {
            state: &state,
            user: &user,
            remote: remote.ip().to_string(),
            target: target.clone(),
        };
        return Ok(match daytwo::edit_config(&actor, edit).await {
            Ok(out) => redirect_with(&format!("/containers/{key}/edit"), Tone::Ok, &out.message),
            Err(AppError::Invalid { fields, .. }) => {
                let page = edit_page(&state, &user, &target, Some(&form), &fields, None).await?;
                page.into_response()
            }
            Err(e) => redirect_with(
                &format!("/containers/{key}/edit"),
                Tone::Err,
                &e.to_string(),
            ),
        });
    }
    let preview = match daytwo::preview(&state, &user, &target, &edit).await {
        Ok(p) => p,
        Err(AppError::Invalid { fields, .. }) => {
            let page = edit_page(&state, &user, &target, Some(&form), &fields, None).await?;
            return Ok(page.into_response());
        }
        Err(e) => return Err(e),
    };
    let viewer = viewer(&user);
    let crumb = format!(
        "{} ({} {})",
        target.display_name(),
        view.kind.short(),
        target.vmid
    );
    let ct_href = format!("/containers/{key}");
    let edit_href = format!("/containers/{key}/edit");
    let page = ui::layout(
        &format!("Review changes of {crumb}"),
        "/",
        &viewer,
        html! {
            (ui::breadcrumbs(&[("/", "Containers"), (&ct_href, &crumb), (&edit_href, "Edit"), ("", "Review")]))
            h1 { "Review changes of " (crumb) }
            @if preview.changes.is_empty() {
                (ui::alert(Tone::Info, "Nothing changes: the configuration already has these values."))
                a.btn href=(edit_href) { "Back to the form" }
            } @else {
                @if preview.running {
                    p.muted { "The " (noun(view.kind)) " runs: what Proxmox cannot change live will be pending until restart." }
                }
                (diff_table(&preview.changes))
                form.row method="post" action=(edit_href) {
                    (ui::csrf_field(&viewer))
                    @for (k, v) in &form {
                        @if k != "step" && k != "csrf_token" && k != "digest" {
                            input type="hidden" name=(k) value=(v);
                        }
                    }
                    input type="hidden" name="digest" value=(preview.digest.as_deref().unwrap_or(""));
                    input type="hidden" name="step" value="apply";
                    button.btn.btn-primary type="submit" { "Apply" }
                    a.btn href=(edit_href) { "Back" }
                }
            }
        },
    );
    Ok(page.into_response())
}

/// `POST /containers/{id}/resize` (form).
pub async fn resize_submit(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let form = form_of(pairs);
    let actor = Actor::resolve(&state, &user, remote, &id).await?;
    let target = &actor.target;
    let req = ResizeRequest {
        disk: form
            .get("disk")
            .cloned()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        size: form
            .get("size")
            .cloned()
            .unwrap_or_default()
            .trim()
            .to_owned(),
    };
    let back = format!("/containers/{}/edit", target.url_id());
    Ok(match daytwo::resize(&actor, req).await {
        Ok(out) => redirect_with(&back, Tone::Ok, &out.message),
        Err(e) => redirect_with(&back, Tone::Err, &e.to_string()),
    })
}

/// `POST /containers/{id}/clone` (form).
pub async fn clone_submit(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let form = form_of(pairs);
    let actor = Actor::resolve(&state, &user, remote, &id).await?;
    let target = &actor.target;
    let back = format!("/containers/{}/edit", target.url_id());
    let newid = match form
        .get("newid")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        Some(n) => match n.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                return Ok(redirect_with(
                    &back,
                    Tone::Err,
                    "the new VMID must be a number",
                ));
            }
        },
        None => None,
    };
    let req = CloneRequest {
        newid,
        hostname: form
            .get("hostname")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty()),
        full: Some(!checked(&form, "linked")),
        snapshot: form
            .get("snapshot")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty()),
        ..CloneRequest::default()
    };
    Ok(match daytwo::clone(&actor, req).await {
        Ok(out) => {
            let to = match (out.new_id, out.new_vmid) {
                (Some(id), _) => format!("/containers/{id}"),
                (None, Some(v)) => format!("/containers/{}:{v}", target.cluster.name),
                _ => back,
            };
            redirect_with(&to, Tone::Ok, &out.message)
        }
        Err(e) => redirect_with(&back, Tone::Err, &e.to_string()),
    })
}

/// `POST /containers/{id}/template` (form).
pub async fn template_submit(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let actor = Actor::resolve(&state, &user, remote, &id).await?;
    let target = &actor.target;
    let back = format!("/containers/{}/edit", target.url_id());
    Ok(match daytwo::template(&actor).await {
        Ok(out) => redirect_with(&back, Tone::Ok, &out.message),
        Err(e) => redirect_with(&back, Tone::Err, &e.to_string()),
    })
}

fn rollback_text(list: &SnapshotList, name: &str, kind: GuestKind) -> String {
    let newer = list
        .snapshots
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.newer.clone())
        .unwrap_or_default();
    let noun = noun(kind);
    let mut text = format!(
        "The current state of the {noun} is lost: everything written since snapshot {name} was taken."
    );
    if list.running {
        text.push_str(&format!(" The {noun} is stopped for the rollback."));
    }
    if !newer.is_empty() {
        text.push_str(&format!(
            " Newer snapshots ({}) no longer lead to the current state (on ZFS, Proxmox refuses until they are deleted).",
            newer.join(", ")
        ));
    }
    text
}

/// `GET /containers/{id}/snapshots`.
pub async fn snapshots(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let target = resolve(&state, &id).await?;
    let list = daytwo::snapshots(&state, &user, &target).await?;
    let view = daytwo::config(&state, &user, &target).await?;
    let flash = take_flash(&headers);
    let viewer = viewer(&user);
    let key = target.url_id();
    let crumb = format!(
        "{} ({} {})",
        target.display_name(),
        view.kind.short(),
        target.vmid
    );
    let ct_href = format!("/containers/{key}");
    let locked = lock_reason(&view);
    let page = ui::layout(
        &format!("Snapshots of {crumb}"),
        "/",
        &viewer,
        html! {
            (ui::breadcrumbs(&[("/", "Containers"), (&ct_href, &crumb), ("", "Snapshots")]))
            (flash_markup(flash.as_ref().map(|f| &f.0)))
            h1 { "Snapshots of " (crumb) }
            @if let Some(l) = &view.lock {
                (ui::alert(Tone::Warn, &format!("Proxmox holds lock: {l}.")))
            }
            (task_log_panel(&key))
            section.card {
                h2 { "Take a snapshot" }
                form method="post" action={ "/containers/" (key) "/snapshots" } {
                    (ui::csrf_field(&viewer))
                    div.grid-3 {
                        (ui::field(&ui::Field { required: true, hint: Some("letters, digits, - and _; starts with a letter"), ..ui::Field::new("name", "Name") }))
                        (ui::field(&ui::Field::new("description", "Description")))
                    }
                    @match &locked {
                        Some(r) => (ui::disabled_button("Take snapshot", r)),
                        None => button.btn.btn-primary type="submit" { "Take snapshot" },
                    }
                }
            }
            @if list.snapshots.is_empty() {
                (ui::empty_state("No snapshots", "Take one before a risky change; roll back if it goes wrong.", None))
            } @else {
                table.table.snapshot-tree aria-label="Snapshots" {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Description" } th scope="col" { "Taken" } th scope="col" { "Actions" } } }
                    tbody {
                        @for s in &list.snapshots {
                            tr data-snapshot=(s.name) {
                                td {
                                    span.tree-indent data-depth=(s.depth) { (("└ ").repeat(usize::from(s.depth > 0))) }
                                    strong.mono { (s.name) }
                                    @if list.current_parent.as_deref() == Some(s.name.as_str()) {
                                        " " (ui::badge(Some(Tone::Info), "current state is based on this"))
                                    }
                                }
                                td { (s.description) }
                                td { (s.snaptime.map(|t| ui::fmt_time(t * 1000)).unwrap_or_default()) }
                                td {
                                    div.row {
                                        @match &locked {
                                            Some(r) => {
                                                (ui::disabled_button("Roll back", r))
                                                (ui::disabled_button("Delete", r))
                                            }
                                            None => {
                                                @let rid = format!("dlg-rollback-{}", s.name);
                                                @let rpath = format!("/containers/{key}/snapshots/{}/rollback", s.name);
                                                (ui::confirm_button(&ui::Confirm {
                                                    id: &rid,
                                                    label: "Roll back",
                                                    title: &format!("Roll back {crumb} to {}?", s.name),
                                                    text: &rollback_text(&list, &s.name, view.kind),
                                                    action: &rpath,
                                                    confirm: "Roll back",
                                                    hidden: &[],
                                                }, &viewer))
                                                @let did = format!("dlg-delsnap-{}", s.name);
                                                @let dpath = format!("/containers/{key}/snapshots/{}/delete", s.name);
                                                (ui::confirm_button(&ui::Confirm {
                                                    id: &did,
                                                    label: "Delete",
                                                    title: &format!("Delete snapshot {} of {crumb}?", s.name),
                                                    text: &format!("The snapshot is removed; the {}'s current state is not touched.", noun(view.kind)),
                                                    action: &dpath,
                                                    confirm: "Delete",
                                                    hidden: &[],
                                                }, &viewer))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    );
    Ok(page_response(page, flash.map(|f| f.1)))
}

/// `POST /containers/{id}/snapshots` (form).
pub async fn snapshot_submit(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let form = form_of(pairs);
    let actor = Actor::resolve(&state, &user, remote, &id).await?;
    let target = &actor.target;
    let back = format!("/containers/{}/snapshots", target.url_id());
    let req = SnapshotRequest {
        name: form
            .get("name")
            .cloned()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        description: form.get("description").cloned().filter(|d| !d.is_empty()),
    };
    Ok(match daytwo::snapshot(&actor, req).await {
        Ok(out) => redirect_with(&back, Tone::Ok, &out.message),
        Err(e) => redirect_with(&back, Tone::Err, &e.to_string()),
    })
}

/// `POST /containers/{id}/snapshots/{name}/rollback` (form).
pub async fn rollback_submit(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let actor = Actor::resolve(&state, &user, remote, &id).await?;
    let target = &actor.target;
    let back = format!("/containers/{}/snapshots", target.url_id());
    Ok(
        match daytwo::rollback(&actor, &name, RollbackRequest::default()).await {
            Ok(out) => redirect_with(&back, Tone::Ok, &out.message),
            Err(e) => redirect_with(&back, Tone::Err, &e.to_string()),
        },
    )
}

/// `POST /containers/{id}/snapshots/{name}/delete` (form).
pub async fn delete_snapshot_submit(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let actor = Actor::resolve(&state, &user, remote, &id).await?;
    let target = &actor.target;
    let back = format!("/containers/{}/snapshots", target.url_id());
    Ok(match daytwo::delete_snapshot(&actor, &name).await {
        Ok(out) => redirect_with(&back, Tone::Ok, &out.message),
        Err(e) => redirect_with(&back, Tone::Err, &e.to_string()),
    })
}

/// `GET /containers/{id}/journal`: the guest's boot log, live and read-only (the page's
/// script follows `GET /api/v1/containers/{id}/journal`).
pub async fn journal(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let target = resolve(&state, &id).await?;
    crate::authz::read(&state, &user, &target.cluster, target.vmid).await?;
    let key = target.url_id();
    let crumb = format!("{} (CT {})", target.display_name(), target.vmid);
    let ct_href = format!("/containers/{key}");
    let page = ui::layout(
        &format!("Boot log of {crumb}"),
        "/",
        &viewer(&user),
        html! {
            (ui::breadcrumbs(&[("/", "Containers"), (&ct_href, &crumb), ("", "Boot log")]))
            h1 { "Boot log of " (crumb) }
            p.muted { "Read-only: the guest's journal since boot (the syslog where it has none), followed live for five minutes. Needs console access (VM.Console)." }
            section.card.journal data-journal-src={ "/api/v1/containers/" (key) "/journal" } {
                p role="status" data-journal-status { "Following…" }
                pre.mono tabindex="0" aria-label="Boot log" {}
            }
        },
    );
    Ok(page.into_response())
}
