//! Named leases ("one action at a time per container"): the [`Locks`] trait and its two
//! implementations, chosen once at start-up — [`DbLocks`] (the `locks` table through the
//! [`Store`], the default) and [`RedisLocks`] (when `redis_url` is configured).
//!
//! Contract, checked for every backend by `tests/locks.rs`:
//! - `try_lock(name, owner, ttl)` succeeds when the lock is free or expired (or already held by
//!   `owner`, which extends it); a lock held by another owner is refused;
//! - `unlock(name, owner)` is a compare-and-delete: only the holder releases, and it answers
//!   whether it did;
//! - a holder that dies never blocks the name beyond its `ttl`.
//!
//! A lock backend that cannot be reached is an error, never a silently skipped lock.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::AppError;
use crate::storage::{Store, StoreError};

/// Why a lock operation could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The database failed.
    #[error("lock table: {0}")]
    Store(#[from] StoreError),
    /// Redis could not be reached or answered an error.
    #[error(
        "redis is unreachable ({0}); actions cannot take their lock — check CTFORGE_REDIS_URL and that Redis is running, then retry"
    )]
    Redis(String),
}

impl From<LockError> for AppError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::Store(e) => e.into(),
            e @ LockError::Redis(_) => AppError::Unavailable(e.to_string()),
        }
    }
}

/// Named leases with an owner token and an expiry.
#[async_trait]
pub trait Locks: Send + Sync + std::fmt::Debug {
    /// `database` or `redis`.
    fn backend(&self) -> &'static str;
    /// Takes `name` for `owner` for `ttl_ms` if it is free, expired or already `owner`'s;
    /// true if `owner` now holds it.
    async fn try_lock(&self, name: &str, owner: &str, ttl_ms: i64) -> Result<bool, LockError>;
    /// Releases `name` only if `owner` holds it; true if it did.
    async fn unlock(&self, name: &str, owner: &str) -> Result<bool, LockError>;
}

/// Leases in the database's `locks` table (expiry measured on the store's clock).
#[derive(Debug, Clone)]
pub struct DbLocks(pub Arc<dyn Store>);

#[async_trait]
impl Locks for DbLocks {
    fn backend(&self) -> &'static str {
        "database"
    }

    async fn try_lock(&self, name: &str, owner: &str, ttl_ms: i64) -> Result<bool, LockError> {
        Ok(self.0.try_lock(name, owner, ttl_ms).await?)
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<bool, LockError> {
        Ok(self.0.unlock(name, owner).await?)
    }
}

/// Longest a Redis lock call may take before it counts as unreachable.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// Takes the key if free (`SET NX PX`), or extends it if the caller already holds it.
const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0";

/// Deletes the key only if it holds the caller's owner token.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// Leases as Redis keys `<prefix><name>` holding the owner token, expiring with `PX`.
#[derive(Clone)]
pub struct RedisLocks {
    conn: redis::aio::ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLocks")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisLocks {
    /// Connects to `url`; every key starts with `prefix` (tests use a random one).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, LockError> {
        let client = redis::Client::open(url).map_err(|e| LockError::Redis(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(3)))
            .set_number_of_retries(2);
        let conn = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::aio::ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| LockError::Redis("connecting timed out".to_owned()))?
        .map_err(|e| LockError::Redis(e.to_string()))?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
        })
    }

    async fn eval(&self, script: &str, name: &str, args: &[String]) -> Result<i64, LockError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script).arg(1).arg(format!("{}{name}", self.prefix));
        for a in args {
            cmd.arg(a);
        }
        let mut conn = self.conn.clone();
        tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<i64>(&mut conn))
            .await
            .map_err(|_| LockError::Redis("no answer within 5 s".to_owned()))?
            .map_err(|e| LockError::Redis(e.to_string()))
    }
}

#[async_trait]
impl Locks for RedisLocks {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn try_lock(&self, name: &str, owner: &str, ttl_ms: i64) -> Result<bool, LockError> {
        let ttl = ttl_ms.max(1).to_string();
        Ok(self.eval(ACQUIRE, name, &[owner.to_owned(), ttl]).await? == 1)
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<bool, LockError> {
        Ok(self.eval(RELEASE, name, &[owner.to_owned()]).await? == 1)
    }
}
