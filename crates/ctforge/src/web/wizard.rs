//! `/containers/new`: the five-step creation wizard (Template → Configure → Packages →
//! Scripts → Review). Every value travels with the form, each step is validated on the server
//! by the same `plan::resolve` that the job executes, and going back or failing validation
//! never loses what the user typed. Review shows the exact plan; nothing exists until Create.
//! The root password is the exception: it is sealed into a server-side draft
//! (`provisioning::drafts`) as soon as it arrives and the pages carry only the draft's id.
//!
//! A vm template's Configure step chooses where the VM's disk comes from: the template's cloud
//! image imported, or a clone of one of the cluster's VM templates (`clone_from`; only those
//! the user may clone are offered), linked or a full copy; Review then shows Proxmox's clone
//! call instead of the create call.
//!
//! Presets: the Template step (or `?preset=NAME`) can start from a saved preset, whose values
//! fill the form; Review can save the form as a preset ("Save as preset") and create several
//! containers at once (`count`, a hostname pattern like `web-{n}`, a placement rule).

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::provisioning::check::{self, CheckQuery, FieldCheck, IdentityCheck};
use crate::provisioning::environment::{self, VmTemplate};
use crate::provisioning::plan::{self, CreateRequest, ScriptChoice, Step};
use crate::provisioning::{batch, drafts, submit};
use crate::state::AppState;
use crate::web::components::{self as ui, Field, Tone, Viewer};
use crate::web::home::viewer;

/// The wizard's steps, in order.
const STEPS: &[(&str, &str)] = &[
    ("template", "Template"),
    ("configure", "Configure"),
    ("packages", "Packages"),
    ("scripts", "Scripts"),
    ("review", "Review"),
];

/// The form field carrying the id of the draft that holds the root password.
const DRAFT_KEY: &str = "secret_draft";

/// Which request fields each step owns (errors are shown on the step that owns the field).
fn step_of(field: &str) -> &'static str {
    match field {
        "template" => "template",
        "buckets" | "extra_packages" => "packages",
        "scripts" | "sync_on_boot" => "scripts",
        "files" | "count" | "placement" | "preset_name" | "source" => "review",
        _ => "configure",
    }
}

/// All wizard values as typed (strings), carried between steps.
#[derive(Clone, Debug, Default)]
pub struct Wizard {
    values: Vec<(String, String)>,
}

impl Wizard {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self {
            values: pairs
                .into_iter()
                .filter(|(k, _)| k != "csrf_token" && k != "step" && k != "go")
                .collect(),
        }
    }

    fn get(&self, key: &str) -> &str {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn remove(&mut self, key: &str) {
        self.values.retain(|(k, _)| k != key);
    }

    fn set(&mut self, key: &str, value: impl Into<String>) {
        self.values.retain(|(k, _)| k != key);
        self.values.push((key.to_owned(), value.into()));
    }

    fn flag(&self, key: &str) -> Option<bool> {
        match self.get(key) {
            "" => None,
            "1" | "on" | "true" => Some(true),
            _ => Some(false),
        }
    }

    /// Whether a VM's disk is a clone of a VM template: the Configure step's choice
    /// (`disk_from`), else whether a VM template is named (a preset's `clone_from`).
    fn cloning(&self) -> bool {
        match self.get("disk_from") {
            "clone" => true,
            "image" => false,
            _ => !self.get("clone_from").trim().is_empty(),
        }
    }

    /// The request these values describe; unparsable numbers become field errors.
    fn request(&self) -> (CreateRequest, Vec<(String, String)>) {
        let mut errors = Vec::new();
        let opt = |k: &str| Some(self.get(k).trim().to_owned()).filter(|v| !v.is_empty());
        let mut num = |k: &str| -> Option<u64> {
            let v = self.get(k).trim();
            if v.is_empty() {
                return None;
            }
            match v.parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    errors.push((k.to_owned(), "enter a whole number".to_owned()));
                    None
                }
            }
        };
        let vmid = num("vmid").and_then(|n| u32::try_from(n).ok());
        let cores = num("cores").and_then(|n| u32::try_from(n).ok());
        let memory = num("memory");
        let swap = num("swap");
        let disk = num("disk").and_then(|n| u32::try_from(n).ok());
        let clone_from = if self.cloning() {
            let chosen = num("clone_from").and_then(|n| u32::try_from(n).ok());
            if chosen.is_none() && self.get("clone_from").trim().is_empty() {
                errors.push((
                    "clone_from".to_owned(),
                    "choose the VM template to clone".to_owned(),
                ));
            }
            chosen
        } else {
            None
        };
        let buckets = (self.get("touched_packages") == "1")
            .then(|| self.all("bucket").into_iter().map(str::to_owned).collect());
        let scripts = (self.get("touched_scripts") == "1").then(|| {
            let mut rows: Vec<(i64, String, bool)> = self
                .all("script")
                .into_iter()
                .map(|name| {
                    let order = self
                        .get(&format!("order:{name}"))
                        .trim()
                        .parse::<i64>()
                        .unwrap_or(i64::MAX);
                    (order, name.to_owned(), self.all("enabled").contains(&name))
                })
                .collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
            rows.into_iter()
                .map(|(_, name, enabled)| ScriptChoice { name, enabled })
                .collect()
        });
        let tags = opt("tags").map(|t| {
            t.split([';', ',', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        });
        let extra = opt("extra_packages").map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect()
        });
        let request = CreateRequest {
            template: opt("template").filter(|t| t != "__scratch"),
            cluster: opt("cluster"),
            node: opt("node"),
            hostname: self.get("hostname").trim().to_owned(),
            vmid,
            password: opt("password"),
            ssh_public_keys: opt("ssh_public_keys"),
            cores,
            memory,
            swap,
            disk,
            storage: opt("storage"),
            bridge: opt("bridge"),
            ip: opt("ip"),
            gateway: opt("gateway"),
            nameserver: opt("nameserver"),
            unprivileged: self.flag("unprivileged"),
            nesting: self.flag("nesting"),
            keyctl: self.flag("keyctl"),
            fuse: self.flag("fuse"),
            tags,
            ostemplate: opt("ostemplate"),
            buckets,
            extra_packages: extra,
            scripts,
            sync_on_boot: self.flag("sync_on_boot") == Some(true),
            source: match opt("source").as_deref() {
                Some("image") => Some(crate::provisioning::plan::SourceKind::Image),
                Some("scratch") => Some(crate::provisioning::plan::SourceKind::Scratch),
                _ => None,
            },
            image: opt("image").filter(|_| clone_from.is_none()),
            full_clone: clone_from.and_then(|_| match self.get("full_clone") {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            }),
            clone_from,
            user: opt("user"),
            upgrade: opt("upgrade").map(|v| !matches!(v.as_str(), "0" | "off" | "false" | "no")),
            cloud_init_snippet: false,
        };
        (request, errors)
    }

    /// Hidden inputs carrying every value not edited on `step`.
    fn hidden(&self, editing: &[&str]) -> Markup {
        html! {
            @for (k, v) in &self.values {
                @if !editing.contains(&k.as_str()) && !editing.iter().any(|e| k.starts_with(&format!("{e}:"))) {
                    input type="hidden" name=(k) value=(v);
                }
            }
        }
    }
}

