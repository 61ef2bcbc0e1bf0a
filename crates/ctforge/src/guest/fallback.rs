//! A VM's SSH fallback: the channel into a QEMU guest whose guest agent is absent (turned off,
//! not installed, not answering), shared by provisioning and monitoring.
//!
//! * The key is the VM's own: an ed25519 pair ctforge made at submit, its public half given to
//!   cloud-init's `sshkeys`, its private half sealed in `guest_ssh_keys` (migration 0018) and
//!   only ever opened into a [`ctforge_ssh::Secret`] here.
//! * The guest's host key is pinned on first contact (the creation job: trust on first use,
//!   recorded and logged) and enforced from then on; monitoring never pins, so it only talks
//!   to the key the creation met.
//! * The login is cloud-init's user (stored with the key); commands run as root through `sudo -n`, quoted like every
//!   other channel ([`ctforge_ssh::DirectChannel`]).
//! * The address is one ctforge knows without the agent: the plan's static address, or the
//!   one recorded for the guest. A VM on DHCP without an agent has none, and the error says so.

use std::sync::Arc;
use std::time::Duration;

use ctforge_ssh::{DirectChannel, HostKeyPolicy, SshAuth, SshError, SshSession, SshTarget};

use super::GuestError;
use crate::secrets::Keyring;
use crate::storage::Store;

/// The guest's sshd.
pub const SSH_PORT: u16 = 22;

/// How to reach one VM over SSH.
#[derive(Clone, Debug)]
pub struct Fallback {
    /// The guest's record (its key is stored per record).
    pub container_id: Option<i64>,
    /// VMID, for messages.
    pub vmid: u32,
    /// An address known without the agent (static, or recorded).
    pub address: Option<String>,
    /// Pin the host key when none is pinned yet (the creation job); otherwise a guest whose
    /// key was never pinned is refused.
    pub first_contact: bool,
    /// How long the guest may take to accept the connection (it may still be booting).
    pub wait: Duration,
}

/// An open fallback channel and what happened on the way.
pub struct Opened {
    /// The channel (its session shared by every clone).
    pub channel: DirectChannel,
    /// The host key pinned by this contact, when it was the first.
    pub pinned_now: Option<String>,
    /// Where it went, `user@address`.
    pub target: String,
}

impl Fallback {
    /// Opens the SSH channel, retrying — within [`Fallback::wait`] — while the guest does not
    /// accept it yet (sshd not started, cloud-init has not installed the key yet). Never
    /// retries a host key mismatch. Errors say what is missing, never key material.
    pub async fn open(&self, store: &dyn Store, keyring: &Keyring) -> Result<Opened, GuestError> {
        let vmid = self.vmid;
        let Some(container_id) = self.container_id else {
            return Err(GuestError::Setup(format!(
                "VM {vmid} has no ctforge record, so no SSH key of ctforge"
            )));
        };
        let key = store
            .guest_ssh_key(container_id)
            .await
            .map_err(|e| GuestError::Setup(format!("cannot read VM {vmid}'s SSH key: {e}")))?
            .ok_or_else(|| {
                GuestError::Setup(format!(
                    "VM {vmid} has no SSH key of ctforge (it was created before ctforge made one)"
                ))
            })?;
        // A recorded address may carry its prefix length.
        let address = self
            .address
            .as_deref()
            .and_then(|a| a.split('/').next())
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
            GuestError::Setup(format!(
                "VM {vmid}'s address is unknown: it takes one over DHCP and only its guest agent reports it; give it a static address or an image that runs qemu-guest-agent"
            ))
        })?;
        let policy = match (&key.host_key, self.first_contact) {
            (Some(pinned), _) => HostKeyPolicy::Pinned(pinned.clone()),
            (None, true) => HostKeyPolicy::TrustOnFirstUse,
            (None, false) => {
                return Err(GuestError::Setup(format!(
                    "VM {vmid}'s SSH host key was never pinned (ctforge pins it when it first reaches the VM over SSH, during its creation)"
                )));
            }
        };
        let private = keyring
            .open(&key.key_sealed)
            .map_err(|e| GuestError::Setup(format!("cannot open VM {vmid}'s SSH key: {e}")))?;
        let target = SshTarget::new(
            address.clone(),
            SSH_PORT,
            key.login_user.clone(),
            SshAuth::Key {
                private_key_pem: ctforge_ssh::Secret::new(private.expose()),
                passphrase: None,
            },
            policy,
        );
        let session = connect_within(&target, self.wait).await?;
        let pinned_now = match key.host_key {
            Some(_) => None,
            None => {
                let seen = session.host_key_fingerprint().to_owned();
                store
                    .pin_guest_host_key(container_id, &seen)
                    .await
                    .map_err(|e| {
                        GuestError::Setup(format!("cannot pin VM {vmid}'s SSH host key: {e}"))
                    })?;
                Some(seen)
            }
        };
        Ok(Opened {
            channel: DirectChannel::new(Arc::new(session)).with_sudo(key.login_user != "root"),
            pinned_now,
            target: format!("{}@{address}", key.login_user),
        })
    }
}

/// Connects, trying again with a growing pause while the guest refuses or does not answer yet,
/// until `wait` passed; a changed host key or a bad key is final at once.
async fn connect_within(target: &SshTarget, wait: Duration) -> Result<SshSession, GuestError> {
    let started = tokio::time::Instant::now();
    let mut backoff = ctforge_pve::Backoff::new(Duration::from_secs(3));
    loop {
        match SshSession::connect(target).await {
            Ok(session) => return Ok(session),
            Err(e @ (SshError::HostKeyMismatch { .. } | SshError::InvalidKey { .. })) => {
                return Err(e.into());
            }
            Err(e) if started.elapsed() >= wait => return Err(e.into()),
            Err(_) => tokio::time::sleep(backoff.next_pause()).await,
        }
    }
}
