//! Inside the guest: everything ctforge runs in a container and reads back, shared by
//! provisioning (the `create_container` job) and monitoring, so neither imports the other.
//!
//! - [`agent`]: the guest-agent channel into a QEMU VM (`agent/exec`, `exec-status`,
//!   `file-write`), the same [`ctforge_ssh::RemoteExec`] as the `pct` channel.
//! - [`fallback`]: SSH into a VM whose guest agent is absent (its own sealed key, its host
//!   key pinned on first contact), the same [`ctforge_ssh::RemoteExec`] again.
//! - [`connector`]: the [`GuestConnector`] trait carried in `AppState` (SSH to the node and
//!   `pct exec` / `pct push` today; the VM guest agent later), its SSH implementation and an
//!   in-process fake for unit tests.
//! - [`nodes`]: per-node SSH — the node holding each guest, node addresses and pinned host
//!   keys, one shared connection per node.
//! - [`commands`]: every in-guest command line, built from plan steps with proper quoting.
//! - [`parse`]: parsers of what those commands print.
//! - [`probe`]: the batched monitoring probe and its per-part [`probe::Report`].

pub mod agent;
pub mod commands;
pub mod connector;
pub mod fallback;
pub mod nodes;
pub mod parse;
pub mod probe;

pub use connector::{FakeConnector, GuestConnector, GuestError, GuestSession, SshConnector};
