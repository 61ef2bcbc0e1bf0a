//! The fleet: a declared set of guests ctforge converges on (`ctforge apply fleet.toml`,
//! `POST /api/v1/fleet/plan|apply`).
//!
//! A guest is identified by its hostname (`name`, in its cluster) and declared as a preset or
//! template plus overrides: any create field, `count` (with `{n}` in the name) and
//! `placement`. [`plan`] compares each declared guest with ctforge's container of that name:
//! missing → create (`+`), different memory, cores or swap than Proxmox reports → change
//! (`~`, a config `PUT`), built from (or last re-applied with) an older version of its
//! template → change (`~`, a re-apply, `containers::reapply`: snapshot, apply, rollback on
//! failure; conflicting files keep the container's version), equal → unchanged (`=`). With
//! `prune`, containers ctforge created for the fleet (tagged [`FLEET_TAG`]) that the file no
//! longer declares are removed (`-`); nothing else is ever removed.
//!
//! [`apply`] plans again and queues ONE `fleet_apply` job ([`job::FleetApply`]) whose items are
//! the plan's `+`, `~` and `-` lines, each with its own state, result and error; the job makes
//! the config changes, re-applies and removals itself and follows the creations, which the
//! request submits through [`submit::submit`] (the single creation path: the submitter's own
//! identity, permissions, VMID reservation). A second apply with the same file finds nothing
//! to do and queues no job.

pub mod job;

use std::collections::{BTreeMap, HashSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::auth::CurrentUser;
use crate::containers::lifecycle;
use crate::error::AppError;
use crate::provisioning::batch::{self, BatchItem, PLACEHOLDER};
use crate::provisioning::plan::CreateRequest;
use crate::provisioning::submit;
use crate::state::AppState;
use crate::storage::model::{Cluster, Container, NewJob};

/// The Proxmox tag on every container the fleet creates: the only ones `prune` may remove.
pub const FLEET_TAG: &str = "ctforge-fleet";
/// The container spec's key holding the template's content hash at creation.
pub const SPEC_TEMPLATE_HASH: &str = "template_hash";
/// The [`FieldChange::field`] of a template version change.
pub const TEMPLATE_FIELD: &str = "template";
/// Most guests in one fleet.
pub const MAX_GUESTS: usize = 200;

/// The body of `POST /api/v1/fleet/plan` and `/apply`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetRequest {
    /// One object per `[[guest]]`: `name` (hostname; `web-{n}` with `count`), `preset` or
    /// `template`, optional `cluster`, `node`, `count`, `placement` and any create field.
    pub guests: Vec<Map<String, Value>>,
    /// Remove containers the fleet created that are no longer declared.
    #[serde(default)]
    pub prune: bool,
}

/// What happens to one guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// `+`: created.
    Create,
    /// `~`: changed in place.
    Update,
    /// `-`: removed (prune).
    Remove,
    /// `=`: as declared.
    Unchanged,
}

impl ChangeKind {
    /// The Terraform-style symbol.
    pub fn symbol(self) -> char {
        match self {
            Self::Create => '+',
            Self::Update => '~',
            Self::Remove => '-',
            Self::Unchanged => '=',
        }
    }
}

/// One field that differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldChange {
    /// `memory`, `cores`, `swap`, `template`, or `creation` (it failed: not converged).
    pub field: String,
    /// What it is.
    pub from: String,
    /// What the file declares.
    pub to: String,
    /// Whether apply can change it (a template version only once the container is ready).
    pub applicable: bool,
}

/// One guest in the plan.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct GuestChange {
    /// Hostname.
    pub name: String,
    /// Cluster name.
    pub cluster: String,
    /// What happens.
    pub action: ChangeKind,
    /// ctforge container id (existing guests).
    pub id: Option<i64>,
    /// VMID (existing guests).
    pub vmid: Option<u32>,
    /// Node (existing guests, or the declared one).
    pub node: Option<String>,
    /// Differences (`~`).
    #[serde(default)]
    pub changes: Vec<FieldChange>,
}

/// Counts by action.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// `+`.
    pub create: usize,
    /// `~` with something apply can change.
    pub update: usize,
    /// `-`.
    pub remove: usize,
    /// `=`.
    pub unchanged: usize,
    /// `~` that apply cannot change yet (template versions of containers not ready).
    pub pending: usize,
}