fn stepper(current: &str) -> Markup {
    let index = STEPS.iter().position(|(k, _)| *k == current).unwrap_or(0);
    html! {
        ol.stepper aria-label="Wizard steps" {
            @for (i, (key, label)) in STEPS.iter().enumerate() {
                li aria-current=[(*key == current).then_some("step")] class=(if i < index { "done" } else if i == index { "current" } else { "todo" }) {
                    span.num { (i + 1) } " " (label)
                }
            }
        }
    }
}

fn error_for<'a>(errors: &'a [(String, String)], field: &str) -> Option<&'a str> {
    errors
        .iter()
        .find(|(f, _)| f == field)
        .map(|(_, m)| m.as_str())
}

struct Context {
    templates: Vec<(String, String)>,
    presets: Vec<crate::presets::PresetView>,
    notice: Option<(Tone, String)>,
    template: Option<ctforge_template::Template>,
    clusters: Vec<(String, String)>,
    environment: Result<plan::Environment, String>,
    /// A vm template's choice of VM templates to clone (those the user may clone), or why
    /// they cannot be listed; `None` for other templates.
    vm_templates: Option<Result<Vec<VmTemplate>, String>>,
    /// Why the VM template the values name could not be read from Proxmox.
    clone_unreadable: Option<String>,
}

impl Context {
    /// Whether the template makes a VM.
    fn vm(&self) -> bool {
        makes_vm(self.template.as_ref())
    }
}

/// Whether `template` makes a VM (`TEMPLATE_TYPE=vm`).
fn makes_vm(template: Option<&ctforge_template::Template>) -> bool {
    template.is_some_and(|t| t.config.kind() == ctforge_template::TemplateType::Vm)
}

