//! The monitoring engine: re-checks a managed container's services over the provisioning SSH
//! channel (`pct exec` on the node), records what changed, and probes web links.
//!
//! - The batched check itself ([`check`], [`Report`]) lives in [`crate::guest::probe`], shared
//!   with provisioning's discovery; this module opens the channel with the injected
//!   [`GuestConnector`](crate::guest::GuestConnector) and acts on the report.
//! - [`apply`] turns a report into record updates: service state, sub-state, enabled, port;
//!   newly found credentials sealed with the keyring; `service_down` / `service_up` container
//!   events on transitions (never on a unit's first observation); and web-link probes
//!   ([`weblink`](super::weblink)) when a port is first seen or changes, or on request.
//! - [`refresh`] is the on-demand check behind `POST …/services/refresh` (user's permissions,
//!   running CT only); [`spawn`] starts the periodic loop (`[monitoring] interval_secs`) in
//!   processes that run workers. Both take the row lease `monitor:<cluster>:<vmid>`, so two
//!   processes never check the same container at once.
//!
//! Containers have no live event channel (the bus carries job progress only), so events are
//! persisted and appear on the Events tab on the next page load.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctforge_pve::PveApi;
use ctforge_pve::types::ResourceKind;
use ctforge_ssh::SshError;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;

use super::weblink::{self, Probe, Prober};
use super::{Target, client_for, pve_error};
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::guest::parse::{self, UnitState};
pub use crate::guest::probe::{COMMAND_TIMEOUT, ConfigManager, MonitorError, Report, check};
use crate::state::AppState;
use crate::status::{GuestKind, RecordStatus};
use crate::storage::StoreError;
use crate::storage::model::{Cluster, Container, ContainerService};

/// The privilege a refresh needs on `/vms/<vmid>`: seeing the container is enough.
pub const REFRESH_PRIVILEGE: &str = "VM.Audit";
/// Lease on `monitor:<cluster>:<vmid>` while a check runs (outlives a hung check).
const LEASE_MS: i64 = 180_000;
/// How long an on-demand refresh waits for a running check of the same container.
const LEASE_WAIT: Duration = Duration::from_secs(10);
/// Actor of events found by the periodic loop.
pub const LOOP_ACTOR: &str = "monitor";

/// A container event emitted by a check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Emitted {
    /// `service_down` or `service_up`.
    pub kind: String,
    /// The unit.
    pub unit: String,
    /// Human-readable text.
    pub message: String,
}

/// What applying a report changed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Applied {
    /// The container's services after the update.
    pub services: Vec<ContainerService>,
    /// Events recorded.
    pub events: Vec<Emitted>,
    /// Credentials found for the first time (names).
    pub credentials_added: Vec<String>,
}

fn describe(active: &str, sub: &str) -> String {
    if sub.is_empty() {
        active.to_owned()
    } else {
        format!("{active} ({sub})")
    }
}

