//! The dashboard listing: one `/cluster/resources` call per cluster and refresh, merged with
//! ctforge's container records through a `HashMap` keyed by (cluster, VMID), filtered and paged.
//! Guests of both kinds are listed (`type` `lxc` or `qemu`, from `/cluster/resources`);
//! `/api/v1/containers` narrows to `lxc` with [`Filter::only`].
//!
//! Containers without a record are unmanaged; records without a live container still show,
//! with the record's status (`creating`, `error`) or `missing`/`unknown`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ctforge_pve::types::{ClusterResource, ResourceKind};
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};

use super::shared_read::{Identity, ReadFailure, Snapshot};
use super::{Target, client_for, is_unreachable, url_id};
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;
use crate::status::{ContainerStatus, GuestKind};
use crate::storage::model::{Cluster, Container};

/// Containers per page.
pub const PER_PAGE: usize = 50;

/// Filters and paging from the URL (`?type=&status=&node=&tag=&template=&q=&page=&view=`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Filter {
    /// Guest kind (`lxc` or `qemu`); both when absent.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Status (`running`, `stopped`, `creating`, `error` (includes `missing`), `missing`,
    /// `unknown`).
    pub status: Option<String>,
    /// Node name.
    pub node: Option<String>,
    /// One tag.
    pub tag: Option<String>,
    /// Template name.
    pub template: Option<String>,
    /// Text matched against hostname, VMID, IP, tags, node and template.
    pub q: Option<String>,
    /// Page number from 1 (text so a bad value falls back to 1 instead of failing).
    pub page: Option<String>,
    /// `table` for the table view; anything else is the grid.
    pub view: Option<String>,
    /// Sort column ([`SORT_KEYS`]); cluster then VMID when absent or unknown.
    pub sort: Option<String>,
    /// `desc` for descending; ascending otherwise.
    pub dir: Option<String>,
}