async fn context(state: &AppState, user: &CurrentUser, w: &Wizard) -> Result<Context, AppError> {
    let templates = state
        .store
        .list_templates()
        .await?
        .into_iter()
        .map(|t| {
            (
                t.row.name.clone(),
                if t.row.description.is_empty() {
                    t.row.app.clone()
                } else {
                    format!("{} — {}", t.row.app, t.row.description)
                },
            )
        })
        .collect();
    let template = match w.get("template") {
        "" | "__scratch" => None,
        name => match state.store.get_template_by_name(name).await {
            Ok(record) => crate::templates::convert::record_to_template(&record).ok(),
            Err(_) => None,
        },
    };
    let clusters: Vec<(String, String)> = state
        .store
        .list_clusters()
        .await?
        .into_iter()
        .map(|c| (c.name.clone(), c.name))
        .collect();
    let vm = makes_vm(template.as_ref());
    let mut vm_templates = None;
    let mut clone_unreadable = None;
    let environment = match crate::auth::login::pick_cluster(state, Some(w.get("cluster"))).await {
        Ok(cluster) => match submit::client_for(state, user, &cluster) {
            Ok(client) => {
                let lookup = environment::lookup(client.as_ref(), &cluster, Some(w.get("node")));
                let mut env = if vm {
                    let (env, offered) =
                        tokio::join!(lookup, environment::vm_templates(state, user, &cluster));
                    vm_templates = Some(offered);
                    env
                } else {
                    lookup.await
                };
                // The VM template chosen, read as the creation reads it, so Review shows the
                // same clone call.
                if let Ok(env) = &mut env
                    && vm
                {
                    let (request, _) = w.request();
                    if let Err(e) = environment::read_clone_source(
                        client.as_ref(),
                        env,
                        request.clone_from,
                        request.node.as_deref(),
                    )
                    .await
                    {
                        clone_unreadable = Some(e);
                    }
                }
                env
            }
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    Ok(Context {
        templates,
        presets: crate::presets::list(state, user).await?,
        notice: None,
        template,
        clusters,
        environment,
        vm_templates,
        clone_unreadable,
    })
}

/// The request of the wizard's values as the form means them: a container template has no
/// disk choice (a VM template's value carried over from an earlier choice is dropped), a
/// linked clone stays on its template's storage (the Storage field is for a full copy), and a
/// VM template on another node than the chosen one is said on its field (a clone is made on
/// its template's node).
fn request_for(w: &Wizard, ctx: &Context) -> (CreateRequest, Vec<(String, String)>) {
    let (mut request, mut errors) = w.request();
    if !ctx.vm() {
        request.clone_from = None;
        errors.retain(|(f, _)| f != "clone_from");
        return (request, errors);
    }
    let Some(source) = request.clone_from else {
        return (request, errors);
    };
    if let Some(why) = &ctx.clone_unreadable {
        errors.push(("clone_from".to_owned(), why.clone()));
    }
    let env = ctx.environment.as_ref().ok();
    let node = request
        .node
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| env.and_then(|e| e.nodes.first().cloned()));
    if let (Some(Ok(offered)), Some(node)) = (&ctx.vm_templates, &node)
        && let Some(elsewhere) = offered.iter().find(|t| t.vmid == source && &t.node != node)
    {
        errors.push((
            "clone_from".to_owned(),
            format!(
                "VM template {source} is on node {at}, and a clone is made on its template's node: choose node {at}, or a template on {node}",
                at = elsewhere.node
            ),
        ));
    }
    if request.full_clone == Some(false) {
        request.storage = None;
    }
    (request, errors)
}

fn options(values: &[String]) -> Vec<(String, String)> {
    values.iter().map(|v| (v.clone(), v.clone())).collect()
}

fn page(
    v: &Viewer,
    step: &str,
    w: &Wizard,
    ctx: &Context,
    errors: &[(String, String)],
    plan: Option<&plan::PlanView>,
) -> Markup {
    let body = html! {
        h1 { "New container" }
        (stepper(step))
        @if let Err(e) = &ctx.environment { (ui::alert(Tone::Warn, &format!("Proxmox is unreachable: {e}. You can fill in the form; the plan needs the cluster."))) }
        @if let Some((tone, text)) = &ctx.notice { (ui::alert(*tone, text)) }
        @let step_errors: Vec<&(String, String)> = errors.iter().filter(|(f, _)| step_of(f) == step || step == "review").collect();
        @let unplaced: Vec<&&(String, String)> = step_errors.iter().filter(|(f, _)| !shown_on(step, f, ctx)).collect();
        @if step != "review" && !step_errors.is_empty() {
            @if unplaced.is_empty() {
                (ui::alert(Tone::Err, &attention(step_errors.len())))
            } @else {
                div.alert.alert-err role="alert" {
                    p { "Some values need attention:" }
                    ul { @for (f, m) in &unplaced { li { strong { (f) } ": " (m) } } }
                }
            }
        }
        form.form.wizard method="post" action="/containers/new" data-check="/api/v1/containers/check" {
            (ui::csrf_field(v))
            input type="hidden" name="step" value=(step);
            @match step {
                "template" => {
                    (w.hidden(&["template"]))
                    fieldset {
                        legend { "Start from a template" }
                        @if ctx.templates.is_empty() { p.muted { "No templates yet. " a href="/templates" { "Discover templates" } " or start from scratch." } }
                        @for (name, description) in &ctx.templates {
                            label.choice { input type="radio" name="template" value=(name) checked[w.get("template") == name]; " " strong { (name) } " " span.muted { (description) } }
                        }
                        label.choice { input type="radio" name="template" value="__scratch" checked[w.get("template").is_empty() || w.get("template") == "__scratch"]; " " strong { "From scratch" } " " span.muted { "a bare container" } }
                    }
                    @if !ctx.presets.is_empty() {
                        fieldset.presets {
                            legend { "Or start from a preset" }
                            label.choice { input type="radio" name="preset" value="" checked; " " span.muted { "no preset" } }
                            @for p in &ctx.presets {
                                label.choice { input type="radio" name="preset" value=(p.name); " " strong { (p.name) } " " span.muted { (p.template) } }
                            }
                        }
                    }
                }
                "configure" => {
                    @let editing = ["cluster", "node", "hostname", "vmid", "password", "ssh_public_keys", "cores", "memory", "swap", "disk", "storage", "bridge", "ip", "gateway", "nameserver", "unprivileged", "nesting", "keyctl", "fuse", "tags", "ostemplate", "image", "user", "disk_from", "clone_from", "full_clone"];
                    // A vm template (`TEMPLATE_TYPE=vm`) asks for a VM's fields instead of a
                    // container's: the cloud image, the cloud-init user, storages for VM disks.
                    @let vm = ctx.vm();
                    (w.hidden(&editing))
                    @let env = ctx.environment.as_ref().ok();
                    div.configure {
                        div.configure-fields {
                            fieldset {
                                legend { "Identity" }
                                @if ctx.clusters.len() > 1 { (ui::select("cluster", "Cluster", &ctx.clusters, w.get("cluster"), error_for(errors, "cluster"))) }
                                @if let Some(env) = env {
                                    (ui::select("node", "Node", &options(&env.nodes), w.get("node"), error_for(errors, "node")))
                                }
                                (ui::field(&Field { value: w.get("hostname"), required: true, error: error_for(errors, "hostname"), hint: Some("letters, digits and '-', e.g. web-01"), ..Field::new("hostname", "Hostname") }))
                                (ui::field(&Field { value: w.get("vmid"), kind: "number", error: error_for(errors, "vmid"), hint: Some("next free id suggested; checked as you type and again when you create"), ..Field::new("vmid", "VMID") }))
                                // Never echoed: a password typed earlier stays in its sealed draft.
                                @let hint = if w.get(DRAFT_KEY).is_empty() { "root password (optional with an SSH key)" } else { "a password is set (kept on the server); type a new one to change it" };
                                (ui::field(&Field { value: "", kind: "password", error: error_for(errors, "password"), autocomplete: Some("new-password"), hint: Some(hint), ..Field::new("password", "Root password") }))
                                (ui::field(&Field { value: w.get("ssh_public_keys"), kind: "textarea", error: error_for(errors, "ssh_public_keys"), hint: Some("one per line"), ..Field::new("ssh_public_keys", "SSH public keys") }))
                                (ui::field(&Field { value: w.get("tags"), error: error_for(errors, "tags"), hint: Some("separated by ';'"), ..Field::new("tags", "Tags") }))
                            }
                            @if vm { (disk_source(w, ctx, errors)) }
                            fieldset {
                                legend { "Resources" }
                                div.grid.field-pairs {
                                    (ui::field(&Field { value: w.get("cores"), kind: "number", error: error_for(errors, "cores"), ..Field::new("cores", "Cores") }))
                                    (ui::field(&Field { value: w.get("memory"), kind: "number", error: error_for(errors, "memory"), ..Field::new("memory", "Memory (MiB)") }))
                                    @if !vm {
                                        (ui::field(&Field { value: w.get("swap"), kind: "number", error: error_for(errors, "swap"), ..Field::new("swap", "Swap (MiB)") }))
                                    }
                                    (ui::field(&Field { value: w.get("disk"), kind: "number", error: error_for(errors, "disk"), ..Field::new("disk", "Disk (GiB)") }))
                                }
                                @if let Some(env) = env {
                                    @if vm {
                                        (ui::select("storage", "Storage", &options(&env.image_storages), w.get("storage"), error_for(errors, "storage")))
                                    } @else {
                                        (ui::select("storage", "Storage", &options(&env.rootdir_storages), w.get("storage"), error_for(errors, "storage")))
                                        (ui::select("ostemplate", "OS template", &options(&env.ostemplates), w.get("ostemplate"), error_for(errors, "ostemplate")))
                                    }
                                }
                                @if vm {
                                    (ui::field(&Field { value: w.get("user"), error: error_for(errors, "user"), hint: Some("the cloud-init user that gets the password and SSH keys"), ..Field::new("user", "User") }))
                                }
                            }
                            fieldset {
                                legend { "Network" }
                                @if let Some(env) = env {
                                    (ui::select("bridge", "Bridge", &options(&env.bridges), w.get("bridge"), error_for(errors, "bridge")))
                                }
                                (ui::field(&Field { value: w.get("ip"), error: error_for(errors, "ip"), hint: Some("dhcp, or a static address like 192.168.1.50/24"), ..Field::new("ip", "IPv4") }))
                                (ui::field(&Field { value: w.get("gateway"), error: error_for(errors, "gateway"), hint: Some("for static addresses"), ..Field::new("gateway", "Gateway") }))
                                (ui::field(&Field { value: w.get("nameserver"), error: error_for(errors, "nameserver"), ..Field::new("nameserver", "DNS server") }))
                            }
                            @if !vm { fieldset {
                                legend { "Features" }
                                @for (key, label) in [("unprivileged", "Unprivileged"), ("nesting", "Nesting"), ("keyctl", "keyctl"), ("fuse", "FUSE")] {
                                    input type="hidden" name=(key) value="0";
                                    label.choice { input type="checkbox" name=(key) value="1" checked[w.flag(key) == Some(true)]; " " (label) }
                                }
                            } }
                        }
                        (template_summary(ctx.template.as_ref()))
                    }
                }
                "packages" => {
                    (w.hidden(&["bucket", "extra_packages", "touched_packages"]))
                    input type="hidden" name="touched_packages" value="1";
                    @let chosen = w.all("bucket");
                    @let untouched = w.get("touched_packages") != "1";
                    @if let Some(t) = &ctx.template {
                        fieldset {
                            legend { "Buckets of " (t.name) }
                            @if t.packages.is_empty() { p.muted { "This template installs no packages." } }
                            @let buckets: Vec<&str> = { let mut b: Vec<&str> = t.packages.iter().map(|l| l.bucket.as_str()).collect(); b.dedup(); b };
                            @for bucket in buckets {
                                @let packages: Vec<String> = t.packages.iter().filter(|l| l.bucket == bucket).flat_map(|l| l.packages.iter().map(move |p| format!("{}:{}", l.manager.as_str(), p.spec(l.manager)))).collect();
                                label.choice { input type="checkbox" name="bucket" value=(bucket) checked[untouched || chosen.contains(&bucket)]; " " strong { (bucket) } " " span.muted { (packages.join(", ")) } }
                            }
                        }
                    }
                    (ui::field(&Field { value: w.get("extra_packages"), kind: "textarea", error: error_for(errors, "extra_packages"), hint: Some("one per line: a plain apt name, or manager:name[=version], e.g. pip:requests==2.31"), ..Field::new("extra_packages", "Extra packages") }))
                    @if let Some(e) = error_for(errors, "buckets") { (ui::alert(Tone::Err, e)) }
                }
                "scripts" => {
                    (w.hidden(&["script", "order", "enabled", "touched_scripts", "sync_on_boot"]))
                    input type="hidden" name="touched_scripts" value="1";
                    @match &ctx.template {
                        Some(t) if !t.scripts.is_empty() => {
                            @let untouched = w.get("touched_scripts") != "1";
                            @let enabled = w.all("enabled");
                            table.table {
                                thead { tr { th scope="col" { "Run" } th scope="col" { "Order" } th scope="col" { "Script" } } }
                                tbody {
                                    @for (i, s) in t.scripts.iter().enumerate() {
                                        @let order_key = format!("order:{}", s.name);
                                        @let order = if untouched { ((i + 1) * 10).to_string() } else { w.get(&order_key).to_owned() };
                                        tr {
                                            td { input type="hidden" name="script" value=(s.name); input type="checkbox" name="enabled" value=(s.name) aria-label={ "Run " (s.name) } checked[untouched || enabled.contains(&s.name.as_str())]; }
                                            td { input type="number" name=(order_key) value=(order) aria-label={ "Order of " (s.name) } class="input-order"; }
                                            td { code { (s.name) } }
                                        }
                                    }
                                }
                            }
                        }
                        _ => { p.muted { "No scripts to run." } }
                    }
                    @if let Some(e) = error_for(errors, "scripts") { (ui::alert(Tone::Err, e)) }
                    @if ctx.template.is_some() {
                        fieldset {
                            legend { "On boot" }
                            input type="hidden" name="sync_on_boot" value="0";
                            label.choice { input type="checkbox" name="sync_on_boot" value="1" checked[w.flag("sync_on_boot") == Some(true)] aria-describedby="sync_on_boot-hint"; " Sync on boot: the config-manager fetches the template's git branch itself on every boot" }
                            div.hint id="sync_on_boot-hint" { "For templates synced from a git source (https, git or file URL). Otherwise ctforge pushes the template version it knows and the config-manager re-applies that." }
                            @if let Some(e) = error_for(errors, "sync_on_boot") { div.error { (e) } }
                        }
                    }
                }
                _ => {
                    (w.hidden(&["count", "placement", "preset_name", "preset_shared", "source"]))
                    fieldset {
                        legend { "How many" }
                        div.grid.field-pairs {
                            (ui::field(&Field { value: if w.get("count").is_empty() { "1" } else { w.get("count") }, kind: "number", error: error_for(errors, "count"), hint: Some("more than one needs a hostname pattern with {n}, e.g. web-{n}"), ..Field::new("count", "Count") }))
                            (ui::select("placement", "Placement", &placements(), w.get("placement"), error_for(errors, "placement")))
                        }
                    }
                    @if let Some(plan) = plan {
                        @if let Some(reason) = crate::authz::root_only_reason(&plan.create_params) {
                            (ui::alert(Tone::Warn, reason))
                        }
                        // Baked images are container templates; a VM's disk is chosen on Configure.
                        @if ctx.template.is_some() && plan.kind == crate::status::GuestKind::Lxc {
                            section.card.stack data-source=[plan.source.as_ref().map(|s| s.kind.as_str())] {
                                h2 { "Source" }
                                @if let Some(source) = &plan.source {
                                    p {
                                        strong { @if source.image.is_some() { "From the template's image" } @else { "From scratch" } }
                                        " — " (source.reason)
                                    }
                                }
                                div.row {
                                    (ui::select("source", "Create", &sources(), w.get("source"), error_for(errors, "source")))
                                    button.btn type="submit" name="go" value="next" formnovalidate { "Update review" }
                                }
                            }
                        }
                        @let clone_config = plan.steps.iter().find_map(|s| match s { Step::CloneVm { config, .. } => Some(config), _ => None });
                        section.card.stack data-create-call=(plan.create_call) {
                            h2 { @if clone_config.is_some() { "Proxmox clone call" } @else { "Proxmox create call" } }
                            p.muted { code { (plan.create_call) } " on cluster " (plan.cluster) }
                            table.table {
                                tbody { @for (k, val) in &plan.create_params { tr { th scope="row" { code { (k) } } td { code { (val) } } } } }
                            }
                            @if let Some(config) = clone_config {
                                p.muted { "then the clone's own configuration, " code { "PUT /nodes/" (plan.node) "/qemu/" (plan.vmid) "/config" } ":" }
                                table.table {
                                    tbody { @for (k, val) in config { tr { th scope="row" { code { (k) } } td { code { (val) } } } } }
                                }
                            }
                        }
                        section.card.stack {
                            h2 { "Provisioning steps" }
                            ol.plan {
                                @for s in &plan.steps {
                                    li { (describe(s)) }
                                }
                            }
                            @if w.flag("sync_on_boot") == Some(true) {
                                p data-sync-on-boot { "Sync on boot: the config-manager fetches the template's git branch itself on every boot and applies it." }
                            }
                        }
                    } @else {
                        (ui::alert(Tone::Err, "The plan cannot be built yet: go back and fix the marked values."))
                        ul { @for (f, m) in errors { li { strong { (f) } ": " (m) } } }
                    }
                }
            }
            @if step == "review" {
                fieldset.save-preset {
                    legend { "Save as preset" }
                    (ui::field(&Field { value: w.get("preset_name"), error: error_for(errors, "preset_name"), hint: Some("keeps these answers (never the password) for the next time"), ..Field::new("preset_name", "Preset name") }))
                    @if v.admin {
                        label.choice { input type="checkbox" name="preset_shared" value="1" checked[w.get("preset_shared") == "1"]; " Shared with every user" }
                    }
                    button.btn type="submit" name="go" value="save_preset" formnovalidate { "Save as preset" }
                }
            }
            div.row {
                @if step != "template" { button.btn type="submit" name="go" value="back" formnovalidate { "Back" } }
                @if step == "review" {
                    button.btn.btn-primary type="submit" name="go" value="create" disabled[plan.is_none()] { "Create container" }
                } @else {
                    button.btn.btn-primary type="submit" name="go" value="next" { "Next" }
                }
            }
        }
    };
    ui::layout("New container", "/", v, body)
}

/// A vm template's Configure choice of the VM's disk: the cloud image imported, or a clone of
/// one of the cluster's VM templates (those the user may clone, grouped by node), linked or a
/// full copy. Both parts stay in the form: the stylesheet shows the chosen one and the server
/// reads only that one.
fn disk_source(w: &Wizard, ctx: &Context, errors: &[(String, String)]) -> Markup {
    let env = ctx.environment.as_ref().ok();
    let cloning = w.cloning();
    let chosen = w.get("clone_from").trim();
    let error = error_for(errors, "clone_from");
    let cluster = env.map_or("this cluster", |e| e.cluster_name.as_str());
    let offered = match &ctx.vm_templates {
        Some(Ok(list)) => Some(list.as_slice()),
        _ => None,
    };
    // With no VM template to clone, the choice is shown but cannot be taken (unless a value
    // already names one: its error is shown then).
    let none = offered.is_some_and(<[VmTemplate]>::is_empty);
    let source = env
        .and_then(|e| e.clone_source.as_ref())
        .filter(|s| s.vmid.to_string() == chosen);
    let unlinkable = source.is_some_and(|s| !s.linked);
    let full = match w.get("full_clone") {
        "" => unlinkable,
        v => v == "1",
    };
    let mode_error = error_for(errors, "full_clone");
    let mode_hint = match source {
        Some(s) if !s.linked => format!(
            "The disk of VM template {} ({}) cannot be linked: Proxmox links only a template's base volumes on thin LVM, ZFS or Ceph and qcow2 files, so a full copy is made.",
            s.vmid,
            s.disk_storage.as_deref().unwrap_or("no disk")
        ),
        _ => "Linked: made at once, shares the template's disk (the template must stay). Full: an independent copy, on the storage chosen under Resources.".to_owned(),
    };
    let error_id = error.map(|_| "clone_from-error");
    html! {
        fieldset.disk-source {
            legend { "Disk" }
            label.choice { input type="radio" name="disk_from" value="image" checked[!cloning]; " From the cloud image " span.muted { "imported into a new disk (the template's TEMPLATE_IMAGE)" } }
            div.disk-image {
                @if let Some(env) = env {
                    (ui::select("image", "Cloud image", &options(&env.import_volumes), w.get("image"), error_for(errors, "image")))
                }
            }
            label.choice { input type="radio" name="disk_from" value="clone" checked[cloning] disabled[none && !cloning] aria-describedby=[none.then_some("clone_from-none")]; " A clone of a VM template " span.muted { "of this cluster, made on its template's node" } }
            @if none {
                p.muted id="clone_from-none" { "Cluster " (cluster) " has no VM template you may clone (cloning needs VM.Clone on it): convert a prepared VM to a template in Proxmox first, or use the cloud image." }
                @if let Some(e) = error { div.error id="clone_from-error" { (e) } }
            }
            @if !none {
                div.disk-clone {
                    @match offered {
                        Some(list) => {
                            div.field {
                                label for="clone_from" { "VM template" }
                                select id="clone_from" name="clone_from" aria-invalid=[error.map(|_| "true")] aria-describedby=[error_id] {
                                    @if !chosen.is_empty() && !list.iter().any(|t| t.vmid.to_string() == chosen) {
                                        option value=(chosen) selected { (chosen) " (not a VM template you may clone here)" }
                                    }
                                    @for group in list.chunk_by(|a, b| a.node == b.node) {
                                        optgroup label={ "on " (group[0].node) } {
                                            @for t in group {
                                                option value=(t.vmid) selected[chosen == t.vmid.to_string()] {
                                                    (t.vmid) @if !t.name.is_empty() { " — " (t.name) }
                                                }
                                            }
                                        }
                                    }
                                }
                                @if let Some(e) = error { div.error id="clone_from-error" { (e) } }
                            }
                        }
                        None => {
                            @let why = match &ctx.vm_templates { Some(Err(why)) => why.as_str(), _ => "Proxmox is unreachable" };
                            @let hint = format!("The VM templates of {cluster} cannot be listed ({why}); enter the VMID of one.");
                            (ui::field(&Field { value: chosen, kind: "number", error, hint: Some(&hint), ..Field::new("clone_from", "VM template (VMID)") }))
                        }
                    }
                    div.field {
                        label for="full_clone" { "Clone mode" }
                        select id="full_clone" name="full_clone" aria-invalid=[mode_error.map(|_| "true")] aria-describedby=(if mode_error.is_some() { "full_clone-error full_clone-hint" } else { "full_clone-hint" }) {
                            option value="0" selected[!full] { "Linked clone, on the template's storage" }
                            option value="1" selected[full] { "Full copy, on the storage under Resources" }
                        }
                        div.hint id="full_clone-hint" { (mode_hint) }
                        @if let Some(e) = mode_error { div.error id="full_clone-error" { (e) } }
                    }
                }
            }
        }
    }
}

/// The wizard's source choice: automatic (`source` left out), or forced.
fn sources() -> Vec<(String, String)> {
    [
        (
            "",
            "Automatically: from the image when one is ready, else from scratch",
        ),
        ("image", "From the template's image"),
        ("scratch", "From scratch"),
    ]
    .iter()
    .map(|(k, l)| ((*k).to_owned(), (*l).to_owned()))
    .collect()
}

fn placements() -> Vec<(String, String)> {
    [
        ("fixed", "Fixed: the node above"),
        ("round-robin", "Round-robin over online nodes"),
        ("least-loaded", "Least loaded (most free memory)"),
    ]
    .iter()
    .map(|(k, l)| ((*k).to_owned(), (*l).to_owned()))
    .collect()
}

/// Fills the wizard from a preset's values (the form's own names and formats).
fn fill_from_preset(w: &mut Wizard, preset: &crate::presets::PresetView) {
    w.set("template", preset.template.clone());
    for (key, value) in &preset.values {
        match (key.as_str(), value) {
            (_, serde_json::Value::Null) => {}
            ("tags", serde_json::Value::Array(items)) => {
                let tags: Vec<&str> = items.iter().filter_map(|t| t.as_str()).collect();
                w.set("tags", tags.join(";"));
            }
            ("extra_packages", serde_json::Value::Array(items)) => {
                let lines: Vec<&str> = items.iter().filter_map(|t| t.as_str()).collect();
                w.set("extra_packages", lines.join("\n"));
            }
            ("buckets", serde_json::Value::Array(items)) => {
                w.remove("bucket");
                for b in items.iter().filter_map(|t| t.as_str()) {
                    w.values.push(("bucket".to_owned(), b.to_owned()));
                }
                w.set("touched_packages", "1");
            }
            ("scripts", serde_json::Value::Array(items)) => {
                w.remove("script");
                w.remove("enabled");
                for (i, item) in items.iter().enumerate() {
                    let Some(name) = item.get("name").and_then(|n| n.as_str()) else {
                        continue;
                    };
                    w.values.push(("script".to_owned(), name.to_owned()));
                    w.set(&format!("order:{name}"), ((i + 1) * 10).to_string());
                    if item.get("enabled").and_then(serde_json::Value::as_bool) == Some(true) {
                        w.values.push(("enabled".to_owned(), name.to_owned()));
                    }
                }
                w.set("touched_scripts", "1");
            }
            (k, serde_json::Value::Bool(b)) => w.set(k, if *b { "1" } else { "0" }),
            (k, serde_json::Value::String(text)) => w.set(k, text.clone()),
            (k, serde_json::Value::Number(n)) => w.set(k, n.to_string()),
            _ => {}
        }
    }
}

/// The preset values of the wizard's answers: the request's fields without the password and
/// a fixed VMID, plus the batch fields.
fn preset_values(
    w: &Wizard,
    request: &CreateRequest,
) -> serde_json::Map<String, serde_json::Value> {
    let mut values = match serde_json::to_value(request) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    values.retain(|k, v| !v.is_null() && !matches!(k.as_str(), "password" | "template" | "vmid"));
    if let Ok(count) = w.get("count").trim().parse::<u64>()
        && count > 1
    {
        values.insert("count".into(), count.into());
    }
    if !w.get("placement").is_empty() {
        values.insert("placement".into(), w.get("placement").into());
    }
    values
}

/// The summary above a step whose errors are all shown next to their fields.
fn attention(n: usize) -> String {
    if n == 1 {
        "One value needs attention; it is marked below.".to_owned()
    } else {
        format!("{n} values need attention; they are marked below.")
    }
}

/// Whether `step` draws the field `field` (so its error shows next to it).
fn shown_on(step: &str, field: &str, ctx: &Context) -> bool {
    let env = ctx.environment.is_ok();
    match step {
        "template" => field == "template",
        "configure" => match field {
            "cluster" => ctx.clusters.len() > 1,
            "node" | "storage" | "bridge" | "ostemplate" | "image" => env,
            _ => step_of(field) == "configure",
        },
        "packages" => matches!(field, "extra_packages" | "buckets"),
        "scripts" => field == "scripts" || (field == "sync_on_boot" && ctx.template.is_some()),
        _ => false,
    }
}

/// The template the container starts from, beside the Configure form.
fn template_summary(template: Option<&ctforge_template::Template>) -> Markup {
    html! {
        aside.card.template-summary aria-labelledby="template-summary" {
            @match template {
                Some(t) => {
                    h2 id="template-summary" { "Template " span.mono { (t.name) } }
                    @if let Some(app) = &t.config.app { p { strong { (app) } } }
                    @if let Some(d) = &t.config.description { p.muted { (d) } }
                    dl.facts {
                        dt { "Defaults" }
                        dd {
                            (ui::count(t.config.cpu.unwrap_or(1), "core"))
                            " · " (t.config.ram_mib.map(|m| format!("{m} MiB")).unwrap_or_else(|| "512 MiB".to_owned()))
                            " · " (t.config.disk_gib.map(|d| format!("{d} GiB")).unwrap_or_else(|| "8 GiB".to_owned()))
                        }
                        @if let Some(os) = &t.config.os {
                            dt { "OS" } dd { (os) " " (t.config.os_version.as_deref().unwrap_or("")) }
                        }
                        dt { "Provisioning" }
                        dd { (ui::count(t.scripts.len(), "script")) " · " (ui::count(t.packages.iter().map(|l| l.packages.len()).sum::<usize>(), "package")) " · " (ui::count(t.files.len(), "file")) }
                    }
                    a href={ "/templates/" (crate::web::templates::form::urlencode(&t.name)) } { "View the template" }
                }
                None => {
                    h2 id="template-summary" { "From scratch" }
                    p.muted { "A bare container from the OS template you choose; nothing is installed or run inside it." }
                }
            }
        }
    }
}

fn describe(step: &Step) -> Markup {
    match step {
        Step::Create => {
            html! { "Create the container and wait for the " code { "vzcreate" } " task" }
        }
        Step::CloneImage { vmid, node } => {
            html! { "Clone the template's image (CT template " code { (vmid) } " on " (node) "; linked where the storage allows) and set this container's configuration" }
        }
        Step::CloneVm { vmid, full, config } => {
            let how = if *full {
                "full copy"
            } else {
                "linked to the template's disk"
            };
            let keys: Vec<&str> = config.keys().map(String::as_str).collect();
            html! { "Clone VM template " code { (vmid) } " (" (how) ", " code { "POST …/qemu/" (vmid) "/clone" } ") and set this VM's own " code { (keys.join(", ")) } }
        }
        Step::Identity => {
            html! { "Give it its own identity: new SSH host keys and machine-id, root password and SSH keys" }
        }
        Step::CloudInitSnippet { volid, .. } => {
            html! { "Write the template's cloud-init user-data as vendor-data " code { (volid) } }
        }
        Step::ResizeDisk { disk, size } => {
            html! { "Grow disk " code { (disk) } " to " code { (size) } " (" code { "PUT …/resize" } ")" }
        }
        Step::Start => {
            html! { "Start it and wait until commands run inside (a VM: until its guest agent answers)" }
        }
        Step::DeployFile {
            name, path, policy, ..
        } => {
            html! { "Deploy " code { (name) } " to " code { (path) } " " (ui::badge(Some(Tone::Info), policy)) }
        }
        Step::ConfigManager => {
            html! { "Install the config-manager (" code { "ctforge-apply.service" } " re-applies the files on boot)" }
        }
        Step::Install { manager, packages } => {
            html! { "Install with " strong { (manager) } ": " code { (packages.join(" ")) } }
        }
        Step::CustomPackage {
            name,
            check,
            install,
            ..
        } => {
            html! { "Install " strong { (name) } " with " code { (install) } " unless " code { (check) } " succeeds" }
        }
        Step::CustomInstaller { .. } => html! { "Run the template's custom installer" },
        Step::RunScript { name, .. } => html! { "Run script " code { (name) } },
        Step::Discover => {
            html! { "Discover services, ports, web URLs and credentials; mark ready" }
        }
    }
}

/// Fills the Configure step's empty fields with the values the plan would choose.
fn prefill(w: &mut Wizard, ctx: &Context) {
    let conf = ctx
        .template
        .as_ref()
        .map(|t| t.config.clone())
        .unwrap_or_default();
    let set_default = |w: &mut Wizard, key: &str, value: Option<String>| {
        if w.get(key).is_empty()
            && let Some(v) = value
        {
            w.set(key, v);
        }
    };
    if let Ok(env) = &ctx.environment {
        set_default(w, "node", env.nodes.first().cloned());
        set_default(w, "vmid", Some(env.next_vmid.to_string()));
        let disk_storages = if conf.kind() == ctforge_template::TemplateType::Vm {
            &env.image_storages
        } else {
            &env.rootdir_storages
        };
        set_default(
            w,
            "storage",
            conf.storage
                .clone()
                .or_else(|| disk_storages.first().cloned()),
        );
        set_default(
            w,
            "bridge",
            conf.bridge.clone().or_else(|| env.bridges.first().cloned()),
        );
        let wanted = conf
            .os
            .clone()
            .map(|os| format!("{os}-{}", conf.os_version.clone().unwrap_or_default()));
        let os = env
            .ostemplates
            .iter()
            .find(|t| {
                wanted.as_ref().is_some_and(|w| {
                    t.rsplit('/')
                        .next()
                        .is_some_and(|f| f.starts_with(w.trim_end_matches('-')))
                })
            })
            .or(env.ostemplates.first())
            .cloned();
        set_default(w, "ostemplate", os);
        if conf.kind() == ctforge_template::TemplateType::Vm {
            let file = |v: &String| v.rsplit(['/', ':']).next().unwrap_or_default().to_owned();
            let image = env
                .import_volumes
                .iter()
                .find(|v| match &conf.image {
                    Some(named) => *v == named || file(v) == *named,
                    None => wanted
                        .as_ref()
                        .is_some_and(|w| file(v).starts_with(w.trim_end_matches('-'))),
                })
                .cloned();
            set_default(w, "image", image);
        }
    }
    set_default(w, "cores", Some(conf.cpu.unwrap_or(1).to_string()));
    set_default(w, "memory", Some(conf.ram_mib.unwrap_or(512).to_string()));
    set_default(w, "swap", Some(conf.swap_mib.unwrap_or(512).to_string()));
    set_default(w, "disk", Some(conf.disk_gib.unwrap_or(8).to_string()));
    set_default(w, "ip", Some("dhcp".into()));
    set_default(
        w,
        "tags",
        Some(conf.tags.join(";")).filter(|t| !t.is_empty()),
    );
    for (key, value) in [
        ("unprivileged", conf.unprivileged.or(Some(true))),
        ("nesting", conf.nesting),
        ("keyctl", conf.keyctl),
        ("fuse", conf.fuse),
    ] {
        set_default(
            w,
            key,
            Some(if value.unwrap_or(false) { "1" } else { "0" }.to_owned()),
        );
    }
}

/// Query of `GET /containers/new`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct NewQuery {
    template: Option<String>,
    preset: Option<String>,
}