/// Records `report` for `container`: services, new credentials, transition events and web
/// links. `probe_all` re-probes every web link (explicit refresh); otherwise only ports first
/// seen or changed, services whose state changed and links that did not answer last time.
/// Web links are probed on `web_link_target` only ([`web_link_target`] decides it).
pub async fn apply(
    state: &AppState,
    container: &Container,
    report: &Report,
    actor: &str,
    probe_all: bool,
    web_link_target: Option<IpAddr>,
) -> Result<Applied, StoreError> {
    let now = state.clock.now_ms();
    let previous = state.store.list_services(container.id).await?;
    let mut services = previous.clone();
    let mut events = Vec::new();
    if let Ok(units) = &report.units {
        let by_id: HashMap<&str, &UnitState> = units.iter().map(|u| (u.id.as_str(), u)).collect();
        for service in &mut services {
            let Some(unit) = by_id.get(service.unit.as_str()) else {
                continue;
            };
            let was = service.active_state.clone();
            let was_sub = service.sub_state.clone();
            let observed_before = !(was.is_empty() || was == "unknown");
            let now_active = unit.active == "active";
            if observed_before && was == "active" && !now_active {
                events.push(Emitted {
                    kind: "service_down".to_owned(),
                    unit: service.unit.clone(),
                    message: format!(
                        "{} went down: now {}, was {}",
                        service.unit,
                        describe(&unit.active, &unit.sub),
                        describe(&was, &was_sub)
                    ),
                });
            } else if observed_before && was != "active" && now_active {
                events.push(Emitted {
                    kind: "service_up".to_owned(),
                    unit: service.unit.clone(),
                    message: format!(
                        "{} is up: now {}, was {}",
                        service.unit,
                        describe(&unit.active, &unit.sub),
                        describe(&was, &was_sub)
                    ),
                });
            }
            service.active_state = unit.active.clone();
            service.sub_state = unit.sub.clone();
            service.enabled = unit.enabled;
            service.updated_at = now;
            // A stopped service listens nowhere; keep its last port (and link) until it is back.
            if now_active && let Ok(listeners) = &report.ports {
                let port = parse::port_of(unit, listeners).map(i64::from);
                if port.is_none() {
                    service.url = None;
                    service.web_title = None;
                    service.web_answered = None;
                    service.web_checked_at = None;
                }
                service.port = port;
            }
        }
    }
    if state.config.monitoring.web_links
        && let Some(ip) = web_link_target
    {
        probe_links(&mut services, &previous, ip, probe_all, now).await;
    }
    state
        .store
        .replace_services(container.id, &services)
        .await?;

    let mut credentials_added = Vec::new();
    if let Ok(found) = &report.credentials {
        let known: Vec<String> = state
            .store
            .list_credentials(container.id)
            .await?
            .into_iter()
            .map(|c| c.name)
            .collect();
        for (name, value) in found {
            if known.contains(name) {
                continue;
            }
            match state.keyring.seal(value.expose()) {
                Ok(sealed) => {
                    state
                        .store
                        .put_credential(container.id, name, &sealed)
                        .await?;
                    credentials_added.push(name.clone());
                }
                Err(e) => {
                    tracing::error!(credential = %name, error = %e, "cannot seal a credential")
                }
            }
        }
    }
    if let Ok(cm) = &report.config_manager {
        super::config_manager::record(state.store.as_ref(), container.id, cm).await?;
    }
    for event in &events {
        state
            .store
            .add_container_event(
                container.id,
                &event.kind,
                &event.message,
                actor,
                &json!({ "unit": event.unit }).to_string(),
            )
            .await?;
    }
    if !events.is_empty() {
        let cluster = state
            .store
            .get_cluster(container.cluster_id)
            .await
            .ok()
            .map(|c| c.name);
        for event in &events {
            if let Some(notification) = crate::notify::service_event(
                &state.config,
                container,
                cluster.as_deref(),
                &event.kind,
                &event.unit,
                &event.message,
                now,
            ) {
                state.notifier.emit(notification);
            }
        }
    }
    Ok(Applied {
        services,
        events,
        credentials_added,
    })
}

/// The address to probe the guest's web links on: its recorded address, and only when
/// Proxmox reports that address for the guest and it is not one [`weblink::refused`] names
/// (loopback, link-local, …, ctforge's own host). Reported addresses: for a container a static
/// `ip=`/`ip6=` of a `netN` and the addresses of its interfaces; for a VM a static
/// `ipconfigN` and what its guest agent reports (`agent/network-get-interfaces`).
pub async fn web_link_target(
    state: &AppState,
    cluster: &Cluster,
    container: &Container,
    kind: GuestKind,
    node: &str,
    vmid: u32,
) -> Option<IpAddr> {
    let ip = container
        .ip
        .as_deref()
        .and_then(|ip| ip.split('/').next())
        .and_then(|ip| ip.parse::<IpAddr>().ok())?;
    if let Some(reason) = weblink::refused(ip, state.config.listen_addr().ok()) {
        tracing::debug!(vmid, %ip, reason, "web links not probed");
        return None;
    }
    let client = state.pve.service(cluster).ok()?;
    let reported = match kind {
        GuestKind::Lxc => reported_by_lxc(client.as_ref(), node, vmid).await,
        GuestKind::Qemu => reported_by_qemu(client.as_ref(), node, vmid).await,
    };
    if reported.contains(&ip) {
        Some(ip)
    } else {
        tracing::debug!(vmid, %ip, "web links not probed: Proxmox does not report this address for the guest");
        None
    }
}