/// `POST /api/v1/fleet/plan`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct FleetPlan {
    /// Every declared guest, then the removals.
    pub guests: Vec<GuestChange>,
    /// Counts.
    pub summary: Summary,
}

impl FleetPlan {
    /// Whether applying would change anything.
    pub fn has_changes(&self) -> bool {
        self.summary.create + self.summary.update + self.summary.remove > 0
    }
}

/// `202` of `POST /api/v1/fleet/apply`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct FleetApplied {
    /// The plan the job executes.
    pub plan: FleetPlan,
    /// Whether a job was queued (false: nothing to change).
    pub applied: bool,
    /// The `fleet_apply` job executing the plan, one item per `+`, `~` and `-` line (none when
    /// there is nothing to change).
    pub job_id: Option<i64>,
    /// `GET` it for the per-item results (`result.items`).
    #[serde(default)]
    pub url: Option<String>,
    /// The job's page.
    #[serde(default)]
    pub page: Option<String>,
    /// The containers being created (already stored, VMIDs reserved).
    #[serde(default)]
    pub created: Vec<BatchItem>,
}

/// Reads a fleet file: `[[guest]]` tables, and an optional top-level `prune = true`.
pub fn parse_toml(text: &str) -> Result<FleetRequest, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut request = FleetRequest::default();
    for (key, value) in table {
        match (key.as_str(), value) {
            ("guest", toml::Value::Array(items)) => {
                for (i, item) in items.into_iter().enumerate() {
                    let toml::Value::Table(t) = item else {
                        return Err(format!("guest {}: must be a [[guest]] table", i + 1));
                    };
                    let json = serde_json::to_value(t).map_err(|e| e.to_string())?;
                    let Value::Object(map) = json else {
                        return Err(format!("guest {}: must be a table", i + 1));
                    };
                    request.guests.push(map);
                }
            }
            ("prune", toml::Value::Boolean(b)) => request.prune = b,
            (other, _) => {
                return Err(format!(
                    "unknown key {other:?}: a fleet file has [[guest]] tables (and prune = true|false)"
                ));
            }
        }
    }
    Ok(request)
}

/// One declared guest, resolved.
struct Desired {
    name: String,
    cluster: Cluster,
    request: CreateRequest,
    /// Where a new guest goes when no node is named.
    placement: Option<batch::Placement>,
    /// Its position among the guests of its `[[guest]]` table (round-robin).
    position: usize,
}

fn guest_error(index: usize, name: &str, message: impl std::fmt::Display) -> AppError {
    let label = if name.is_empty() {
        format!("guest {}", index + 1)
    } else {
        format!("guest {name:?}")
    };
    AppError::Invalid {
        message: format!("{label}: {message}"),
        fields: vec![(format!("guests[{index}]"), message.to_string())],
    }
}

async fn desired(
    state: &AppState,
    user: &CurrentUser,
    request: &FleetRequest,
) -> Result<Vec<Desired>, AppError> {
    let mut out: Vec<Desired> = Vec::new();
    let mut seen = HashSet::new();
    for (index, guest) in request.guests.iter().enumerate() {
        let name = guest
            .get("name")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        if name.is_empty() {
            return Err(guest_error(index, "", "needs a name (its hostname)"));
        }
        if guest.contains_key("hostname") {
            return Err(guest_error(
                index,
                &name,
                "the name is the hostname; drop hostname",
            ));
        }
        let mut body = guest.clone();
        body.remove("name");
        let count = match body.remove("count") {
            None => None,
            Some(v) => {
                Some(batch::check_count(v.as_u64()).map_err(|m| guest_error(index, &name, m))?)
            }
        };
        let names: Vec<String> = match count {
            Some(n) if name.contains(PLACEHOLDER) => {
                (1..=n).map(|i| batch::hostname_for(&name, i)).collect()
            }
            Some(n) if n > 1 => {
                return Err(guest_error(
                    index,
                    &name,
                    format!("with count {n} the name needs {PLACEHOLDER}, e.g. web-{PLACEHOLDER}"),
                ));
            }
            _ => vec![name.clone()],
        };
        let tags: Vec<Value> = match body.remove("tags") {
            Some(Value::Array(t)) => t,
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(guest_error(index, &name, "tags must be a list")),
        };
        for (position, one) in names.into_iter().enumerate() {
            let mut body = body.clone();
            body.insert("hostname".into(), Value::String(one.clone()));
            let expanded = crate::presets::expand(state, user, &Value::Object(body))
                .await
                .map_err(|e| guest_error(index, &one, e))?;
            let mut req = expanded.request;
            // Preset tags and the file's, and the fleet's own tag.
            let mut all: Vec<String> = req.tags.take().unwrap_or_default();
            all.extend(tags.iter().filter_map(|t| t.as_str().map(str::to_owned)));
            all.push(FLEET_TAG.to_owned());
            all.dedup();
            req.tags = Some(all);
            let cluster = crate::auth::login::pick_cluster(state, req.cluster.as_deref()).await?;
            if !seen.insert((cluster.id, one.clone())) {
                return Err(guest_error(index, &one, "is declared twice"));
            }
            out.push(Desired {
                name: one,
                cluster,
                request: req,
                placement: expanded.placement,
                position,
            });
        }
        if out.len() > MAX_GUESTS {
            return Err(AppError::invalid(format!(
                "a fleet has at most {MAX_GUESTS} guests"
            )));
        }
    }
    Ok(out)
}