/// The columns the listing sorts by (`?sort=`).
pub const SORT_KEYS: [&str; 11] = [
    "hostname", "vmid", "type", "node", "status", "ip", "template", "tags", "cpu", "memory",
    "uptime",
];

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Filter {
    /// The guest-kind filter, if set (`?type=`; an unknown value matches nothing).
    pub fn kind(&self) -> Option<&str> {
        set(&self.kind)
    }
    /// These filters narrowed to one kind of guest (what `/api/v1/containers` lists).
    pub fn only(mut self, kind: GuestKind) -> Self {
        self.kind = Some(kind.as_str().to_owned());
        self
    }
    /// Status filter, if set.
    pub fn status(&self) -> Option<&str> {
        set(&self.status)
    }
    /// Node filter, if set.
    pub fn node(&self) -> Option<&str> {
        set(&self.node)
    }
    /// Tag filter, if set.
    pub fn tag(&self) -> Option<&str> {
        set(&self.tag)
    }
    /// Template filter, if set.
    pub fn template(&self) -> Option<&str> {
        set(&self.template)
    }
    /// Text filter, if set.
    pub fn q(&self) -> Option<&str> {
        set(&self.q)
    }
    /// Page number (1 when absent or invalid).
    pub fn page(&self) -> usize {
        set(&self.page)
            .and_then(|p| p.parse::<usize>().ok())
            .filter(|p| *p > 0)
            .unwrap_or(1)
    }
    /// The sort column (one of [`SORT_KEYS`]), if one is chosen.
    pub fn sort(&self) -> Option<&'static str> {
        let wanted = set(&self.sort)?;
        SORT_KEYS.iter().find(|k| **k == wanted).copied()
    }
    /// Whether the sort is descending.
    pub fn descending(&self) -> bool {
        set(&self.dir) == Some("desc")
    }

    fn order(&self, a: &Row, b: &Row) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let Some(key) = self.sort() else {
            return Ordering::Equal;
        };
        let by = match key {
            "vmid" => a.vmid.cmp(&b.vmid),
            "type" => a.kind.as_str().cmp(b.kind.as_str()),
            "node" => a.node.cmp(&b.node),
            "status" => a.status.as_str().cmp(b.status.as_str()),
            "ip" => a.ip.cmp(&b.ip),
            "template" => a.template.cmp(&b.template),
            "tags" => a.tags.cmp(&b.tags),
            "cpu" => a.cpu.partial_cmp(&b.cpu).unwrap_or(Ordering::Equal),
            "memory" => a.mem.cmp(&b.mem),
            "uptime" => a.uptime.cmp(&b.uptime),
            _ => Ordering::Equal,
        }
        .then_with(|| a.hostname.to_lowercase().cmp(&b.hostname.to_lowercase()))
        .then_with(|| a.vmid.cmp(&b.vmid));
        if self.descending() { by.reverse() } else { by }
    }

    /// Whether the table view is selected.
    pub fn table(&self) -> bool {
        set(&self.view) == Some("table")
    }

    /// The query string of these filters with some keys replaced (`None` removes a key);
    /// `page` is dropped unless given.
    pub fn query_with(&self, changes: &[(&str, Option<&str>)]) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        let current = [
            ("type", self.kind()),
            ("status", self.status()),
            ("node", self.node()),
            ("tag", self.tag()),
            ("template", self.template()),
            ("q", self.q()),
            ("view", set(&self.view)),
            ("sort", set(&self.sort)),
            ("dir", set(&self.dir)),
        ];
        for (key, value) in current {
            if changes.iter().any(|(k, _)| *k == key) {
                continue;
            }
            if let Some(v) = value {
                pairs.push((key, v.to_owned()));
            }
        }
        for (key, value) in changes {
            if let Some(v) = value {
                pairs.push((key, (*v).to_owned()));
            }
        }
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    }

    fn matches(&self, row: &Row, with_status: bool) -> bool {
        if let Some(k) = self.kind()
            && !row.kind.as_str().eq_ignore_ascii_case(k)
        {
            return false;
        }
        if with_status
            && let Some(s) = self.status()
            && !row.status.as_str().eq_ignore_ascii_case(s)
            && !(s.eq_ignore_ascii_case("error") && row.status == ContainerStatus::Missing)
        {
            return false;
        }
        if let Some(n) = self.node()
            && row.node != n
        {
            return false;
        }
        if let Some(t) = self.tag()
            && !row.tags.iter().any(|x| x.eq_ignore_ascii_case(t))
        {
            return false;
        }
        if let Some(t) = self.template()
            && row.template.as_deref() != Some(t)
        {
            return false;
        }
        if let Some(q) = self.q() {
            let q = q.to_lowercase();
            let hit = row.hostname.to_lowercase().contains(&q)
                || row.vmid.to_string().contains(&q)
                || row.node.to_lowercase().contains(&q)
                || row.ip.as_deref().is_some_and(|ip| ip.contains(&q))
                || row.tags.iter().any(|t| t.to_lowercase().contains(&q))
                || row
                    .template
                    .as_deref()
                    .is_some_and(|t| t.to_lowercase().contains(&q));
            if !hit {
                return false;
            }
        }
        true
    }
}

/// One container as the dashboard shows it.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Row {
    /// Canonical URL id (record id or `<cluster>:<vmid>`).
    pub key: String,
    /// ctforge record id (managed containers).
    pub id: Option<i64>,
    /// Cluster name.
    pub cluster: String,
    /// Proxmox VMID.
    pub vmid: u32,
    /// `lxc` (container) or `qemu` (virtual machine).
    #[serde(rename = "type", default)]
    pub kind: GuestKind,
    /// Node.
    pub node: String,
    /// Hostname (Proxmox name, else the record's).
    pub hostname: String,
    /// `running`, `stopped`, `creating`, `error`, `deleting`, `missing` or `unknown`.
    pub status: ContainerStatus,
    /// Whether live Proxmox data is behind this row.
    pub live: bool,
    /// Whether ctforge created (or adopted) it.
    pub managed: bool,
    /// Known IPv4 address (from the record).
    pub ip: Option<String>,
    /// Template name (managed containers).
    pub template: Option<String>,
    /// Proxmox tags.
    pub tags: Vec<String>,
    /// Uptime in seconds (running containers).
    pub uptime: Option<u64>,
    /// CPU usage 0..1 of `maxcpu`.
    pub cpu: Option<f64>,
    /// CPUs.
    pub maxcpu: Option<f64>,
    /// Memory used, bytes.
    pub mem: Option<u64>,
    /// Memory limit, bytes.
    pub maxmem: Option<u64>,
    /// Proxmox config lock (`backup`, `create`, …).
    pub lock: Option<String>,
    /// Why actions are impossible right now (Proxmox unreachable), if so.
    pub unavailable: Option<String>,
    /// Managed files monitoring last found changed in the container since ctforge applied
    /// them (the dashboard's drift badge; details on the container's Template tab).
    #[serde(default)]
    pub drifted: usize,
}