/// The addresses Proxmox reports for container `vmid`: static ones of its config, then those
/// of its interfaces.
async fn reported_by_lxc(client: &dyn PveApi, node: &str, vmid: u32) -> Vec<IpAddr> {
    let mut reported: Vec<IpAddr> = Vec::new();
    if let Ok(config) = client.lxc_config_get(node, vmid, true).await {
        for net in config.nets.values() {
            if let Some(ctforge_pve::types::IpConfig::Static(cidr)) = &net.ip {
                reported.extend(address_of(cidr));
            }
            if let Some(ctforge_pve::types::Ip6Config::Static(cidr)) = &net.ip6 {
                reported.extend(address_of(cidr));
            }
        }
    }
    if let Ok(interfaces) = client.lxc_interfaces(node, vmid).await {
        for interface in interfaces {
            reported.extend(interface.inet.as_deref().and_then(address_of));
            reported.extend(interface.inet6.as_deref().and_then(address_of));
            reported.extend(
                interface
                    .ip_addresses
                    .iter()
                    .filter_map(|a| a.ip_address.as_deref().and_then(address_of)),
            );
        }
    }
    reported
}

/// The addresses Proxmox reports for VM `vmid`: static `ip=`/`ip6=` of its `ipconfigN`, then
/// those its guest agent reports.
async fn reported_by_qemu(client: &dyn PveApi, node: &str, vmid: u32) -> Vec<IpAddr> {
    let mut reported: Vec<IpAddr> = Vec::new();
    if let Ok(config) = client.qemu_config_get(node, vmid, true).await {
        let ipconfigs = config
            .iter()
            .filter(|(key, _)| key.starts_with("ipconfig"))
            .filter_map(|(_, value)| value.as_str());
        for value in ipconfigs {
            reported.extend(
                value
                    .split(',')
                    .filter_map(|part| part.split_once('='))
                    .filter(|(key, _)| matches!(*key, "ip" | "ip6"))
                    .filter_map(|(_, cidr)| address_of(cidr)),
            );
        }
    }
    if let Ok(interfaces) = client.agent_network_get_interfaces(node, vmid).await {
        reported.extend(
            interfaces
                .result
                .iter()
                .flat_map(|i| &i.ip_addresses)
                .filter_map(|a| address_of(&a.ip_address)),
        );
    }
    reported
}

fn address_of(cidr: &str) -> Option<IpAddr> {
    cidr.split('/').next()?.trim().parse().ok()
}

async fn probe_links(
    services: &mut [ContainerService],
    previous: &[ContainerService],
    ip: IpAddr,
    probe_all: bool,
    now: i64,
) {
    let prober = Prober::default();
    let before: HashMap<&str, &ContainerService> =
        previous.iter().map(|s| (s.unit.as_str(), s)).collect();
    let due: Vec<(usize, u16)> = services
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let port = u16::try_from(s.port?).ok()?;
            let old = before.get(s.unit.as_str());
            // A new or moved port, a service that came back, or a link that did not answer.
            let changed = old.is_none_or(|o| o.port != s.port || o.active_state != s.active_state);
            let retry = s.web_checked_at.is_none() || s.web_answered == Some(false);
            (probe_all || changed || retry).then_some((i, port))
        })
        .collect();
    let probes = futures_util::future::join_all(due.iter().map(|(_, port)| {
        let prober = prober.clone();
        async move { prober.probe(ip, *port).await }
    }))
    .await;
    for ((i, port), probe) in due.into_iter().zip(probes) {
        if let Some(service) = services.get_mut(i) {
            record_probe(service, &probe, ip, port, now);
        }
    }
}

fn record_probe(service: &mut ContainerService, probe: &Probe, ip: IpAddr, port: u16, now: i64) {
    service.url = probe.url(ip, port);
    service.web_title = probe.title().map(str::to_owned);
    service.web_answered = Some(probe.answered());
    service.web_checked_at = Some(now);
    if let Probe::NoAnswer { reason } | Probe::NotHttp { reason } = probe {
        tracing::debug!(unit = %service.unit, %reason, "web link probe");
    }
}

/// The name of a container's monitoring lease.
pub fn lease_name(cluster: &str, vmid: u32) -> String {
    format!("monitor:{cluster}:{vmid}")
}

/// A finished check: the report and what it changed.
#[derive(Debug)]
pub struct Checked {
    /// The report.
    pub report: Report,
    /// What changed.
    pub applied: Applied,
}