/// `GET /containers/new[?template=NAME]`.
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Query(q): Query<NewQuery>,
) -> Result<Markup, AppError> {
    let mut w = Wizard::default();
    let step = match (
        q.preset.filter(|p| !p.is_empty()),
        q.template.filter(|t| !t.is_empty()),
    ) {
        (Some(p), _) => {
            let preset = crate::presets::get(&state, &user, &p).await?;
            fill_from_preset(&mut w, &crate::presets::PresetView::from(&preset));
            "configure"
        }
        (None, Some(t)) => {
            w.set("template", t);
            "configure"
        }
        (None, None) => "template",
    };
    let ctx = context(&state, &user, &w).await?;
    if step == "configure" {
        prefill(&mut w, &ctx);
    }
    Ok(page(&viewer(&user), step, &w, &ctx, &[], None))
}

/// `POST /containers/new`: move between steps, or create on Review.
pub async fn advance(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let step = pairs
        .iter()
        .find(|(k, _)| k == "step")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "template".into());
    let go = pairs
        .iter()
        .find(|(k, _)| k == "go")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "next".into());
    let mut w = Wizard::from_pairs(pairs);
    // The root password goes into a sealed draft at once; no page carries it back.
    let typed = w.get("password").to_owned();
    w.remove("password");
    let password = if typed.is_empty() {
        drafts::open(&state, &user.username, w.get(DRAFT_KEY)).await?
    } else {
        let id = drafts::keep(&state, &user.username, Some(w.get(DRAFT_KEY)), &typed).await?;
        w.set(DRAFT_KEY, id);
        Some(typed)
    };
    if password.is_none() {
        w.remove(DRAFT_KEY);
    }
    // Starting from a preset: its values fill the form, then Configure shows them.
    let chosen = w.get("preset").trim().to_owned();
    w.remove("preset");
    if step == "template" && go == "next" && !chosen.is_empty() {
        let preset = crate::presets::get(&state, &user, &chosen).await?;
        fill_from_preset(&mut w, &crate::presets::PresetView::from(&preset));
        let mut ctx = context(&state, &user, &w).await?;
        prefill(&mut w, &ctx);
        ctx.notice = Some((Tone::Info, format!("Started from preset {chosen}.")));
        return Ok(page(&viewer(&user), "configure", &w, &ctx, &[], None).into_response());
    }
    let index = STEPS.iter().position(|(k, _)| *k == step).unwrap_or(0);
    let v = viewer(&user);
    if go == "back" {
        let target = STEPS[index.saturating_sub(1)].0;
        let ctx = context(&state, &user, &w).await?;
        return Ok(page(&v, target, &w, &ctx, &[], None).into_response());
    }
    let mut ctx = context(&state, &user, &w).await?;
    let (mut request, mut errors) = request_for(&w, &ctx);
    request.password = password;
    // A hostname pattern (`web-{n}`) is planned as its first container.
    let pattern = request.hostname.clone();
    request.hostname = batch::hostname_for(&pattern, 1);
    let count = match w.get("count").trim() {
        "" => 1,
        c => match batch::check_count(c.parse().ok()) {
            Ok(n) => n,
            Err(m) => {
                errors.push(("count".to_owned(), m));
                1
            }
        },
    };
    let placement: Option<batch::Placement> = match w.get("placement") {
        "" => None,
        p => serde_json::from_value(serde_json::Value::String(p.to_owned())).ok(),
    };
    if go == "save_preset" {
        let mut saved = request.clone();
        saved.hostname = pattern.clone();
        let body = crate::presets::PresetBody {
            name: w.get("preset_name").trim().to_owned(),
            template: request.template.clone().unwrap_or_default(),
            values: preset_values(&w, &saved),
            shared: Some(w.get("preset_shared") == "1"),
        };
        let remote = remote.ip().to_string();
        let caller = crate::audit::Caller {
            username: &user.username,
            remote: &remote,
        };
        let outcome = crate::presets::create(&state, &user, caller, &body).await;
        let view = match &ctx.environment {
            Ok(env) => plan::resolve(&request, ctx.template.as_ref(), env)
                .ok()
                .map(|p| p.view()),
            Err(_) => None,
        };
        return match outcome {
            Ok(p) => {
                ctx.notice = Some((Tone::Ok, format!("Preset {} saved.", p.name)));
                Ok(page(&v, "review", &w, &ctx, &[], view.as_ref()).into_response())
            }
            Err(e @ (AppError::Invalid { .. } | AppError::Forbidden(_))) => {
                let message = match &e {
                    AppError::Invalid { fields, message } => fields
                        .first()
                        .map(|(f, m)| format!("{f}: {m}"))
                        .unwrap_or_else(|| message.clone()),
                    other => other.to_string(),
                };
                Ok((
                    StatusCode::BAD_REQUEST,
                    page(
                        &v,
                        "review",
                        &w,
                        &ctx,
                        &[("preset_name".to_owned(), message)],
                        view.as_ref(),
                    ),
                )
                    .into_response())
            }
            Err(e) => Err(e),
        };
    }
    let resolved = match &ctx.environment {
        Ok(env) => plan::resolve(&request, ctx.template.as_ref(), env)
            .map_err(|e| e.into_iter().collect::<Vec<_>>()),
        Err(e) => Err(vec![("cluster".to_owned(), e.clone())]),
    };
    if let Err(e) = &resolved {
        // The wizard's own word on the VM template (on another node, unreadable) is the one
        // shown; the plan's "does not exist on …" would only repeat it.
        let said = errors.iter().any(|(f, _)| f == "clone_from");
        errors.extend(
            e.iter()
                .filter(|(f, _)| !(said && f == "clone_from"))
                .cloned(),
        );
    }
    // Without JavaScript the VMID is checked here, on Next, as the page's script does while
    // the user types.
    if step == "configure" && go == "next" && !errors.iter().any(|(f, _)| f == "vmid") {
        let query = CheckQuery {
            vmid: Some(w.get("vmid").to_owned()).filter(|v| !v.trim().is_empty()),
            hostname: None,
            cluster: Some(w.get("cluster").to_owned()),
        };
        if let Ok(IdentityCheck {
            vmid:
                Some(FieldCheck {
                    ok: false,
                    message: Some(m),
                }),
            ..
        }) = check::check(&state, &user, &query).await
        {
            errors.push(("vmid".to_owned(), m));
        }
    }
    if go == "create" && errors.iter().any(|(f, _)| f == "count") {
        return Ok((
            StatusCode::BAD_REQUEST,
            page(&v, "review", &w, &ctx, &errors, None),
        )
            .into_response());
    }
    if go == "create" && (count > 1 || pattern.contains(batch::PLACEHOLDER)) {
        let mut many = request.clone();
        many.hostname = pattern.clone();
        // Several at once take successive free VMIDs (the suggested one is for one container).
        many.vmid = None;
        return match batch::submit_many(
            &state,
            &user,
            &many,
            count,
            placement,
            &remote.ip().to_string(),
        )
        .await
        {
            Ok(done) => {
                if let Err(e) = drafts::discard(&state, w.get(DRAFT_KEY)).await {
                    tracing::warn!(error = %e, "cannot delete the wizard's draft; it expires on its own");
                }
                Ok(Redirect::to(&format!("/jobs/{}", done.job_id)).into_response())
            }
            Err(e) => {
                let fields = match e {
                    AppError::Invalid { fields, .. } => fields,
                    other => vec![("cluster".into(), other.to_string())],
                };
                Ok((
                    StatusCode::BAD_REQUEST,
                    page(&v, "review", &w, &ctx, &fields, None),
                )
                    .into_response())
            }
        };
    }
    if go == "create" {
        return match submit::submit(&state, &user, &request, &remote.ip().to_string()).await {
            Ok(done) => {
                // The job holds what it needs (sealed with the container); the draft goes.
                if let Err(e) = drafts::discard(&state, w.get(DRAFT_KEY)).await {
                    tracing::warn!(error = %e, "cannot delete the wizard's draft; it expires on its own");
                }
                Ok(Redirect::to(&format!("/jobs/{}", done.job_id)).into_response())
            }
            // Back to the first step with a refused value, the error next to its field.
            Err(AppError::Invalid { fields, .. }) => {
                let target = fields
                    .iter()
                    .map(|(f, _)| step_of(f))
                    .min_by_key(|s| STEPS.iter().position(|(k, _)| k == s).unwrap_or(0))
                    .unwrap_or("review");
                Ok((
                    StatusCode::BAD_REQUEST,
                    page(&v, target, &w, &ctx, &fields, None),
                )
                    .into_response())
            }
            Err(e) => {
                let status = e.status();
                // A forced image that is not there is said next to the choice, on the plan.
                let (field, view) = match (&e, request.source) {
                    (AppError::Conflict(_), Some(plan::SourceKind::Image)) => {
                        ("source", resolved.as_ref().ok().map(|p| p.view()))
                    }
                    _ => ("cluster", None),
                };
                Ok((
                    status,
                    page(
                        &v,
                        "review",
                        &w,
                        &ctx,
                        &[(field.into(), e.to_string())],
                        view.as_ref(),
                    ),
                )
                    .into_response())
            }
        };
    }
    // Errors of this step (or earlier ones) keep the user here; later steps' fields are not
    // judged before the user has seen them.
    let blocking: Vec<(String, String)> = errors
        .iter()
        .filter(|(f, _)| {
            STEPS
                .iter()
                .position(|(k, _)| *k == step_of(f))
                .unwrap_or(0)
                <= index
        })
        .filter(|(f, _)| !(step == "template" && f != "template"))
        .cloned()
        .collect();
    if !blocking.is_empty() {
        return Ok((
            StatusCode::BAD_REQUEST,
            page(&v, &step, &w, &ctx, &blocking, None),
        )
            .into_response());
    }
    let next = STEPS[(index + 1).min(STEPS.len() - 1)].0;
    if next == "configure" {
        prefill(&mut w, &ctx);
    }
    let mut view = None;
    if let Ok(plan) = resolved {
        let mut shown = plan.view();
        // Review says where the container comes from, and why (or why the choice cannot be).
        if next == "review"
            && let Ok(env) = &ctx.environment
        {
            match crate::images::preview(&state, env.cluster_id, &plan, request.source).await {
                Ok(source) => shown.source = source,
                Err(AppError::Conflict(why)) => errors.push(("source".to_owned(), why)),
                Err(e) => return Err(e),
            }
        }
        view = Some(shown);
    }
    Ok(page(
        &v,
        next,
        &w,
        &ctx,
        if next == "review" { &errors } else { &[] },
        view.as_ref(),
    )
    .into_response())
}