/// Summary counts.
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Counts {
    /// All containers (matching the non-status filters).
    pub total: usize,
    /// Running.
    pub running: usize,
    /// Stopped.
    pub stopped: usize,
    /// Being created.
    pub creating: usize,
    /// Failed creation or missing in Proxmox.
    pub error: usize,
}

/// A cluster whose live state could not be read.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Unreachable {
    /// Cluster name.
    pub cluster: String,
    /// What failed.
    pub reason: String,
    /// Since when (Unix ms; first failure seen by this process).
    pub since: i64,
    /// True when Proxmox could not be reached at all (connection, TLS, timeout); false when it
    /// answered with an error (permissions, a failing node), which is not "unreachable".
    #[serde(default)]
    pub transport: bool,
}

/// A page of the dashboard.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Listing {
    /// Counts over the containers matching the non-status filters.
    pub counts: Counts,
    /// The containers of this page.
    pub items: Vec<Row>,
    /// How many containers match all filters.
    pub matching: usize,
    /// Current page from 1.
    pub page: usize,
    /// Number of pages.
    pub pages: usize,
    /// Page size.
    pub per_page: usize,
    /// Clusters whose live state is missing.
    pub unreachable: Vec<Unreachable>,
    /// Clusters the session is not signed in to (nothing of them is shown; signing in there,
    /// `/login?cluster=NAME`, shows them).
    #[serde(default)]
    pub sign_in: Vec<String>,
    /// Node names seen (for the filter).
    pub nodes: Vec<String>,
    /// Tags seen (for the filter).
    pub tags: Vec<String>,
    /// Template names seen (for the filter).
    pub templates: Vec<String>,
    /// Whether any container exists at all (before filters).
    pub any: bool,
    /// When the oldest of the Proxmox reads shown was made (Unix ms; reads are shared for
    /// `[dashboard] fresh_ms`); `None` when no cluster answered.
    #[serde(default)]
    pub as_of: Option<i64>,
}

/// What one cluster contributed to a listing.
enum Fetched {
    /// The guests Proxmox shows the identity, and its rights there (for records without a
    /// live guest): a shared read ([`super::shared_read`]), successful.
    Live(Arc<Snapshot>),
    /// The session belongs to another cluster: nothing of this one is shown (and it is not
    /// "down").
    NotSignedIn,
    /// Proxmox did not answer; `transport` when it could not be reached at all (only that marks
    /// the cluster down for everyone).
    Failed { reason: String, transport: bool },
}

async fn fetch(state: &AppState, user: &CurrentUser, cluster: &Cluster) -> Fetched {
    // Who may read this cluster at all is decided per request, never shared.
    match crate::authz::Rights::of(state, user, cluster) {
        Ok(_) => {}
        Err(AppError::Forbidden(_)) => return Fetched::NotSignedIn,
        Err(e) => {
            return Fetched::Failed {
                reason: e.to_string(),
                transport: false,
            };
        }
    }
    if let Err(e) = client_for(state, user, cluster) {
        return Fetched::Failed {
            reason: e.to_string(),
            transport: false,
        };
    }
    let identity = Identity {
        cluster_id: cluster.id,
        username: user.username.clone(),
        via_token: user.ticket.is_none(),
    };
    let fresh_ms = i64::try_from(state.config.dashboard.fresh_ms).unwrap_or(i64::MAX);
    let snapshot = state
        .reads
        .get(identity, state.clock.now_ms(), fresh_ms, || {
            let (state, user, cluster) = (state.clone(), user.clone(), cluster.clone());
            async move { read(&state, &user, &cluster).await }.boxed()
        })
        .await;
    match &snapshot.result {
        Ok(_) => Fetched::Live(snapshot),
        Err(failure) => Fetched::Failed {
            reason: failure.reason.clone(),
            transport: failure.transport,
        },
    }
}