/// The channel into a VM: its guest agent when it answers a ping, else SSH with ctforge's own
/// key for the VM to the address recorded for it, only to the host key its creation pinned.
async fn vm_channel(
    state: &AppState,
    cluster: &Cluster,
    container: &Container,
    node: &str,
    vmid: u32,
) -> Result<Box<dyn ctforge_ssh::RemoteExec>, MonitorError> {
    let client = state.pve.service(cluster).map_err(|e| MonitorError::Ssh {
        node: node.to_owned(),
        message: e.to_string(),
    })?;
    let agent = match client.agent_ping(node, vmid).await {
        Ok(()) => {
            return Ok(Box::new(crate::guest::agent::AgentChannel::new(
                client,
                node,
                vmid,
                Some(COMMAND_TIMEOUT),
            )));
        }
        Err(e) => e.to_string(),
    };
    let fallback = crate::guest::fallback::Fallback {
        container_id: Some(container.id),
        vmid,
        address: container.ip.clone(),
        first_contact: false,
        wait: Duration::ZERO,
    };
    match fallback.open(state.store.as_ref(), &state.keyring).await {
        Ok(opened) => Ok(Box::new(
            opened.channel.with_guest_timeout(Some(COMMAND_TIMEOUT)),
        )),
        Err(e) => Err(MonitorError::NoAgent {
            vmid,
            agent,
            ssh: e.to_string(),
        }),
    }
}

/// Opens the provisioning channel to the guest (`kind`: `pct` for a container, the guest
/// connector's VM channel for a VM) on `node`, runs the check and applies it.
pub async fn check_container(
    state: &AppState,
    cluster: &Cluster,
    container: &Container,
    kind: GuestKind,
    node: &str,
    actor: &str,
    probe_all: bool,
) -> Result<Checked, MonitorError> {
    let vmid = u32::try_from(container.vmid).unwrap_or_default();
    // A VM is reached through its guest agent with the cluster's token, or over SSH with
    // ctforge's own key for it when the agent does not answer (as its creation chose); a
    // container over the node's SSH session (`pct`).
    let (session, channel) = match kind {
        GuestKind::Qemu => (
            None,
            vm_channel(state, cluster, container, node, vmid).await?,
        ),
        GuestKind::Lxc => {
            let session = state
                .guests
                .connect(cluster)
                .await
                .map_err(|e| MonitorError::Ssh {
                    node: node.to_owned(),
                    message: e.to_string(),
                })?;
            let Some(channel) = session.guest_channel(kind, vmid, Some(COMMAND_TIMEOUT)) else {
                session.close().await;
                return Err(MonitorError::NoChannel {
                    what: kind.short(),
                    vmid,
                });
            };
            (Some(session), channel)
        }
    };
    let units: Vec<String> = state
        .store
        .list_services(container.id)
        .await?
        .into_iter()
        .map(|s| s.unit)
        .collect();
    // Drift, checksums only: the managed files of what was applied and their applied sums.
    let expected = drift_expectation(state, container).await;
    let drift_paths: Vec<String> = expected.keys().cloned().collect();
    let report =
        crate::guest::probe::check_with(channel.as_ref(), vmid, &units, &drift_paths).await;
    if let Some(session) = session {
        session.close().await;
    }
    // The node's connection opens with the first command: failing to reach the node is
    // still "SSH to the node failed", not a failure inside the CT.
    let report = report.map_err(|e| match e {
        MonitorError::Transport {
            source:
                source @ (SshError::Connect { .. }
                | SshError::Auth { .. }
                | SshError::HostKeyMismatch { .. }
                | SshError::InvalidKey { .. }),
            ..
        } => MonitorError::Ssh {
            node: node.to_owned(),
            message: source.to_string(),
        },
        other => other,
    })?;
    if let Some(sums) = &report.drift_sums {
        let drifted: Vec<String> = expected
            .iter()
            .filter(|(path, applied)| sums.get(*path) != Some(*applied))
            .map(|(path, _)| path.clone())
            .collect();
        record_drift(state, cluster, container, actor, drifted).await?;
    }
    let target = if state.config.monitoring.web_links {
        web_link_target(state, cluster, container, kind, node, vmid).await
    } else {
        None
    };
    let applied = apply(state, container, &report, actor, probe_all, target).await?;
    Ok(Checked { report, applied })
}

