//! Re-applying a template to an existing container through the creation pipeline's own
//! runtime (a child module of `pipeline`, so it runs the very phases creation runs): files by
//! the caller's per-file decision, the config-manager's manifests, packages (the install
//! phase: idempotent installs), the scripts that changed since their last run (the scripts
//! phase, with the runtime), and the config-manager's checksum record as the new baseline.
//! Snapshot, rollback, locks and records are the caller's (`containers::reapply`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ctforge_pve::PveApi;

use super::{CreateContainer, Work, fail, packages_manifest, probe, run, scripts_manifest};
use crate::guest::commands;
use crate::jobs::{JobContext, StepError};
use crate::provisioning::plan::{Plan, Step};
use crate::storage::model::{Cluster, Container};

/// What to do with one managed file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileAction {
    /// Write the template's content.
    Take,
    /// Leave the container's file as it is.
    Keep,
    /// Copy the container's file to `<target>.bak.<time>`, then write the template's.
    Backup,
}

/// What a re-apply works on.
pub struct Subject {
    /// The container's record.
    pub container: Container,
    /// Its cluster.
    pub cluster: Cluster,
    /// Proxmox with the cluster's service token.
    pub client: Arc<dyn PveApi>,
    /// The plan derived from the template being applied.
    pub plan: Plan,
}

/// Applies `subject.plan` to the container: `files` says what to do per file name (absent:
/// take it), `scripts` names the scripts to run.
pub async fn apply(
    runner: &CreateContainer,
    ctx: &JobContext,
    subject: Subject,
    files: &BTreeMap<String, FileAction>,
    scripts: &BTreeSet<String>,
) -> Result<(), StepError> {
    let Subject {
        container,
        cluster,
        client,
        plan,
    } = subject;
    let created_by = container.created_by.clone();
    let mut work = Work {
        container: Some(container),
        created_by,
        payload: None,
        cluster,
        plan,
        client,
        root_ticket_sealed: None,
    };
    // The job's way into the guest, as creation's: `pct` for a container; a VM's guest agent,
    // or SSH with ctforge's key for it when the agent does not answer.
    let channel = runner.channel(ctx, &work).await?;
    let plan = &work.plan;
    let q = ctforge_ssh::quote;
    run(
        ctx,
        channel.as_ref(),
        "prepare",
        &format!(
            "mkdir -p {}/files {}/scripts {}",
            commands::STATE_DIR,
            commands::STATE_DIR,
            q(commands::MANIFEST_DIR)
        ),
    )
    .await?;
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut manifest = Vec::new();
    for step in &plan.steps {
        let Step::DeployFile {
            name,
            path,
            policy,
            content,
        } = step
        else {
            continue;
        };
        let staged = commands::staged_path(name);
        channel
            .push(
                content.as_bytes(),
                &staged,
                Some(commands::STAGED_MODE),
                None,
            )
            .await
            .map_err(|e| fail(format!("push {name}: {e}")))?;
        manifest.push((name.clone(), path.clone(), policy.clone()));
        let write = format!(
            "mkdir -p {} && cp {} {}",
            q(commands::parent(path)),
            q(&staged),
            q(path)
        );
        match files.get(name).copied().unwrap_or(FileAction::Take) {
            FileAction::Keep => {
                let _ = ctx
                    .log(format!("{path}: the container's version kept"))
                    .await;
            }
            FileAction::Take => {
                run(ctx, channel.as_ref(), &format!("deploy {name}"), &write).await?;
                let _ = ctx.log(format!("{path}: written from the template")).await;
            }
            FileAction::Backup => {
                let backup = format!("{path}.bak.{stamp}");
                let (exists, _) = probe(channel.as_ref(), &format!("test -e {}", q(path))).await?;
                if exists == 0 {
                    run(
                        ctx,
                        channel.as_ref(),
                        &format!("backup {path}"),
                        &format!("cp -p {} {}", q(path), q(&backup)),
                    )
                    .await?;
                }
                run(ctx, channel.as_ref(), &format!("deploy {name}"), &write).await?;
                let _ = ctx
                    .log(if exists == 0 {
                        format!("{path}: backed up to {backup} and written from the template")
                    } else {
                        format!("{path}: written from the template")
                    })
                    .await;
            }
        }
    }
    for (name, content) in [
        ("files", commands::files_manifest(&manifest)),
        ("scripts", scripts_manifest(plan)),
        ("packages.sh", packages_manifest(plan)),
    ] {
        channel
            .push(
                content.as_bytes(),
                &format!("{}/{name}", commands::MANIFEST_DIR),
                Some(0o600),
                None,
            )
            .await
            .map_err(|e| fail(format!("push the config-manager's {name}: {e}")))?;
    }
    let _ = ctx.log("config-manager manifests updated").await;
    // Packages: the install phase itself (installs are idempotent).
    runner.install(ctx, &work).await?;
    // Scripts: only those that changed since their last run (or never ran here).
    work.plan.steps.retain(|s| match s {
        Step::RunScript { name, .. } => scripts.contains(name),
        _ => true,
    });
    runner.scripts(ctx, &work).await?;
    if work.plan.steps.contains(&Step::ConfigManager) {
        let (code, _) = probe(
            channel.as_ref(),
            &format!("{} --record", commands::APPLY_SCRIPT),
        )
        .await?;
        if code != 0 {
            let _ = ctx
                .log(format!(
                    "! warning: the config-manager could not record the checksums of the managed files (exit {code})"
                ))
                .await;
        }
    }
    Ok(())
}

/// Drops the guest session `runner` keeps for job `job_id` (call once the job is done).
pub fn release(runner: &CreateContainer, job_id: i64) {
    runner.forget_session(job_id);
}
