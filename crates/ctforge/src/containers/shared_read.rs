//! Shared Proxmox reads of the dashboard: concurrent listings of one cluster by one identity
//! share a single in-flight `/cluster/resources` (with the identity's effective permissions) and
//! reuse its answer for a short freshness window (`[dashboard] fresh_ms`), so N viewers cost at
//! most one Proxmox call per cluster, identity and window. Views show the read's time ("as of").
//!
//! **Authorization:** a read is shared only by views of the same [`Identity`] — the same user
//! on the same cluster through the same kind of credential (own ticket, or the service token
//! acting for an API-token owner) — so nobody ever sees a guest that Proxmox would hide from
//! them. Failures are shared while in flight but never kept: the next view asks again.
//!
//! The keys pending until restart of running guests (`…/lxc/{vmid}/pending`, one call per
//! guest: `/cluster/resources` does not carry them) are kept per guest for a few freshness
//! windows and asked once while in flight, so the dashboard's pending badges cost one call
//! per guest shown and five windows, however many views there are (Proxmox has no call that
//! answers them for many guests at once).
//! Only guests a view lists (those its identity may see) are looked up or shown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ctforge_pve::types::ClusterResource;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use crate::authz::Effective;

/// Whose view of a cluster a read is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// Cluster id.
    pub cluster_id: i64,
    /// The Proxmox user (`user@realm`) the view is computed for.
    pub username: String,
    /// Through the service token (API-token owners) rather than the user's own ticket.
    pub via_token: bool,
}

/// What one read produced: the guests the identity sees and its rights (for records without a
/// live guest), or why Proxmox did not answer.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The outcome.
    pub result: Result<(Vec<ClusterResource>, Option<Effective>), ReadFailure>,
    /// When the read finished (Unix ms, the state's clock).
    pub as_of: i64,
}

/// Why a read failed.
#[derive(Clone, Debug)]
pub struct ReadFailure {
    /// Shown to the user.
    pub reason: String,
    /// Proxmox could not be reached at all (connection, TLS, timeout).
    pub transport: bool,
}

type Read = Shared<BoxFuture<'static, Arc<Snapshot>>>;

/// A guest's pending keys: read at a time, or being read (every view waiting for the same
/// answer shares the one call; `None` when Proxmox did not answer).
#[derive(Clone)]
enum PendingRead {
    Known(i64, Vec<String>),
    Asking(PendingAsk),
}

/// A `…/pending` call in flight, shared by the views that need its answer.
pub type PendingAsk = Shared<BoxFuture<'static, Option<Vec<String>>>>;

/// What [`SharedReads::pending`] knows of a guest's pending keys.
pub enum PendingLookup {
    /// Read less than the freshness window ago.
    Known(Vec<String>),
    /// Being read: await it, then hand the answer to [`SharedReads::keep_pending`].
    Asking(PendingAsk),
}

/// The shared reads of this process (one per identity; `AppState::reads`).
#[derive(Default)]
pub struct SharedReads {
    reads: Mutex<HashMap<Identity, Read>>,
    /// `(cluster id, vmid)` → (read at, keys pending until restart).
    pending: Mutex<HashMap<(i64, u32), PendingRead>>,
}

impl std::fmt::Debug for SharedReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedReads").finish_non_exhaustive()
    }
}

impl SharedReads {
    /// The read of `identity`: the one in flight, else the last one if it succeeded less than
    /// `fresh_ms` before `now`, else a new one made by `start`.
    pub async fn get(
        &self,
        identity: Identity,
        now: i64,
        fresh_ms: i64,
        start: impl FnOnce() -> BoxFuture<'static, Snapshot>,
    ) -> Arc<Snapshot> {
        let read = {
            let mut reads = self
                .reads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let usable = |read: &Read| match read.peek() {
                None => true,
                Some(done) => done.result.is_ok() && now.saturating_sub(done.as_of) < fresh_ms,
            };
            match reads.get(&identity) {
                Some(read) if usable(read) => read.clone(),
                _ => {
                    // Forget other identities' stale reads on the way (bounded memory).
                    reads.retain(|_, read| usable(read));
                    let read = start().map(Arc::new).boxed().shared();
                    reads.insert(identity, read.clone());
                    read
                }
            }
        };
        read.await
    }

