//! The lock conformance suite: the same story against every [`Locks`] backend on real servers
//! — the database lease on SQLite and PostgreSQL, and Redis — plus what a Redis outage looks
//! like (a 503 naming Redis, never a skipped lock).

#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use ctforge::clock::ManualClock;
use ctforge::error::AppError;
use ctforge::locks::{DbLocks, LockError, Locks, RedisLocks};

fn redis_url() -> String {
    std::env::var("CTFORGE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A random key prefix, so tests sharing the Redis server never see each other's keys.
fn prefix() -> String {
    format!("ctforge-test-{}:lock:", uuid::Uuid::new_v4().simple())
}

/// A backend under test and how to let `ms` milliseconds pass for it.
struct Backend {
    locks: Arc<dyn Locks>,
    clock: Option<Arc<ManualClock>>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    async fn db(kind: &str) -> Self {
        let (store, clock, dir) = common::fresh_store(kind).await;
        Self {
            locks: Arc::new(DbLocks(store)),
            clock: Some(clock),
            _dir: Some(dir),
        }
    }

    async fn redis() -> Self {
        let url = redis_url();
        let locks = RedisLocks::connect(&url, &prefix())
            .await
            .unwrap_or_else(|e| panic!("Redis must run for the tests ({url}): {e}"));
        Self {
            locks: Arc::new(locks),
            clock: None,
            _dir: None,
        }
    }

    /// The database measures expiry on the store's clock, Redis on its own.
    async fn pass(&self, ms: u64) {
        match &self.clock {
            Some(clock) => clock.advance(i64::try_from(ms).unwrap()),
            None => tokio::time::sleep(Duration::from_millis(ms)).await,
        }
    }
}

async fn story(b: Backend) {
    let l = b.locks.as_ref();
    let ttl = 400;
    // Exclusive acquisition.
    assert!(l.try_lock("ct:sim:100", "o1", ttl).await.unwrap());
    assert!(
        !l.try_lock("ct:sim:100", "o2", ttl).await.unwrap(),
        "a held lock refuses another owner"
    );
    assert!(
        l.try_lock("ct:sim:101", "o2", ttl).await.unwrap(),
        "names are independent"
    );
    // Only the owner releases.
    assert!(
        !l.unlock("ct:sim:100", "o2").await.unwrap(),
        "a wrong owner cannot release"
    );
    assert!(
        !l.try_lock("ct:sim:100", "o2", ttl).await.unwrap(),
        "still held after the wrong owner's release"
    );
    assert!(
        l.try_lock("ct:sim:100", "o1", ttl).await.unwrap(),
        "the holder may take it again (extends it)"
    );
    // Expiry allows takeover; the old owner then cannot release the new owner's lock.
    b.pass(u64::try_from(ttl).unwrap() + 150).await;
    assert!(
        l.try_lock("ct:sim:100", "o2", ttl).await.unwrap(),
        "an expired lock is taken over"
    );
    assert!(
        !l.unlock("ct:sim:100", "o1").await.unwrap(),
        "the expired owner cannot release the new owner's lock"
    );
    assert!(!l.try_lock("ct:sim:100", "o3", ttl).await.unwrap());
    // Release lets the next one in.
    assert!(l.unlock("ct:sim:100", "o2").await.unwrap());
    assert!(
        !l.unlock("ct:sim:100", "o2").await.unwrap(),
        "releasing twice answers false"
    );
    assert!(
        l.try_lock("ct:sim:100", "o3", ttl).await.unwrap(),
        "released: the next owner gets it"
    );
    assert!(l.unlock("ct:sim:100", "o3").await.unwrap());
    // Fifty owners racing for one name: exactly one wins.
    let racers = (0..50).map(|i| {
        let locks = b.locks.clone();
        tokio::spawn(async move {
            locks
                .try_lock("ct:sim:race", &format!("racer-{i}"), 60_000)
                .await
                .unwrap()
        })
    });
    let won = futures_util::future::join_all(racers)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(won, 1, "exactly one of 50 concurrent owners holds the lock");
}

#[tokio::test]
async fn lock_story_sqlite() {
    let b = Backend::db("sqlite").await;
    assert_eq!(b.locks.backend(), "database");
    story(b).await;
}

#[tokio::test]
async fn lock_story_postgres() {
    story(Backend::db("postgres").await).await;
}

#[tokio::test]
async fn lock_story_redis() {
    let b = Backend::redis().await;
    assert_eq!(b.locks.backend(), "redis");
    story(b).await;
}

#[tokio::test]
async fn redis_keys_carry_the_prefix_and_expire() {
    let url = redis_url();
    let prefix = prefix();
    let locks = RedisLocks::connect(&url, &prefix).await.unwrap();
    assert!(locks.try_lock("ct:sim:7", "me", 5_000).await.unwrap());
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{prefix}ct:sim:7");
    let owner: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(owner.as_deref(), Some("me"));
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=5_000).contains(&ttl), "PX expiry set: {ttl}");
    assert!(locks.unlock("ct:sim:7", "me").await.unwrap());
    let gone: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(gone, None, "released keys are deleted");
}

/// A TCP relay to Redis that can be cut, to see what an outage looks like to the locks.
async fn relay() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let task = tokio::spawn(async move {
        let mut pipes = tokio::task::JoinSet::new();
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            pipes.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (format!("redis://127.0.0.1:{port}"), task)
}

#[tokio::test]
async fn redis_outage_is_a_503_naming_redis() {
    let (url, relay_task) = relay().await;
    let locks = RedisLocks::connect(&url, &prefix()).await.unwrap();
    assert!(locks.try_lock("ct:sim:1", "a", 10_000).await.unwrap());
    // Cut Redis off: the relay (and every connection through it) goes away.
    relay_task.abort();
    let _ = relay_task.await;
    let started = std::time::Instant::now();
    let error = locks.try_lock("ct:sim:2", "b", 10_000).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "fails promptly: {:?}",
        started.elapsed()
    );
    assert!(matches!(error, LockError::Redis(_)), "{error:?}");
    let app_error = AppError::from(error);
    assert_eq!(app_error.status(), 503);
    let text = app_error.to_string();
    assert!(text.contains("redis is unreachable"), "{text}");
    assert!(text.contains("CTFORGE_REDIS_URL"), "{text}");

    // Nothing listens there any more: connecting fails with the same clear error.
    let error = RedisLocks::connect(&url, &prefix()).await.unwrap_err();
    assert!(
        error.to_string().contains("redis is unreachable"),
        "{error}"
    );
}
