//! Test-controlled holds: a command run in a CT or a Proxmox task waits at a [`Hold`] until
//! the test releases it, so a test chooses where a job is interrupted (and knows it got
//! there) instead of racing the clock.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Where a hold stops things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldPoint {
    /// A command run in a CT (`pct exec`) whose command line contains this text; it waits
    /// before it runs.
    Exec(String),
    /// A task of this type (`vzcreate`, `vzstart`, …); its body waits before it starts.
    Task(String),
}

#[derive(Debug)]
struct HoldInner {
    point: HoldPoint,
    reached: watch::Sender<u32>,
    released: watch::Sender<bool>,
}

/// One hold; cheap to clone. Everything that reaches it waits until [`Hold::release`].
#[derive(Debug, Clone)]
pub struct Hold {
    inner: Arc<HoldInner>,
}

impl Hold {
    /// Resolves once something has reached the hold (at once if it already has).
    pub async fn reached(&self) {
        let mut rx = self.inner.reached.subscribe();
        let _ = rx.wait_for(|n| *n > 0).await;
    }

    /// How many commands or tasks reached the hold so far.
    pub fn times_reached(&self) -> u32 {
        *self.inner.reached.borrow()
    }

    /// Lets everything waiting here (and everything that comes later) go on.
    pub fn release(&self) {
        self.inner.released.send_replace(true);
    }

    fn is_released(&self) -> bool {
        *self.inner.released.borrow()
    }

    async fn pass(&self) {
        self.inner.reached.send_modify(|n| *n += 1);
        let mut rx = self.inner.released.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }
}

/// The holds of one simulator.
#[derive(Debug, Default)]
pub struct Holds {
    list: Mutex<Vec<Hold>>,
}

impl Holds {
    /// Adds a hold at `point`.
    pub fn add(&self, point: HoldPoint) -> Hold {
        let hold = Hold {
            inner: Arc::new(HoldInner {
                point,
                reached: watch::Sender::new(0),
                released: watch::Sender::new(false),
            }),
        };
        if let Ok(mut l) = self.list.lock() {
            l.retain(|h| !h.is_released());
            l.push(hold.clone());
        }
        hold
    }

    fn matching(&self, f: impl Fn(&HoldPoint) -> bool) -> Vec<Hold> {
        self.list
            .lock()
            .map(|l| {
                l.iter()
                    .filter(|h| !h.is_released() && f(&h.inner.point))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits at every unreleased hold matching a CT command line.
    pub(crate) async fn exec(&self, command_line: &str) {
        for h in
            self.matching(|p| matches!(p, HoldPoint::Exec(s) if command_line.contains(s.as_str())))
        {
            h.pass().await;
        }
    }

    /// Waits at every unreleased hold on a task type.
    pub(crate) async fn task(&self, ttype: &str) {
        for h in self.matching(|p| matches!(p, HoldPoint::Task(t) if t == ttype)) {
            h.pass().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waits_until_released() {
        let holds = Arc::new(Holds::default());
        let hold = holds.add(HoldPoint::Exec("apt-get".into()));
        let h2 = holds.clone();
        let waiting = tokio::spawn(async move { h2.exec("sh -c 'apt-get install x'").await });
        tokio::time::timeout(Duration::from_secs(10), hold.reached())
            .await
            .expect("the command reached the hold");
        assert!(!waiting.is_finished());
        holds.exec("echo unrelated").await;
        hold.release();
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("released")
            .expect("task");
        holds.exec("apt-get again").await; // released holds no longer stop anything
        assert_eq!(hold.times_reached(), 1);
    }
}