    /// Forgets the reads of `cluster_id` (after ctforge changed a guest there, so the next
    /// view shows it); a read in flight still answers those already waiting for it.
    pub fn invalidate(&self, cluster_id: i64) {
        self.reads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|identity, _| identity.cluster_id != cluster_id);
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(cluster, _), _| *cluster != cluster_id);
    }

    /// The pending keys of a guest: read less than `fresh_ms` before `now`, else the call in
    /// flight for it, else a new call made by `ask` — so concurrent views of one guest cost
    /// one call, not one each.
    pub fn pending(
        &self,
        cluster_id: i64,
        vmid: u32,
        now: i64,
        fresh_ms: i64,
        ask: impl FnOnce() -> BoxFuture<'static, Option<Vec<String>>>,
    ) -> PendingLookup {
        let mut m = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match m.get(&(cluster_id, vmid)) {
            Some(PendingRead::Known(at, keys)) if now.saturating_sub(*at) < fresh_ms => {
                PendingLookup::Known(keys.clone())
            }
            Some(PendingRead::Asking(call)) => PendingLookup::Asking(call.clone()),
            _ => {
                let call = ask().shared();
                m.insert((cluster_id, vmid), PendingRead::Asking(call.clone()));
                PendingLookup::Asking(call)
            }
        }
    }

    /// Keeps the answer of a guest's pending call made at `now` (dropping entries older than
    /// `fresh_ms`, so memory stays bounded by the guests recently shown); no answer is not
    /// kept, so the next view asks again.
    pub fn keep_pending(
        &self,
        cluster_id: i64,
        vmid: u32,
        now: i64,
        fresh_ms: i64,
        keys: Option<Vec<String>>,
    ) {
        let mut m = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.retain(|_, read| match read {
            PendingRead::Known(at, _) => now.saturating_sub(*at) < fresh_ms,
            PendingRead::Asking(_) => true,
        });
        match keys {
            Some(keys) => {
                m.insert((cluster_id, vmid), PendingRead::Known(now, keys));
            }
            None => {
                if matches!(m.get(&(cluster_id, vmid)), Some(PendingRead::Asking(_))) {
                    m.remove(&(cluster_id, vmid));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn id(user: &str) -> Identity {
        Identity {
            cluster_id: 1,
            username: user.to_owned(),
            via_token: false,
        }
    }

    fn counting(calls: &Arc<AtomicUsize>, at: i64, ok: bool) -> BoxFuture<'static, Snapshot> {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Snapshot {
                result: if ok {
                    Ok((Vec::new(), None))
                } else {
                    Err(ReadFailure {
                        reason: "down".into(),
                        transport: true,
                    })
                },
                as_of: at,
            }
        }
        .boxed()
    }

    #[tokio::test]
    async fn concurrent_views_share_one_read_and_reuse_it_while_fresh() {
        let reads = SharedReads::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let views =
            (0..8).map(|_| reads.get(id("alice@pve"), 1000, 2000, || counting(&calls, 1000, true)));
        let got = futures_util::future::join_all(views).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(got.iter().all(|s| s.as_of == 1000));
        // Still fresh 1.9 s later; stale at 2 s.
        reads
            .get(id("alice@pve"), 2900, 2000, || counting(&calls, 2900, true))
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let s = reads
            .get(id("alice@pve"), 3000, 2000, || counting(&calls, 3000, true))
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(s.as_of, 3000);
    }

    /// Looks up guest 100's pending keys at `now` as a view does: known, or the shared call
    /// (`answer`, counted) awaited and kept.
    async fn pending_view(
        reads: &SharedReads,
        calls: &Arc<AtomicUsize>,
        now: i64,
        answer: Option<Vec<String>>,
    ) -> Option<Vec<String>> {
        let ask = {
            let calls = calls.clone();
            move || -> BoxFuture<'static, Option<Vec<String>>> {
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    answer
                }
                .boxed()
            }
        };
        match reads.pending(1, 100, now, 10_000, ask) {
            PendingLookup::Known(keys) => Some(keys),
            PendingLookup::Asking(call) => {
                let keys = call.await;
                reads.keep_pending(1, 100, now, 10_000, keys.clone());
                keys
            }
        }
    }

    #[tokio::test]
    async fn concurrent_views_of_a_guest_share_one_pending_call_and_failures_are_not_kept() {
        let reads = SharedReads::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let keys = Some(vec!["memory".to_owned()]);
        let views = (0..8).map(|_| pending_view(&reads, &calls, 0, keys.clone()));
        let got = futures_util::future::join_all(views).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(got.iter().all(|k| *k == keys));
        // Kept for the window, asked again after it.
        assert_eq!(pending_view(&reads, &calls, 9_999, None).await, keys);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(pending_view(&reads, &calls, 10_000, None).await, None);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // No answer is not kept: the next view asks again.
        assert_eq!(
            pending_view(&reads, &calls, 10_001, keys.clone()).await,
            keys
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn identities_never_share_and_failures_are_not_kept() {
        let reads = SharedReads::default();
        let calls = Arc::new(AtomicUsize::new(0));
        reads
            .get(id("alice@pve"), 0, 2000, || counting(&calls, 0, true))
            .await;
        reads
            .get(id("bob@pve"), 0, 2000, || counting(&calls, 0, true))
            .await;
        let token = Identity {
            via_token: true,
            ..id("alice@pve")
        };
        reads
            .get(token, 0, 2000, || counting(&calls, 0, true))
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        reads
            .get(id("carol@pve"), 0, 2000, || counting(&calls, 0, false))
            .await;
        reads
            .get(id("carol@pve"), 1, 2000, || counting(&calls, 1, true))
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }
}