/// The guests `user` sees on `cluster` and its rights there, from the dashboard's shared read
/// (one `/cluster/resources` per identity and freshness window); why not, as text.
pub async fn seen(
    state: &AppState,
    user: &CurrentUser,
    cluster: &Cluster,
) -> Result<Arc<Snapshot>, String> {
    match fetch(state, user, cluster).await {
        Fetched::Live(snapshot) => Ok(snapshot),
        Fetched::NotSignedIn => Err(crate::authz::other_cluster(cluster).to_string()),
        Fetched::Failed { reason, .. } => Err(reason),
    }
}

/// One read of `cluster` for `user`: its guests as Proxmox shows them to it and its rights.
async fn read(state: &AppState, user: &CurrentUser, cluster: &Cluster) -> Snapshot {
    let failed = |reason: String, transport: bool| Snapshot {
        result: Err(ReadFailure { reason, transport }),
        as_of: state.clock.now_ms(),
    };
    let rights = match crate::authz::Rights::of(state, user, cluster) {
        Ok(r) => r,
        Err(e) => return failed(e.to_string(), false),
    };
    let client = match client_for(state, user, cluster) {
        Ok(c) => c,
        Err(e) => return failed(e.to_string(), false),
    };
    let (items, effective) = tokio::join!(
        client.cluster_resources(Some(ResourceKind::Vm)),
        rights.effective()
    );
    match items {
        Ok(mut items) => {
            let token = user.ticket.is_none();
            let effective = effective.ok();
            if token {
                // The service token sees every guest: keep what the owner may see.
                items.retain(|r| {
                    r.vmid
                        .is_some_and(|v| effective.as_ref().is_some_and(|e| e.vm_audit(v)))
                });
            }
            Snapshot {
                result: Ok((items, effective)),
                as_of: state.clock.now_ms(),
            }
        }
        Err(e) => {
            let transport = is_unreachable(&e);
            let reason = if transport {
                format!("proxmox at {} is unreachable: {e}", cluster.url)
            } else {
                format!("proxmox at {} answered: {e}", cluster.url)
            };
            failed(reason, transport)
        }
    }
}

/// Fetches live state (one `/cluster/resources` per cluster, concurrently) and merges it with
/// the records of guests the identity may see: those Proxmox lists for it, plus records it
/// holds VM.Audit on; nothing of a cluster the session is not signed in to.
pub async fn list(
    state: &AppState,
    user: &CurrentUser,
    filter: &Filter,
) -> Result<Listing, AppError> {
    let clusters = state.store.list_clusters().await?;
    let fetches = clusters
        .iter()
        .map(|cluster| async move { (cluster, fetch(state, user, cluster).await) });
    // Proxmox answers while the database is read.
    let (live, records, templates) = tokio::join!(
        futures_util::future::join_all(fetches),
        state.store.list_containers(),
        state.store.template_names(),
    );
    let records = records?;
    let templates: HashMap<i64, String> = templates?.into_iter().collect();
    let now = state.clock.now_ms();
    let mut unreachable = Vec::new();
    let mut snapshots: Vec<(&Cluster, Arc<Snapshot>)> = Vec::new();
    let mut hidden: BTreeSet<i64> = BTreeSet::new();
    let mut as_of: Option<i64> = None;
    for (cluster, fetched) in live {
        match fetched {
            Fetched::Live(snapshot) => {
                state.down.mark_up(cluster.id);
                as_of = Some(as_of.map_or(snapshot.as_of, |a| a.min(snapshot.as_of)));
                snapshots.push((cluster, snapshot));
            }
            Fetched::NotSignedIn => {
                hidden.insert(cluster.id);
            }
            Fetched::Failed { reason, transport } => {
                let since = if transport {
                    state.down.mark_down(cluster.id, now)
                } else {
                    now
                };
                unreachable.push(Unreachable {
                    cluster: cluster.name.clone(),
                    reason,
                    since,
                    transport,
                });
            }
        }
    }
    let mut resources: Vec<(&Cluster, &[ClusterResource])> = Vec::new();
    let mut rights: HashMap<i64, Option<&crate::authz::Effective>> = HashMap::new();
    for (cluster, snapshot) in &snapshots {
        if let Ok((items, effective)) = &snapshot.result {
            rights.insert(cluster.id, effective.as_ref());
            resources.push((cluster, items.as_slice()));
        }
    }
    let listed: BTreeSet<(i64, u32)> = resources
        .iter()
        .flat_map(|(c, items)| items.iter().filter_map(|r| r.vmid.map(|v| (c.id, v))))
        .collect();
    let records: Vec<Container> = records
        .into_iter()
        .filter(|r| {
            let Ok(vmid) = u32::try_from(r.vmid) else {
                return false;
            };
            if hidden.contains(&r.cluster_id) {
                return false;
            }
            match rights.get(&r.cluster_id) {
                Some(effective) => {
                    listed.contains(&(r.cluster_id, vmid))
                        || effective.as_ref().is_some_and(|e| e.vm_audit(vmid))
                }
                // Proxmox cannot be asked: only root@pam's rights are known without it.
                None => user.username == "root@pam",
            }
        })
        .collect();
    let mut rows = merge(&clusters, &resources, &records, &templates, &unreachable);
    // Monitoring's last drift result per container (one query for all).
    let drift: HashMap<i64, usize> = state
        .store
        .list_container_drift()
        .await?
        .into_iter()
        .filter_map(|(id, json)| {
            let files: Vec<String> = serde_json::from_str(&json).ok()?;
            (!files.is_empty()).then_some((id, files.len()))
        })
        .collect();
    for row in &mut rows {
        if let Some(n) = row.id.and_then(|id| drift.get(&id)) {
            row.drifted = *n;
        }
    }
    let mut listing = paginate(rows, filter, unreachable);
    listing.as_of = as_of;
    listing.sign_in = clusters
        .iter()
        .filter(|c| hidden.contains(&c.id))
        .map(|c| c.name.clone())
        .collect();
    Ok(listing)
}