/// Stores the managed files the check found changed in the container (the dashboard's drift
/// badge reads them) and, when they differ from the last check's and are not none, records a
/// `drift` container event and emits the `drift_detected` notification.
async fn record_drift(
    state: &AppState,
    cluster: &Cluster,
    container: &Container,
    actor: &str,
    drifted: Vec<String>,
) -> Result<(), StoreError> {
    let before: Vec<String> = state
        .store
        .get_container_drift(container.id)
        .await?
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default();
    let json = serde_json::to_string(&drifted).unwrap_or_else(|_| "[]".to_owned());
    state.store.put_container_drift(container.id, &json).await?;
    if drifted.is_empty() || drifted == before {
        return Ok(());
    }
    state
        .store
        .add_container_event(
            container.id,
            "drift",
            &format!(
                "managed files changed in the container: {}",
                drifted.join(", ")
            ),
            actor,
            &json!({ "files": drifted }).to_string(),
        )
        .await?;
    state.notifier.emit(crate::notify::drift_event(
        &state.config,
        container,
        Some(&cluster.name),
        &drifted,
        state.clock.now_ms(),
    ));
    Ok(())
}

/// The managed files of what was applied to `container` and their applied checksums (empty
/// when ctforge did not apply a template to it, or it cannot be read).
async fn drift_expectation(
    state: &AppState,
    container: &Container,
) -> std::collections::BTreeMap<String, String> {
    let Ok(applied) = super::drift::applied_of(state.store.as_ref(), container).await else {
        return Default::default();
    };
    let Ok(expected) = super::drift::Expected::of(&applied.payload_with(&applied.template)) else {
        return Default::default();
    };
    expected
        .files
        .into_values()
        .map(|(path, _, content)| (path, super::drift::sha256(&content)))
        .collect()
}

/// The JSON answer of a refresh.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RefreshView {
    /// True when every part of the check succeeded.
    pub ok: bool,
    /// ctforge record id.
    pub id: i64,
    /// VMID.
    pub vmid: u32,
    /// Node.
    pub node: String,
    /// Wall time of the batched command in milliseconds.
    pub duration_ms: u64,
    /// Per part: `{"ok": true}` or `{"ok": false, "error": "…"}`.
    pub parts: BTreeMap<&'static str, serde_json::Value>,
    /// The config-manager's state, when that part succeeded.
    pub config_manager: Option<ConfigManager>,
    /// Listening ports seen, when that part succeeded.
    pub ports: Option<Vec<u16>>,
    /// Credential names found in the container, when that part succeeded.
    pub credentials: Option<Vec<String>>,
    /// Credentials stored for the first time.
    pub credentials_added: Vec<String>,
    /// The services after the update.
    pub services: Vec<ContainerService>,
    /// Events recorded (`service_down`, `service_up`).
    pub events: Vec<Emitted>,
}

impl RefreshView {
    fn new(container: &Container, vmid: u32, node: &str, checked: Checked) -> Self {
        let report = &checked.report;
        let mut parts = BTreeMap::new();
        for (name, error) in [
            ("units", report.units.as_ref().err()),
            ("ports", report.ports.as_ref().err()),
            ("credentials", report.credentials.as_ref().err()),
            ("config_manager", report.config_manager.as_ref().err()),
        ] {
            parts.insert(
                name,
                match error {
                    None => json!({ "ok": true }),
                    Some(e) => json!({ "ok": false, "error": e }),
                },
            );
        }
        Self {
            ok: report.failures().is_empty(),
            id: container.id,
            vmid,
            node: node.to_owned(),
            duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
            parts,
            config_manager: report.config_manager.as_ref().ok().cloned(),
            ports: report
                .ports
                .as_ref()
                .ok()
                .map(|l| l.iter().map(|l| l.port).collect()),
            credentials: report
                .credentials
                .as_ref()
                .ok()
                .map(|c| c.iter().map(|(n, _)| n.clone()).collect()),
            credentials_added: checked.applied.credentials_added,
            services: checked.applied.services,
            events: checked.applied.events,
        }
    }

