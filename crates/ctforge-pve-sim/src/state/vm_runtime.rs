//! Runtime facts of VMs that their config does not hold: when the guest agent starts answering
//! (the guest boots after `qmstart`), whether a VM is paused, and the guest agent's table of
//! commands started with `guest-exec` (polled with `guest-exec-status`, forgotten once their
//! exit was reported, as qemu-ga does). Not persisted: a restarted simulator has booted VMs.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::*;
use crate::backend::ExecChunk;

/// A command started through the guest agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentExec {
    /// Whether it ended.
    pub exited: bool,
    /// Its exit code once it ended.
    pub exitcode: Option<u32>,
    /// Standard output so far.
    pub out: Vec<u8>,
    /// Standard error so far.
    pub err: Vec<u8>,
}

#[derive(Default)]
pub(super) struct VmRuntime {
    ready_at: Mutex<HashMap<u32, Instant>>,
    paused: Mutex<BTreeSet<u32>>,
    execs: Arc<Mutex<HashMap<(u32, u32), AgentExec>>>,
    next_pid: AtomicU32,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SimState {
    /// The guest agent of `vmid` answers `boot` from now (the guest boots).
    pub fn set_agent_ready_after(&self, vmid: u32, boot: Duration) {
        locked(&self.inner.vms.ready_at).insert(vmid, Instant::now() + boot);
    }

    /// Whether the guest agent of a running VM answers: a real backend asks it; the memory
    /// backend's agent answers once the boot delay passed.
    pub fn agent_answers(&self, vmid: u32) -> bool {
        if let Some(real) = self.backend().vm_agent_ping(vmid) {
            return real;
        }
        locked(&self.inner.vms.ready_at)
            .get(&vmid)
            .is_none_or(|at| Instant::now() >= *at)
    }

    /// Forget a stopped or destroyed VM's runtime state (boot, pause, agent commands).
    pub fn forget_vm_runtime(&self, vmid: u32) {
        locked(&self.inner.vms.ready_at).remove(&vmid);
        locked(&self.inner.vms.paused).remove(&vmid);
        locked(&self.inner.vms.execs).retain(|(v, _), _| *v != vmid);
    }

    /// Whether a running VM is paused (`qmpause`).
    pub fn vm_paused(&self, vmid: u32) -> bool {
        locked(&self.inner.vms.paused).contains(&vmid)
    }

    /// Pause or resume a VM.
    pub fn set_vm_paused(&self, vmid: u32, paused: bool) {
        let mut p = locked(&self.inner.vms.paused);
        if paused {
            p.insert(vmid);
        } else {
            p.remove(&vmid);
        }
    }

    /// `guest-exec`: run `argv` with `stdin` in the VM through the backend; returns the pid to
    /// poll. Output is collected as the command produces it.
    pub fn agent_exec(&self, vmid: u32, argv: Vec<String>, stdin: Vec<u8>) -> u32 {
        let pid = 1000 + self.inner.vms.next_pid.fetch_add(1, Ordering::Relaxed) % 30000;
        let execs = self.inner.vms.execs.clone();
        locked(&execs).insert((vmid, pid), AgentExec::default());
        let backend = self.backend().clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let fut = backend.exec(vmid, argv, stdin, tx);
        let execs2 = execs.clone();
        tokio::spawn(async move {
            let collect = async {
                while let Some(chunk) = rx.recv().await {
                    let mut m = locked(&execs2);
                    let Some(e) = m.get_mut(&(vmid, pid)) else {
                        continue;
                    };
                    match chunk {
                        ExecChunk::Stdout(b) => e.out.extend_from_slice(&b),
                        ExecChunk::Stderr(b) => e.err.extend_from_slice(&b),
                    }
                }
            };
            let (code, ()) = tokio::join!(fut, collect);
            if let Some(e) = locked(&execs).get_mut(&(vmid, pid)) {
                e.exited = true;
                e.exitcode = Some(code);
            }
        });
        pid
    }

    /// `guest-exec-status`: the command's state; an ended command is forgotten once reported.
    pub fn agent_exec_status(&self, vmid: u32, pid: u32) -> Option<AgentExec> {
        let mut m = locked(&self.inner.vms.execs);
        let e = m.get(&(vmid, pid))?.clone();
        if e.exited {
            m.remove(&(vmid, pid));
        }
        Some(e)
    }
}
