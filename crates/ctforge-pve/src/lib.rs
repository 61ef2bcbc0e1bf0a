//! Proxmox VE HTTP API client for ctforge.
//!
//! Everything ctforge does to a cluster goes through this crate:
//!
//! * [`PveApi`] — an async trait with one method per endpoint ctforge uses, so
//!   the application can hold an `Arc<dyn PveApi>` and swap in fakes in tests;
//! * [`PveClient`] — the real implementation over `reqwest` + `rustls` (ring),
//!   with API-token or ticket authentication ([`Auth`]), certificate pinning
//!   ([`TlsMode`]), retries for idempotent calls ([`RetryPolicy`]) and tracing;
//! * [`login`], [`complete_tfa`] and [`renew`] for the ticket flow, including
//!   TOTP second factors;
//! * [`types`] — tolerant response types and typed property strings
//!   ([`types::NetConfig`], [`types::RootFs`], [`types::MountPoint`],
//!   [`types::Features`]) that round-trip through `FromStr`/`Display`;
//! * [`request`] — pure request builders producing [`RequestSpec`]s, the exact
//!   method, path and form parameters the client sends (used by the schema
//!   contract tests);
//! * [`task`] — waiting for UPID tasks with incremental log streaming;
//! * `contract` (cargo feature `contract`) — a checker that validates
//!   [`RequestSpec`]s against the official `pve-api-schema.json`.
//!
//! Errors are one enum, [`PveError`]; each variant documents whether a retry is
//! safe, and [`PveError::is_retry_safe`] answers it at run time.

#![warn(missing_docs)]

pub mod api;
pub mod auth;
pub mod client;
#[cfg(feature = "contract")]
pub mod contract;
pub mod error;
pub mod request;
pub mod task;
pub mod tls;
pub mod types;

pub use api::{Permissions, PveApi};
pub use auth::{Auth, Capabilities, LoginOutcome, Secret, TfaChallenge, Ticket};
pub use client::{
    ClientConfig, CreateOutcome, PveClient, RetryPolicy, complete_tfa, create_lxc_checked, login,
    renew,
};
pub use error::{PveError, Result};
pub use request::{Method, RequestSpec};
pub use task::{Backoff, TaskExit, TaskProgress, WaitOptions, wait_task};
pub use tls::{TlsMode, fetch_fingerprint};