fn spec_param(container: &Container, key: &str) -> Option<String> {
    let spec: Value = serde_json::from_str(&container.spec_json).ok()?;
    spec.get("create_params")?
        .as_array()?
        .iter()
        .find_map(|pair| {
            let pair = pair.as_array()?;
            (pair.first()?.as_str()? == key).then(|| pair.get(1)?.as_str().map(str::to_owned))?
        })
}

fn spec_template_hash(container: &Container) -> Option<String> {
    let spec: Value = serde_json::from_str(&container.spec_json).ok()?;
    spec.get(SPEC_TEMPLATE_HASH)?.as_str().map(str::to_owned)
}

/// The template version a container has now: the last re-apply's, else its creation's.
async fn applied_template_hash(
    state: &AppState,
    container: &Container,
) -> Result<Option<String>, AppError> {
    Ok(
        match state.store.get_applied_template(container.id).await? {
            Some(applied) => Some(applied.template_hash),
            None => spec_template_hash(container),
        },
    )
}

/// Whether a container never re-applied was created with its template as it is today: a
/// creation retried after the template was fixed re-derives its plan from the template of the
/// retry (its job's payload), while the spec keeps the hash of the first submission.
async fn created_with_today(state: &AppState, container: &Container) -> bool {
    let store = state.store.as_ref();
    let Ok(applied) = crate::containers::drift::applied_of(store, container).await else {
        return false;
    };
    if applied.applied_at.is_some() {
        return false;
    }
    match crate::containers::drift::current_template(store, &applied.template.name).await {
        Ok(Some((today, _))) => {
            serde_json::to_value(&today).ok() == serde_json::to_value(&applied.template).ok()
        }
        _ => false,
    }
}

fn short(hash: &str) -> &str {
    hash.get(..8).unwrap_or(hash)
}

/// The live memory, cores and swap of `container`: Proxmox's config, or, while it is still
/// being created, what ctforge asked for.
async fn actual_resources(
    state: &AppState,
    user: &CurrentUser,
    cluster: &Cluster,
    container: &Container,
) -> Result<BTreeMap<&'static str, Option<u64>>, AppError> {
    let client = crate::containers::client_for(state, user, cluster)?;
    let vmid = u32::try_from(container.vmid).unwrap_or_default();
    match client.lxc_config_get(&container.node, vmid, false).await {
        Ok(config) => Ok(BTreeMap::from([
            ("memory", config.memory),
            ("cores", config.cores),
            ("swap", config.swap),
        ])),
        Err(_) if container.status == crate::status::RecordStatus::Creating => {
            let get = |k| spec_param(container, k).and_then(|v| v.parse().ok());
            Ok(BTreeMap::from([
                ("memory", get("memory")),
                ("cores", get("cores")),
                ("swap", get("swap")),
            ]))
        }
        Err(e) => Err(AppError::Unavailable(format!(
            "cannot read the config of {} (VMID {}): {e}",
            container.hostname, container.vmid
        ))),
    }
}

