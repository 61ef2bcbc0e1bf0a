//! `ctforge-ssh`: the provisioning channel of ctforge.
//!
//! The Proxmox API has no exec endpoint, so provisioning runs commands in a
//! container with `pct exec` and writes files with `pct push`, over SSH to the
//! Proxmox node ([`PctChannel`]), or over SSH straight into the CT
//! ([`DirectChannel`]). Both implement [`RemoteExec`]; [`FakeRemote`] is a
//! scripted implementation for fast tests.
//!
//! * One [`SshSession`] (one TCP connection, ring crypto via russh) per job,
//!   reused for every command: each command is a new channel on it.
//! * Every command line is built with [`quote`] / [`command_line`] (POSIX
//!   single quotes), so names with spaces, quotes, `$()`, `;` or newlines
//!   arrive intact.
//! * Host keys are pinned ([`HostKeyPolicy::Pinned`]); a changed key fails
//!   with [`SshError::HostKeyMismatch`]. [`fetch_host_key`] shows the key of a
//!   node before it is trusted.
//! * Output lines stream to a callback as they arrive; exit codes are data
//!   ([`ExecOutput`]), not errors.
//! * Every command can be bounded inside the container ([`PctOptions::guest_timeout`]:
//!   `timeout -k` kills it there) and on the channel (a backstop deadline); keep-alives
//!   detect a dead connection, and a session whose connection died is reopened once when
//!   the next command opens its channel.
//! * Commands are traced (`tracing`) with duration and truncated text; pushed
//!   content and credentials never appear in logs or errors.

mod direct;
mod error;
mod fake;
mod keys;
mod pct;
mod quote;
mod remote;
mod session;
mod target;

pub use direct::DirectChannel;
pub use error::SshError;
pub use fake::{FakeRemote, FakeReply, PushedFile};
pub use keys::{
    ed25519_key_pair, private_key_fingerprint, public_key_fingerprint, same_fingerprint,
};
pub use pct::{BACKSTOP, KILL_GRACE, PctChannel, PctOptions, PushMode, Shell};
pub use quote::{command_line, quote};
pub use remote::{DEFAULT_TAIL_LINES, ExecOutput, OutputLine, RemoteExec, Stream};
pub use session::{SshSession, fetch_host_key};
pub use target::{HostKeyPolicy, Secret, SshAuth, SshTarget};
