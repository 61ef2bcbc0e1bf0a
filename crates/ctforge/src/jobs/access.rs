//! Who may see, retry and cancel a job, and the audited retry and cancel use-cases behind
//! `/jobs` and `/api/v1/jobs`.
//!
//! A job is visible to, and retried or cancelled by, only (a `create_batch` or `fleet_apply`
//! job counts as acting on each of its containers):
//! - its submitter: the same Proxmox user signed in to the same cluster (a user id alone is not
//!   an identity: `root@pam` of another cluster is someone else);
//! - ctforge admins (`roles`);
//! - holders of the privilege Proxmox requires on the job's guest, in the job's cluster, asked
//!   as Proxmox answers (`authz::Rights` on `/vms/<vmid>`: the user's own ticket, or the
//!   service token on an API token owner's behalf): `VM.Audit` to
//!   read, `VM.Allocate` to retry or cancel a creation; a bulk job needs the privilege on every
//!   one of its containers (`VM.Audit` to read; the action's privilege to retry or cancel).
//!
//! A privilege on another cluster never counts, and a job whose guest cannot be told (its
//! record is gone) is its submitter's and the admins' only. A job the user may not read is
//! answered as not found; one they may read but not control, as forbidden.

use std::collections::HashMap;

use crate::audit;
use crate::auth::CurrentUser;
use crate::containers::bulk::{JOB_KIND as BULK_KIND, Payload as BulkPayload};
use crate::containers::lifecycle::Action;
use crate::error::AppError;
use crate::state::AppState;
use crate::storage::StoreError;
use crate::storage::model::Job;

/// What the user wants to do with a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// List, read, follow its events.
    Read,
    /// Retry or cancel.
    Control,
}

/// The guests a job acts on: (cluster id, VMID, privilege to control it).
struct Guests {
    cluster_of_submitter: Option<i64>,
    items: Vec<(i64, u32, &'static str)>,
}

/// Decides per user, remembering Proxmox's answers for one request (a page of jobs).
pub struct Access<'a> {
    state: &'a AppState,
    user: &'a CurrentUser,
    held: HashMap<(i64, u32, &'static str), bool>,
}

impl<'a> Access<'a> {
    /// Decisions for `user`.
    pub fn new(state: &'a AppState, user: &'a CurrentUser) -> Self {
        Self {
            state,
            user,
            held: HashMap::new(),
        }
    }