async fn compare(
    state: &AppState,
    user: &CurrentUser,
    desired: &Desired,
    container: &Container,
) -> Result<Vec<FieldChange>, AppError> {
    let mut request = desired.request.clone();
    // Planned where it lives, so node-specific defaults match.
    request.node = Some(container.node.clone());
    request.vmid = None;
    let prepared = submit::prepare(state, user, &request).await?;
    let want = BTreeMap::from([
        ("memory", prepared.plan.params.memory),
        ("cores", prepared.plan.params.cores.map(u64::from)),
        ("swap", prepared.plan.params.swap),
    ]);
    let have = actual_resources(state, user, &desired.cluster, container).await?;
    let mut changes = Vec::new();
    for (field, to) in want {
        let Some(to) = to else { continue };
        let from = have.get(field).copied().flatten();
        if from != Some(to) {
            changes.push(FieldChange {
                field: field.to_owned(),
                from: from.map_or_else(|| "unset".to_owned(), |v| v.to_string()),
                to: to.to_string(),
                applicable: true,
            });
        }
    }
    if let (Some(was), Some(now)) = (
        applied_template_hash(state, container).await?,
        &prepared.template_hash,
    ) && &was != now
        && !created_with_today(state, container).await
    {
        // Only a ready container can be re-applied (one still being created gets the
        // template it was submitted with; a failed one needs its creation retried).
        let ready = container.status == crate::status::RecordStatus::Ready;
        changes.push(FieldChange {
            field: TEMPLATE_FIELD.to_owned(),
            from: format!(
                "{} version {}",
                prepared.plan.template.clone().unwrap_or_default(),
                short(&was)
            ),
            to: if ready {
                format!("{} (re-apply)", short(now))
            } else {
                format!("{} (re-apply once the container is ready)", short(now))
            },
            applicable: ready,
        });
    }
    Ok(changes)
}

fn has_fleet_tag(container: &Container) -> bool {
    spec_param(container, "tags")
        .is_some_and(|tags| tags.split([';', ',', ' ']).any(|t| t == FLEET_TAG))
}

/// Plans the fleet: what apply would do, nothing changed.
pub async fn plan(
    state: &AppState,
    user: &CurrentUser,
    request: &FleetRequest,
) -> Result<FleetPlan, AppError> {
    Ok(plan_with(state, user, request).await?.0)
}

async fn plan_with(
    state: &AppState,
    user: &CurrentUser,
    request: &FleetRequest,
) -> Result<(FleetPlan, Vec<Desired>), AppError> {
    let desired = desired(state, user, request).await?;
    let records = state.store.list_containers().await?;
    let mut guests = Vec::new();
    let mut summary = Summary::default();
    for d in &desired {
        let existing = records
            .iter()
            .find(|c| c.cluster_id == d.cluster.id && c.hostname == d.name);
        let change = match existing {
            None => {
                summary.create += 1;
                GuestChange {
                    name: d.name.clone(),
                    cluster: d.cluster.name.clone(),
                    action: ChangeKind::Create,
                    id: None,
                    vmid: None,
                    node: d.request.node.clone(),
                    changes: Vec::new(),
                }
            }
            Some(c) => {
                crate::authz::read(state, user, &d.cluster, u32::try_from(c.vmid).unwrap_or(0))
                    .await?;
                let mut changes = compare(state, user, d, c).await?;
                if c.status == crate::status::RecordStatus::Error {
                    // Not converged: the container was declared, but its creation failed.
                    changes.push(FieldChange {
                        field: "creation".to_owned(),
                        from: "failed".to_owned(),
                        to: format!(
                            "retry its creation job (`ctforge jobs retry`, the container's Events), or delete container {} and apply again",
                            c.id
                        ),
                        applicable: false,
                    });
                }
                let action = if changes.is_empty() {
                    summary.unchanged += 1;
                    ChangeKind::Unchanged
                } else if changes.iter().any(|f| f.applicable) {
                    summary.update += 1;
                    ChangeKind::Update
                } else {
                    summary.pending += 1;
                    ChangeKind::Update
                };
                GuestChange {
                    name: d.name.clone(),
                    cluster: d.cluster.name.clone(),
                    action,
                    id: Some(c.id),
                    vmid: u32::try_from(c.vmid).ok(),
                    node: Some(c.node.clone()),
                    changes,
                }
            }
        };
        guests.push(change);
    }
    if request.prune {
        let declared: HashSet<(i64, &str)> = desired
            .iter()
            .map(|d| (d.cluster.id, d.name.as_str()))
            .collect();
        let clusters: HashSet<i64> = desired.iter().map(|d| d.cluster.id).collect();
        let default = crate::auth::login::pick_cluster(state, None).await?;
        for c in &records {
            let in_scope = clusters.contains(&c.cluster_id) || c.cluster_id == default.id;
            if in_scope
                && has_fleet_tag(c)
                && !declared.contains(&(c.cluster_id, c.hostname.as_str()))
            {
                let cluster = state.store.get_cluster(c.cluster_id).await?;
                summary.remove += 1;
                guests.push(GuestChange {
                    name: c.hostname.clone(),
                    cluster: cluster.name,
                    action: ChangeKind::Remove,
                    id: Some(c.id),
                    vmid: u32::try_from(c.vmid).ok(),
                    node: Some(c.node.clone()),
                    changes: Vec::new(),
                });
            }
        }
    }
    Ok((FleetPlan { guests, summary }, desired))
}