/// One container as [`list`] shows it (one `/cluster/resources` call on its cluster): 404 when
/// neither Proxmox nor ctforge knows it, 503 when an unmanaged CT's cluster does not answer.
pub async fn one(state: &AppState, user: &CurrentUser, target: &Target) -> Result<Row, AppError> {
    let cluster = &target.cluster;
    let live = match client_for(state, user, cluster) {
        Ok(client) => client
            .cluster_resources(Some(ResourceKind::Vm))
            .await
            .map_err(|e| {
                if is_unreachable(&e) {
                    (
                        format!("proxmox at {} is unreachable: {e}", cluster.url),
                        true,
                    )
                } else {
                    (format!("proxmox at {} answered: {e}", cluster.url), false)
                }
            }),
        Err(e) => return Err(e),
    };
    let templates: HashMap<i64, String> = match target.record.as_ref().and_then(|r| r.template_id) {
        Some(id) => match state.store.get_template(id).await {
            Ok(t) => HashMap::from([(id, t.row.name)]),
            Err(crate::storage::StoreError::NotFound) => HashMap::new(),
            Err(e) => return Err(e.into()),
        },
        None => HashMap::new(),
    };
    let mut unreachable = Vec::new();
    let mut resources = Vec::new();
    match live {
        Ok(items) => {
            state.down.mark_up(cluster.id);
            let items: Vec<ClusterResource> = items
                .into_iter()
                .filter(|r| r.vmid == Some(target.vmid))
                .collect();
            resources.push((cluster, items));
        }
        Err((reason, transport)) => {
            let now = state.clock.now_ms();
            let since = if transport {
                state.down.mark_down(cluster.id, now)
            } else {
                now
            };
            unreachable.push(Unreachable {
                cluster: cluster.name.clone(),
                reason,
                since,
                transport,
            });
        }
    }
    let records: Vec<Container> = target.record.iter().cloned().collect();
    let resources: Vec<(&Cluster, &[ClusterResource])> = resources
        .iter()
        .map(|(c, items): &(&Cluster, Vec<ClusterResource>)| (*c, items.as_slice()))
        .collect();
    let rows = merge(
        std::slice::from_ref(cluster),
        &resources,
        &records,
        &templates,
        &unreachable,
    );
    match rows.into_iter().find(|r| r.vmid == target.vmid) {
        Some(row) => Ok(row),
        None => match unreachable.pop() {
            Some(u) => Err(AppError::Unavailable(u.reason)),
            None => Err(AppError::NotFound(format!(
                "CT {} in cluster {}",
                target.vmid, cluster.name
            ))),
        },
    }
}

