//! The provisioning channel's test binary: quoting, SSH against the simulator, and what traces may show.

#[path = "../common/mod.rs"]
mod common;

mod quote;
mod sim;
mod tracing;