/// Who changes a config, for the container event and the audit entry.
#[derive(Clone, Copy, Debug)]
pub struct ConfigActor<'a> {
    /// The submitter.
    pub username: &'a str,
    /// Their address.
    pub remote: &'a str,
    /// The fleet job.
    pub job: i64,
}

/// Changes a container's memory, cores or swap in Proxmox with `client` (the cluster's
/// token), after Proxmox confirmed through `rights` the submitter's privilege on the guest
/// (`VM.Config.Memory`, `VM.Config.CPU`); a container event and the audit entry `ct.config`.
/// The caller holds the container's lock.
pub async fn apply_config(
    store: &dyn crate::storage::Store,
    client: &dyn ctforge_pve::PveApi,
    rights: &crate::authz::Rights<'_>,
    actor: ConfigActor<'_>,
    target: &crate::containers::Target,
    changes: &[FieldChange],
) -> Result<(), AppError> {
    let vmid = target.vmid;
    let mut update = ctforge_pve::types::LxcConfigUpdate::new();
    let mut detail = Map::new();
    for change in changes
        .iter()
        .filter(|c| c.applicable && c.field != TEMPLATE_FIELD)
    {
        let value: u64 = change.to.parse().map_err(|_| {
            AppError::invalid(format!("{} {:?} is not a number", change.field, change.to))
        })?;
        let privilege = match change.field.as_str() {
            "memory" | "swap" => "VM.Config.Memory",
            "cores" => "VM.Config.CPU",
            other => return Err(AppError::invalid(format!("cannot change {other}"))),
        };
        rights
            .require(&crate::authz::vm_path(vmid), &[privilege])
            .await?;
        update = update.set(change.field.clone(), value.to_string());
        detail.insert(
            change.field.clone(),
            json!({ "from": change.from, "to": value }),
        );
    }
    // Where it lives now (it may have been migrated since the plan).
    let (node, _) = lifecycle::locate(client, target)
        .await
        .map_err(|e| AppError::Unavailable(format!("CT {vmid}: {e}")))?;
    client
        .lxc_config_put(&node, vmid, &update)
        .await
        .map_err(|e| AppError::Unavailable(format!("{}: {e}", target.display_name())))?;
    detail.insert("job".into(), json!(actor.job));
    if let Some(record) = &target.record {
        let _ = store
            .add_container_event(
                record.id,
                "config_changed",
                &format!(
                    "config changed: {}",
                    changes
                        .iter()
                        .filter(|c| c.applicable && c.field != TEMPLATE_FIELD)
                        .map(|c| format!("{} {}→{}", c.field, c.from, c.to))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                actor.username,
                &Value::Object(detail.clone()).to_string(),
            )
            .await;
    }
    crate::audit::record(
        store,
        crate::audit::Entry::new(
            actor.username,
            "ct.config",
            target.audit_target(),
            actor.remote,
        )
        .detail(Value::Object(detail)),
    )
    .await?;
    Ok(())
}

/// Places and submits the creation of one declared guest (through [`submit::submit`]).
async fn submit_creation(
    state: &AppState,
    user: &CurrentUser,
    remote: &str,
    d: &Desired,
    free: &mut std::collections::HashMap<i64, Vec<(String, u64)>>,
) -> Result<BatchItem, AppError> {
    let mut request = d.request.clone();
    if request.node.is_none()
        && let Some(rule @ (batch::Placement::RoundRobin | batch::Placement::LeastLoaded)) =
            d.placement
    {
        // Free memory per cluster's online nodes, as the least-loaded rule spends it.
        let nodes = match free.entry(d.cluster.id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let client = crate::containers::client_for(state, user, &d.cluster)?;
                e.insert(batch::online_nodes(client.as_ref()).await?)
            }
        };
        let memory = request.memory.unwrap_or(512).saturating_mul(1024 * 1024);
        request.node = match rule {
            batch::Placement::RoundRobin => nodes
                .get(d.position % nodes.len().max(1))
                .map(|(n, _)| n.clone()),
            _ => {
                let picked = batch::place(rule, None, nodes, 1, memory)
                    .into_iter()
                    .next()
                    .flatten();
                if let Some(n) = nodes.iter_mut().find(|(n, _)| Some(n) == picked.as_ref()) {
                    n.1 = n.1.saturating_sub(memory);
                }
                picked
            }
        };
    }
    let s = submit::submit(state, user, &request, remote).await?;
    let node = state
        .store
        .get_container(s.id)
        .await
        .map(|c| c.node)
        .unwrap_or_default();
    Ok(BatchItem {
        id: s.id,
        vmid: s.vmid,
        hostname: d.name.clone(),
        node,
        job_id: s.job_id,
    })
}