/// Merges live resources with records (pure; O(records + resources)).
pub fn merge(
    clusters: &[Cluster],
    resources: &[(&Cluster, &[ClusterResource])],
    records: &[Container],
    templates: &HashMap<i64, String>,
    unreachable: &[Unreachable],
) -> Vec<Row> {
    let mut by_key: HashMap<(i64, i64), &Container> = records
        .iter()
        .map(|r| ((r.cluster_id, r.vmid), r))
        .collect();
    let cluster_names: HashMap<i64, &str> =
        clusters.iter().map(|c| (c.id, c.name.as_str())).collect();
    let down: HashMap<&str, &str> = unreachable
        .iter()
        .map(|u| (u.cluster.as_str(), u.reason.as_str()))
        .collect();
    let mut rows =
        Vec::with_capacity(records.len() + resources.iter().map(|r| r.1.len()).sum::<usize>());
    for (cluster, items) in resources {
        for res in items.iter() {
            let Some(kind) = GuestKind::of_resource(&res.kind) else {
                continue;
            };
            if res.template == Some(true) {
                continue;
            }
            let Some(vmid) = res.vmid else { continue };
            let record = by_key.remove(&(cluster.id, i64::from(vmid)));
            let status = record
                .and_then(|r| r.status.overrides())
                .unwrap_or_else(|| ContainerStatus::from_proxmox(res.status.as_deref()));
            let hostname = res
                .name
                .clone()
                .or_else(|| record.map(|r| r.hostname.clone()))
                .unwrap_or_else(|| format!("{} {vmid}", kind.short()));
            rows.push(Row {
                key: url_id(&cluster.name, vmid, record.map(|r| r.id)),
                id: record.map(|r| r.id),
                cluster: cluster.name.clone(),
                vmid,
                kind,
                node: res
                    .node
                    .clone()
                    .or_else(|| record.map(|r| r.node.clone()))
                    .unwrap_or_default(),
                hostname,
                status,
                live: true,
                managed: record.is_some(),
                ip: record.and_then(|r| r.ip.clone()),
                template: record
                    .and_then(|r| r.template_id)
                    .and_then(|t| templates.get(&t).cloned()),
                tags: split_tags(res.tags.as_deref()),
                uptime: res.uptime.filter(|u| *u > 0),
                cpu: res.cpu,
                maxcpu: res.maxcpu,
                mem: res.mem,
                maxmem: res.maxmem,
                lock: res.lock.clone().filter(|l| !l.is_empty()),
                unavailable: None,
                drifted: 0,
            });
        }
    }
    // Records without a live container.
    let mut leftovers: Vec<&Container> = by_key.into_values().collect();
    leftovers.sort_by_key(|r| (r.cluster_id, r.vmid));
    for record in leftovers {
        let cluster = cluster_names
            .get(&record.cluster_id)
            .copied()
            .unwrap_or("?");
        let reason = down.get(cluster).map(|r| (*r).to_owned());
        let status = match record.status.overrides() {
            Some(s) => s,
            None if reason.is_some() => ContainerStatus::Unknown,
            None => ContainerStatus::Missing,
        };
        let vmid = u32::try_from(record.vmid).unwrap_or(0);
        rows.push(Row {
            key: record.id.to_string(),
            id: Some(record.id),
            cluster: cluster.to_owned(),
            vmid,
            kind: super::record_kind(record),
            node: record.node.clone(),
            hostname: record.hostname.clone(),
            status,
            live: false,
            managed: true,
            ip: record.ip.clone(),
            template: record.template_id.and_then(|t| templates.get(&t).cloned()),
            tags: Vec::new(),
            uptime: None,
            cpu: None,
            maxcpu: None,
            mem: None,
            maxmem: None,
            lock: None,
            unavailable: reason,
            drifted: 0,
        });
    }
    rows.sort_by(|a, b| (&a.cluster, a.vmid).cmp(&(&b.cluster, b.vmid)));
    rows
}

