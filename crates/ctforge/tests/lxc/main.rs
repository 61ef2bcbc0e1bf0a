//! Real-LXC tests: provisioning, monitoring and the install script on real containers through the simulator's lxc backend (skipped where LXC is unavailable).

#[path = "../common/mod.rs"]
mod common;

mod cluster_lxc;
mod create_lxc;
mod daytwo_lxc;
mod drift_lxc;
mod examples_lxc;
mod image;
mod images_lxc;
mod install_script;
mod library_lxc;
mod monitor_lxc;
mod vm_real;