/// Plans and queues the fleet's one `fleet_apply` job (see the module documentation); with
/// nothing to change, no job.
pub async fn apply(
    state: &AppState,
    user: &CurrentUser,
    remote: &str,
    request: &FleetRequest,
) -> Result<FleetApplied, AppError> {
    let (plan, desired) = plan_with(state, user, request).await?;
    let mut created = Vec::new();
    let mut items = Vec::new();
    let mut free = std::collections::HashMap::new();
    // The plan lists the declared guests in order, then the removals.
    for (index, change) in plan.guests.iter().enumerate() {
        let mut item = job::FleetItem {
            action: change.action,
            name: change.name.clone(),
            cluster: change.cluster.clone(),
            container_id: change.id,
            vmid: change.vmid,
            node: change.node.clone(),
            changes: change
                .changes
                .iter()
                .filter(|c| c.applicable)
                .cloned()
                .collect(),
            creation_job: None,
            not_queued: None,
        };
        match change.action {
            ChangeKind::Create => {
                let Some(d) = desired.get(index) else {
                    continue;
                };
                match submit_creation(state, user, remote, d, &mut free).await {
                    Ok(one) => {
                        item.container_id = Some(one.id);
                        item.vmid = Some(one.vmid);
                        item.node = Some(one.node.clone());
                        item.creation_job = Some(one.job_id);
                        created.push(one);
                    }
                    // Nothing queued yet: the caller gets the error itself.
                    Err(e) if created.is_empty() => return Err(e),
                    // Some creations are queued: the job must follow them; this one is
                    // reported as a failed item.
                    Err(e) => item.not_queued = Some(e.to_string()),
                }
                items.push(item);
            }
            ChangeKind::Update if !item.changes.is_empty() => items.push(item),
            ChangeKind::Remove => items.push(item),
            _ => {}
        }
    }
    let job_id = if items.is_empty() {
        None
    } else {
        let payload = job::FleetPayload {
            items,
            remote: remote.to_owned(),
            cluster_id: user.roles.cluster_id,
            by_session: user.ticket.is_some(),
        };
        Some(
            state
                .jobs
                .enqueue(&NewJob {
                    kind: job::JOB_KIND.into(),
                    container_id: None,
                    node: None,
                    payload_json: serde_json::to_string(&payload)
                        .map_err(|e| AppError::Internal(e.into()))?,
                    created_by: user.username.clone(),
                })
                .await?,
        )
    };
    crate::audit::record(
        state.store.as_ref(),
        crate::audit::Entry::new(&user.username, "fleet.apply", "fleet", remote).detail(json!({
            "summary": plan.summary,
            "job": job_id,
            "prune": request.prune,
        })),
    )
    .await?;
    Ok(FleetApplied {
        applied: job_id.is_some(),
        url: job_id.map(|id| format!("/api/v1/jobs/{id}")),
        page: job_id.map(|id| format!("/jobs/{id}")),
        plan,
        job_id,
        created,
    })
}