/// Splits Proxmox's `a;b` (or `a,b` / spaces) tag string.
pub fn split_tags(tags: Option<&str>) -> Vec<String> {
    tags.unwrap_or_default()
        .split([';', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn paginate(rows: Vec<Row>, filter: &Filter, unreachable: Vec<Unreachable>) -> Listing {
    let any = !rows.is_empty();
    let mut nodes = BTreeSet::new();
    let mut tags = BTreeSet::new();
    let mut templates = BTreeSet::new();
    let mut counts = Counts::default();
    let mut matching_rows = Vec::new();
    for row in rows {
        nodes.insert(row.node.clone());
        tags.extend(row.tags.iter().cloned());
        if let Some(t) = &row.template {
            templates.insert(t.clone());
        }
        if !filter.matches(&row, false) {
            continue;
        }
        counts.total += 1;
        match row.status {
            ContainerStatus::Running => counts.running += 1,
            ContainerStatus::Stopped => counts.stopped += 1,
            ContainerStatus::Creating => counts.creating += 1,
            s if s.is_error() => counts.error += 1,
            _ => {}
        }
        if filter.matches(&row, true) {
            matching_rows.push(row);
        }
    }
    matching_rows.sort_by(|a, b| filter.order(a, b));
    let matching = matching_rows.len();
    let pages = matching.div_ceil(PER_PAGE).max(1);
    let page = filter.page().min(pages);
    let items: Vec<Row> = matching_rows
        .into_iter()
        .skip((page - 1) * PER_PAGE)
        .take(PER_PAGE)
        .collect();
    Listing {
        counts,
        items,
        matching,
        page,
        pages,
        per_page: PER_PAGE,
        unreachable,
        sign_in: Vec::new(),
        nodes: nodes.into_iter().filter(|n| !n.is_empty()).collect(),
        tags: tags.into_iter().collect(),
        templates: templates.into_iter().collect(),
        any,
        as_of: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        Cluster {
            id: 1,
            name: "lab".into(),
            url: "https://pve:8006".into(),
            token_id: "root@pam!t".into(),
            token_secret_sealed: None,
            fingerprint: None,
            ssh_user: "root".into(),
            ssh_port: 22,
            ssh_password_sealed: None,
            ssh_key_sealed: None,
            ssh_host_key: None,
            is_default: true,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn guest(kind: &str, vmid: u32, name: &str, template: bool) -> ClusterResource {
        ClusterResource {
            id: format!("{kind}/{vmid}"),
            kind: kind.into(),
            node: Some("pve1".into()),
            vmid: Some(vmid),
            name: Some(name.into()),
            status: Some("running".into()),
            template: Some(template),
            ..ClusterResource::default()
        }
    }

    #[test]
    fn both_kinds_are_listed_with_their_type_and_filtered_by_it() {
        let c = cluster();
        let items = [
            guest("lxc", 100, "web", false),
            guest("qemu", 101, "desktop", false),
            guest("qemu", 9000, "debian-tpl", true),
            ClusterResource {
                id: "storage/pve1/local".into(),
                kind: "storage".into(),
                ..ClusterResource::default()
            },
        ];
        let rows = merge(
            std::slice::from_ref(&c),
            &[(&c, &items[..])],
            &[],
            &HashMap::new(),
            &[],
        );
        let kinds: Vec<(u32, GuestKind, &str)> = rows
            .iter()
            .map(|r| (r.vmid, r.kind, r.hostname.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (100, GuestKind::Lxc, "web"),
                (101, GuestKind::Qemu, "desktop")
            ],
            "templates and non-guests are not listed"
        );
        let json = serde_json::to_value(&rows[1]).unwrap();
        assert_eq!(json["type"], "qemu");

        let only_vms = Filter {
            kind: Some("qemu".into()),
            ..Filter::default()
        };
        let listing = paginate(rows.clone(), &only_vms, Vec::new());
        assert_eq!(listing.counts.total, 1);
        assert_eq!(listing.items[0].vmid, 101);
        let containers = Filter::default().only(GuestKind::Lxc);
        let listing = paginate(rows.clone(), &containers, Vec::new());
        assert_eq!(listing.items.len(), 1);
        assert_eq!(listing.items[0].kind, GuestKind::Lxc);
        assert!(containers.query_with(&[]).contains("type=lxc"));
        let by_type = Filter {
            sort: Some("type".into()),
            dir: Some("desc".into()),
            ..Filter::default()
        };
        let listing = paginate(rows, &by_type, Vec::new());
        assert_eq!(listing.items[0].kind, GuestKind::Qemu);
    }
}
