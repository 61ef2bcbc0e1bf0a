//! The simulator's test binary: HTTP behaviour, the official schema, the SSH endpoint and the lxc backend end to end. One binary so the simulator is linked once.

#[path = "../common/mod.rs"]
mod common;

mod daytwo;
mod http;
mod lxc_e2e;
mod nodes;
mod qemu;
mod schema;
mod ssh;
mod vm_real;