    /// One line for the Services tab's notice.
    pub fn summary(&self) -> String {
        let up = self
            .services
            .iter()
            .filter(|s| s.active_state == "active")
            .count();
        let mut text = format!(
            "Checked in {} ms: {up} of {} services active",
            self.duration_ms,
            self.services.len()
        );
        for e in &self.events {
            text.push_str(&format!("; {}", e.message));
        }
        if !self.credentials_added.is_empty() {
            text.push_str(&format!(
                "; new credentials: {}",
                self.credentials_added.join(", ")
            ));
        }
        if let Some(cm) = &self.config_manager
            && let Some(code) = cm.last_exit
        {
            let meaning = super::config_manager::Outcome::from_code(code).meaning();
            text.push_str(&format!(
                "; config-manager: last run exit {code} ({meaning})"
            ));
            if !cm.conflicts.is_empty() {
                text.push_str(&format!(" in {}", cm.conflicts.join(", ")));
            }
        }
        let failed: Vec<String> = self
            .parts
            .values()
            .filter_map(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .collect();
        if !failed.is_empty() {
            text.push_str(&format!(". Not checked: {}", failed.join("; ")));
        }
        text
    }
}

/// Takes the monitoring lease of `target`, waiting up to `wait` for a running check.
async fn lease(
    state: &AppState,
    name: &str,
    owner: &str,
    wait: Duration,
) -> Result<bool, AppError> {
    let started = Instant::now();
    loop {
        if state.store.try_lock(name, owner, LEASE_MS).await? {
            return Ok(true);
        }
        if started.elapsed() >= wait {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `POST …/services/refresh`: checks `target` now as `user` (managed, running CTs only).
pub async fn refresh(
    state: &AppState,
    user: &CurrentUser,
    target: &Target,
) -> Result<RefreshView, AppError> {
    let Some(record) = &target.record else {
        return Err(AppError::NotFound(format!(
            "services of unmanaged CT {} (ctforge only tracks containers it created)",
            target.vmid
        )));
    };
    crate::authz::read(state, user, &target.cluster, target.vmid).await?;
    if matches!(
        record.status,
        RecordStatus::Creating | RecordStatus::Deleting
    ) {
        return Err(AppError::Conflict(format!(
            "CT {} is {}; its services are checked once that finishes",
            target.vmid,
            if record.status == RecordStatus::Creating {
                "still being created"
            } else {
                "being deleted"
            }
        )));
    }
    // An action holding the container (a migration moving it, a reboot) ends first: a check
    // in its middle would find the CT stopped on its way.
    super::migrate::wait_for_actions(state.locks.as_ref(), &target.lock_name()).await?;
    let client = client_for(state, user, &target.cluster)?;
    let super::guest_kind::Located {
        node,
        kind,
        state: status,
    } = super::guest_kind::locate(client.as_ref(), target)
        .await
        .map_err(|e| pve_error(e, target.vmid))?;
    if !status.is_running() {
        return Err(AppError::Conflict(format!(
            "CT {} is not running ({}); start it to check its services",
            target.vmid,
            status.status()
        )));
    }
    let name = lease_name(&target.cluster.name, target.vmid);
    let owner = uuid::Uuid::new_v4().to_string();
    if !lease(state, &name, &owner, LEASE_WAIT).await? {
        return Err(AppError::Conflict(format!(
            "another check of CT {} is running; try again in a moment",
            target.vmid
        )));
    }
    let result = check_container(
        state,
        &target.cluster,
        record,
        kind,
        &node,
        &user.username,
        true,
    )
    .await;
    if let Err(e) = state.store.unlock(&name, &owner).await {
        tracing::warn!(lease = %name, error = %e, "cannot release the monitoring lease");
    }
    match result {
        Ok(checked) => Ok(RefreshView::new(record, target.vmid, &node, checked)),
        Err(MonitorError::Store(e)) => Err(e.into()),
        Err(e) => Err(AppError::Unavailable(e.to_string())),
    }
}

/// A running periodic monitor; [`MonitorHandle::stop`] ends it.
#[derive(Debug)]
pub struct MonitorHandle {
    cancel: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl MonitorHandle {
    /// Stops the loop (a round in progress is abandoned) and waits for it.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// Starts the periodic monitor with `[monitoring]`, or nothing when `interval_secs` is 0. It
/// also stops when the application shuts down.
pub fn spawn(state: &AppState) -> Option<MonitorHandle> {
    let config = state.config.monitoring.clone();
    if config.interval_secs == 0 {
        return None;
    }
    let cancel = state.shutdown.child_token();
    let stop = cancel.clone();
    let state = state.clone();
    let owner = format!("monitor-{}", uuid::Uuid::new_v4().simple());
    let interval = Duration::from_secs(config.interval_secs);
    let task = tokio::spawn(async move {
        tracing::info!(
            interval_secs = config.interval_secs,
            concurrency = config.concurrency,
            "container monitor started"
        );
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
            }
            tokio::select! {
                () = stop.cancelled() => break,
                round = run_round(&state, &owner) => {
                    tracing::debug!(checked = round.checked, failed = round.failed, skipped = round.skipped, "monitor round done");
                }
            }
        }
        tracing::info!("container monitor stopped");
    });
    Some(MonitorHandle { cancel, task })
}

/// Counts of one periodic round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Containers checked.
    pub checked: usize,
    /// Checks that failed as a whole.
    pub failed: usize,
    /// Containers another process was checking.
    pub skipped: usize,
}

/// One pass over every running managed container (`ready` records), `concurrency` at a time.
pub async fn run_round(state: &AppState, owner: &str) -> Round {
    let records = match state.store.list_containers().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "monitor: cannot list containers");
            return Round::default();
        }
    };
    let mut by_cluster: BTreeMap<i64, Vec<Container>> = BTreeMap::new();
    for record in records
        .into_iter()
        .filter(|r| r.status == RecordStatus::Ready)
    {
        by_cluster
            .entry(record.cluster_id)
            .or_default()
            .push(record);
    }
    let mut work: Vec<(Arc<Cluster>, Container, String, GuestKind)> = Vec::new();
    for (cluster_id, records) in by_cluster {
        let cluster = match state.store.get_cluster(cluster_id).await {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::warn!(cluster_id, error = %e, "monitor: cannot load cluster");
                continue;
            }
        };
        let running = match running_cts(state, &cluster).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(cluster = %cluster.name, error = %e, "monitor: cannot list running containers");
                continue;
            }
        };
        for record in records {
            if let Some((node, kind)) = u32::try_from(record.vmid)
                .ok()
                .and_then(|v| running.get(&v))
            {
                work.push((cluster.clone(), record, node.clone(), *kind));
            }
        }
    }
    let concurrency = usize::try_from(state.config.monitoring.concurrency.max(1)).unwrap_or(1);
    let results: Vec<Result<bool, ()>> = futures_util::stream::iter(work)
        .map(|(cluster, record, node, kind)| async move {
            let vmid = u32::try_from(record.vmid).unwrap_or_default();
            let name = lease_name(&cluster.name, vmid);
            match state.store.try_lock(&name, owner, LEASE_MS).await {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(e) => {
                    tracing::warn!(lease = %name, error = %e, "monitor: cannot take the lease");
                    return Err(());
                }
            }
            let result =
                check_container(state, &cluster, &record, kind, &node, LOOP_ACTOR, false).await;
            if let Err(e) = state.store.unlock(&name, owner).await {
                tracing::warn!(lease = %name, error = %e, "monitor: cannot release the lease");
            }
            match result {
                Ok(checked) => {
                    for (part, error) in checked.report.failures() {
                        tracing::info!(vmid, cluster = %cluster.name, part, %error, "monitor: part of the check failed");
                    }
                    Ok(true)
                }
                Err(e) => {
                    tracing::warn!(vmid, cluster = %cluster.name, error = %e, "monitor: check failed");
                    Err(())
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut round = Round::default();
    for r in results {
        match r {
            Ok(true) => round.checked += 1,
            Ok(false) => round.skipped += 1,
            Err(()) => round.failed += 1,
        }
    }
    round
}

/// Running CTs of a cluster by VMID → node, with the cluster's API token.
/// The running guests of `cluster` (containers and VMs): VMID → (node, kind).
async fn running_cts(
    state: &AppState,
    cluster: &Cluster,
) -> Result<HashMap<u32, (String, GuestKind)>, String> {
    let client = state.pve.service(cluster).map_err(|e| e.to_string())?;
    let resources = client
        .cluster_resources(Some(ResourceKind::Vm))
        .await
        .map_err(|e| e.to_string())?;
    Ok(resources
        .into_iter()
        .filter(|r| r.status.as_deref() == Some("running"))
        .filter_map(|r| Some((r.vmid?, (r.node?, GuestKind::of_resource(&r.kind)?))))
        .collect())
}
