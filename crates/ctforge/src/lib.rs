//! ctforge: turns templates into provisioned LXC containers on Proxmox VE and manages them.
//!
//! The binary (`main.rs`) only parses the command line and calls into this library; see
//! ARCHITECTURE.md for the map. Entry points: [`cli::run`] and [`startup::App`].

pub mod api;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod backup;
pub mod buckets;
pub mod cli;
pub mod cli_api;
pub mod cli_ops;
pub mod cli_profile;
pub mod clock;
pub mod clusters;
pub mod config;
pub mod containers;
pub mod ct_client;
pub mod ct_daytwo;
pub mod ct_progress;
pub mod demo;
pub mod error;
pub mod events;
pub mod fleet;
pub mod guest;
pub mod images;
pub mod jobs;
pub mod locks;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod presets;
pub mod provisioning;
pub mod pve;
pub mod roles;
pub mod routes;
pub mod secrets;
pub mod startup;
pub mod state;
pub mod status;
pub mod storage;
pub mod telemetry;
pub mod templates;
pub mod tokens;
pub mod web;

#[cfg(test)]
mod tidy;

/// Installs ring as the process-wide rustls crypto provider (once; later calls do nothing).
///
/// Every TLS user in the workspace (reqwest, the Proxmox client, the simulator, russh) is
/// built on ring, so exactly one provider exists and rustls never has to guess.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