    async fn guests(&self, job: &Job) -> Result<Guests, AppError> {
        if job.kind == BULK_KIND {
            let payload: BulkPayload = match serde_json::from_str(&job.payload_json) {
                Ok(p) => p,
                Err(_) => {
                    return Ok(Guests {
                        cluster_of_submitter: None,
                        items: Vec::new(),
                    });
                }
            };
            let privilege = payload
                .action
                .parse::<Action>()
                .map(Action::privilege)
                .unwrap_or("VM.Allocate");
            let mut items = Vec::new();
            for id in &payload.ids {
                match crate::containers::resolve(self.state, id).await {
                    Ok(target) => items.push((target.cluster.id, target.vmid, privilege)),
                    // An item that no longer resolves touches nothing.
                    Err(AppError::NotFound(_) | AppError::Invalid { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(Guests {
                cluster_of_submitter: payload.cluster_id,
                items,
            });
        }
        if job.kind == crate::provisioning::batch::JOB_KIND {
            // A batch (count): the cluster and guests of its containers.
            let payload: crate::provisioning::batch::BatchPayload = serde_json::from_str(
                &job.payload_json,
            )
            .unwrap_or(crate::provisioning::batch::BatchPayload {
                items: Vec::new(),
                not_queued: Vec::new(),
            });
            let mut cluster_of_submitter = None;
            let mut items = Vec::new();
            for item in &payload.items {
                match self.state.store.get_container(item.id).await {
                    Ok(record) => {
                        cluster_of_submitter = Some(record.cluster_id);
                        items.push((record.cluster_id, item.vmid, "VM.Allocate"));
                    }
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(Guests {
                cluster_of_submitter,
                items,
            });
        }
        if job.kind == crate::fleet::job::JOB_KIND {
            // A fleet apply: the guests of its items (those still recorded), each with the
            // privilege its change needs.
            let Some(payload) = crate::fleet::job::payload_of(job) else {
                return Ok(Guests {
                    cluster_of_submitter: None,
                    items: Vec::new(),
                });
            };
            let mut items = Vec::new();
            for item in &payload.items {
                let Some(id) = item.container_id else {
                    continue;
                };
                let privilege = match item.action {
                    crate::fleet::ChangeKind::Update => "VM.Config.Options",
                    _ => "VM.Allocate",
                };
                match self.state.store.get_container(id).await {
                    Ok(record) => items.push((
                        record.cluster_id,
                        u32::try_from(record.vmid).unwrap_or(0),
                        privilege,
                    )),
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(Guests {
                cluster_of_submitter: payload.cluster_id,
                items,
            });
        }
        let Some(container_id) = job.container_id else {
            return Ok(Guests {
                cluster_of_submitter: None,
                items: Vec::new(),
            });
        };
        let record = match self.state.store.get_container(container_id).await {
            Ok(r) => r,
            Err(StoreError::NotFound) => {
                return Ok(Guests {
                    cluster_of_submitter: None,
                    items: Vec::new(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let vmid = u32::try_from(record.vmid).unwrap_or(0);
        Ok(Guests {
            cluster_of_submitter: Some(record.cluster_id),
            items: vec![(record.cluster_id, vmid, "VM.Allocate")],
        })
    }

    /// Whether the user holds `privilege` on CT `vmid` of cluster `cluster_id`: only on the
    /// cluster they signed in to, as Proxmox answers the cluster's service token. Proxmox not
    /// answering is a no.
    async fn holds(&mut self, cluster_id: i64, vmid: u32, privilege: &'static str) -> bool {
        if self.user.roles.cluster_id != Some(cluster_id) || vmid == 0 {
            return false;
        }
        if let Some(known) = self.held.get(&(cluster_id, vmid, privilege)) {
            return *known;
        }
        let answer = async {
            let cluster = self.state.store.get_cluster(cluster_id).await?;
            let rights = crate::authz::Rights::of(self.state, self.user, &cluster)?;
            let held = rights
                .holds(&crate::authz::vm_path(vmid), privilege)
                .await?;
            anyhow::Ok(held)
        }
        .await;
        let held = answer.unwrap_or_else(|e| {
            tracing::warn!(user = %self.user.username, cluster_id, vmid, error = %e, "cannot read the user's permissions; job access denied");
            false
        });
        self.held.insert((cluster_id, vmid, privilege), held);
        held
    }

    /// Whether the user may `what` the job.
    pub async fn allows(&mut self, job: &Job, what: Use) -> Result<bool, AppError> {
        if self.user.roles.is_admin() {
            return Ok(true);
        }
        let guests = self.guests(job).await?;
        let own_user = job.created_by == self.user.username;
        let submitter = match guests.cluster_of_submitter {
            Some(cluster) => own_user && self.user.roles.cluster_id == Some(cluster),
            // No cluster to compare (a bulk job from before it was recorded, a job whose record
            // is gone): the user id must do.
            None => own_user && guests.items.is_empty(),
        };
        if submitter {
            return Ok(true);
        }
        if guests.items.is_empty() {
            return Ok(false);
        }
        for (cluster, vmid, control) in guests.items {
            let privilege = match what {
                Use::Read => "VM.Audit",
                Use::Control => control,
            };
            if !self.holds(cluster, vmid, privilege).await {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Refuses unless the user may `what` the job: not found when they may not even read it,
    /// forbidden when they may read but not control it.
    pub async fn require(&mut self, job: &Job, what: Use) -> Result<(), AppError> {
        if self.allows(job, what).await? {
            return Ok(());
        }
        if what == Use::Control && self.allows(job, Use::Read).await? {
            return Err(AppError::Forbidden(format!(
                "retrying or cancelling job {} needs its submitter, a ctforge admin, or the privilege in Proxmox on its containers",
                job.id
            )));
        }
        Err(AppError::NotFound(format!("job {}", job.id)))
    }

    /// The jobs of `jobs` the user may read, in order.
    pub async fn visible(&mut self, jobs: Vec<Job>) -> Result<Vec<Job>, AppError> {
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            if self.allows(&job, Use::Read).await? {
                out.push(job);
            }
        }
        Ok(out)
    }
}

async fn load(state: &AppState, id: i64) -> Result<Job, AppError> {
    match state.store.get_job(id).await {
        Ok(job) => Ok(job),
        Err(StoreError::NotFound) => Err(AppError::NotFound(format!("job {id}"))),
        Err(e) => Err(e.into()),
    }
}

/// Job `id` if the user may read it (else not found).
pub async fn read(state: &AppState, user: &CurrentUser, id: i64) -> Result<Job, AppError> {
    let job = load(state, id).await?;
    Access::new(state, user).require(&job, Use::Read).await?;
    Ok(job)
}

/// Re-queues failed or cancelled job `id` from its failed step; audited as `job.retry`.
pub async fn retry(
    state: &AppState,
    user: &CurrentUser,
    id: i64,
    remote: &str,
) -> Result<Job, AppError> {
    let job = load(state, id).await?;
    Access::new(state, user).require(&job, Use::Control).await?;
    let job = state.jobs.retry(id, &user.username).await?;
    audit::record(
        state.store.as_ref(),
        audit::Entry::new(&user.username, "job.retry", format!("job {id}"), remote)
            .detail(serde_json::json!({ "kind": job.kind, "from_step": job.current_step })),
    )
    .await?;
    Ok(job)
}

/// Cancels queued or running job `id`; audited as `job.cancel`.
pub async fn cancel(
    state: &AppState,
    user: &CurrentUser,
    id: i64,
    remote: &str,
) -> Result<Job, AppError> {
    let job = load(state, id).await?;
    Access::new(state, user).require(&job, Use::Control).await?;
    let job = state.jobs.cancel(id, &user.username).await?;
    audit::record(
        state.store.as_ref(),
        audit::Entry::new(&user.username, "job.cancel", format!("job {id}"), remote)
            .detail(serde_json::json!({ "kind": job.kind, "step": job.current_step })),
    )
    .await?;
    Ok(job)
}
