//! Jobs made of items (bulk actions, fleet applies): [`run_all`] runs the items a few at a time
//! and [`Reports`] lets each one report its own outcome, in turns.
//!
//! Why items report from their own futures: an item's future can be suspended inside one of
//! its store writes, holding SQLite's writer lock (or, on PostgreSQL, a row another write
//! waits for). Were the outcomes consumed in a loop that awaits each report between polls of
//! the items, that report would wait for the suspended item, which is only polled once the
//! report is done: "database is locked" after SQLite's busy timeout, a hang on PostgreSQL.
//! Here every item and every report is polled together.

use futures_util::StreamExt;
use futures_util::future::BoxFuture;

use super::StepError;

/// Runs `items`, at most `concurrency` at once, every one polled while any other awaits.
pub async fn run_all(items: Vec<BoxFuture<'_, ()>>, concurrency: usize) {
    futures_util::stream::iter(items)
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<()>>()
        .await;
}

/// What the items of one job report into (`S`: their results so far), one report at a time so
/// that each stored summary includes every earlier one, and the first report that failed.
#[derive(Debug)]
pub struct Reports<S> {
    state: tokio::sync::Mutex<S>,
    trouble: std::sync::Mutex<Option<StepError>>,
}

impl<S> Reports<S> {
    /// Reports starting from `state`.
    pub fn new(state: S) -> Self {
        Self {
            state: tokio::sync::Mutex::new(state),
            trouble: std::sync::Mutex::new(None),
        }
    }

    /// Whether a report failed (database down, lease lost): the job starts nothing new and
    /// reports nothing more, but lets what runs finish.
    pub fn troubled(&self) -> bool {
        self.trouble.lock().map_or(true, |t| t.is_some())
    }

    /// The turn to report, or `None` once a report failed.
    pub async fn turn(&self) -> Option<tokio::sync::MutexGuard<'_, S>> {
        if self.troubled() {
            return None;
        }
        let guard = self.state.lock().await;
        (!self.troubled()).then_some(guard)
    }

    /// Keeps `e` when it is the first failed report.
    pub fn failed(&self, e: StepError) {
        if let Ok(mut t) = self.trouble.lock() {
            t.get_or_insert(e);
        }
    }

    /// The state reported into and the first failed report.
    pub fn into_parts(self) -> (S, Option<StepError>) {
        let trouble = self
            .trouble
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (self.state.into_inner(), trouble)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::Notify;

    use super::*;

    /// The shape of the bug: item B takes its turn to report while item A is in the middle of
    /// its own work, and B's report can only finish once A goes on (as a store write waits for
    /// the writer lock A holds). Polled together, both finish; were A not polled while B's
    /// report is awaited (or the items run one after the other), neither would.
    #[tokio::test]
    async fn a_report_never_starves_an_item_in_flight() {
        let reports = Reports::new(Vec::<&str>::new());
        let (a_holds, b_reports, a_released) = (Notify::new(), Notify::new(), Notify::new());
        let (r, a_holds, b_reports, a_released) = (&reports, &a_holds, &b_reports, &a_released);
        let a: BoxFuture<'_, ()> = Box::pin(async move {
            // A holds "the lock" until B is in its report.
            a_holds.notify_one();
            b_reports.notified().await;
            a_released.notify_one();
            if let Some(mut done) = r.turn().await {
                done.push("a");
            }
        });
        let b: BoxFuture<'_, ()> = Box::pin(async move {
            a_holds.notified().await;
            let Some(mut done) = r.turn().await else {
                return;
            };
            b_reports.notify_one();
            // The report's write waits for A.
            a_released.notified().await;
            done.push("b");
        });
        tokio::time::timeout(Duration::from_secs(5), run_all(vec![a, b], 2))
            .await
            .expect("the report starved the item in flight");
        let (done, trouble) = reports.into_parts();
        assert_eq!(done, ["b", "a"]);
        assert!(trouble.is_none());
    }

    #[tokio::test]
    async fn after_a_failed_report_nothing_more_is_reported() {
        let reports = Reports::new(0_u32);
        *reports.turn().await.unwrap() += 1;
        reports.failed(StepError::failed("database down"));
        reports.failed(StepError::failed("later"));
        assert!(reports.troubled());
        assert!(reports.turn().await.is_none());
        let (count, trouble) = reports.into_parts();
        assert_eq!(count, 1);
        assert_eq!(trouble.unwrap().to_string(), "database down");
    }
}