/// The plan as Terraform users read it: one line per guest (`+`, `~`, `-`; `=` only when
/// `all`), indented field changes, and the summary line.
pub fn render(plan: &FleetPlan, all: bool) -> String {
    let mut out = String::new();
    for g in &plan.guests {
        if g.action == ChangeKind::Unchanged && !all {
            continue;
        }
        let place = match (&g.node, g.vmid) {
            (Some(node), Some(vmid)) => format!(" ({node}, VMID {vmid})"),
            (Some(node), None) => format!(" (on {node})"),
            _ => String::new(),
        };
        out.push_str(&format!("  {} {}{place}\n", g.action.symbol(), g.name));
        for c in &g.changes {
            out.push_str(&format!("      {}: {} → {}\n", c.field, c.from, c.to));
        }
    }
    let s = &plan.summary;
    if !plan.has_changes() && s.pending > 0 {
        out.push_str("No changes can be applied now.\n");
    } else if !plan.has_changes() {
        out.push_str("No changes. The containers match the fleet file.\n");
    } else {
        out.push_str(&format!(
            "Plan: {} to create, {} to change, {} to remove ({} unchanged).\n",
            s.create, s.update, s.remove, s.unchanged
        ));
    }
    if s.pending > 0 {
        out.push_str(&format!(
            "{} container(s) cannot be changed now (not ready, or their creation failed): see their lines above.\n",
            s.pending
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_guest_tables() {
        let r = parse_toml(
            "prune = true\n[[guest]]\nname = \"api-1\"\npreset = \"web-small\"\n[[guest]]\nname = \"api-2\"\npreset = \"web-small\"\nmemory = 768\ntags = [\"web\"]\n",
        )
        .unwrap();
        assert!(r.prune);
        assert_eq!(r.guests.len(), 2);
        assert_eq!(r.guests[1]["memory"], json!(768));
        assert_eq!(r.guests[1]["tags"], json!(["web"]));
    }

    #[test]
    fn refuses_unknown_top_level_keys() {
        assert!(parse_toml("[[guests]]\nname = \"a\"\n").is_err());
        assert!(parse_toml("guest = 1\n").is_err());
    }

    #[test]
    fn renders_like_terraform() {
        let plan = FleetPlan {
            guests: vec![
                GuestChange {
                    name: "a".into(),
                    cluster: "lab".into(),
                    action: ChangeKind::Create,
                    id: None,
                    vmid: None,
                    node: None,
                    changes: vec![],
                },
                GuestChange {
                    name: "b".into(),
                    cluster: "lab".into(),
                    action: ChangeKind::Update,
                    id: Some(1),
                    vmid: Some(100),
                    node: Some("pve1".into()),
                    changes: vec![FieldChange {
                        field: "memory".into(),
                        from: "512".into(),
                        to: "1024".into(),
                        applicable: true,
                    }],
                },
            ],
            summary: Summary {
                create: 1,
                update: 1,
                ..Summary::default()
            },
        };
        let text = render(&plan, false);
        assert!(text.contains("  + a\n"), "{text}");
        assert!(
            text.contains("  ~ b (pve1, VMID 100)\n      memory: 512 → 1024\n"),
            "{text}"
        );
        assert!(
            text.contains("Plan: 1 to create, 1 to change, 0 to remove"),
            "{text}"
        );
        let none = FleetPlan {
            guests: vec![],
            summary: Summary::default(),
        };
        assert!(render(&none, false).contains("No changes."));
        // A declared guest whose creation failed is not converged, and the plan says so.
        let failed = FleetPlan {
            guests: vec![GuestChange {
                name: "c".into(),
                cluster: "lab".into(),
                action: ChangeKind::Update,
                id: Some(3),
                vmid: Some(103),
                node: Some("pve1".into()),
                changes: vec![FieldChange {
                    field: "creation".into(),
                    from: "failed".into(),
                    to: "retry its creation job".into(),
                    applicable: false,
                }],
            }],
            summary: Summary {
                pending: 1,
                ..Summary::default()
            },
        };
        let text = render(&failed, false);
        assert!(
            text.contains(
                "  ~ c (pve1, VMID 103)\n      creation: failed → retry its creation job\n"
            ),
            "{text}"
        );
        assert!(text.contains("No changes can be applied now."), "{text}");
        assert!(!text.contains("match the fleet file"), "{text}");
    }
}
