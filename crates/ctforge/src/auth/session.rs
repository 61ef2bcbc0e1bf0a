//! Session storage: the database by default, Redis in the scale-out profile. Both keep the same
//! sealed [`SessionRow`]; the cookie carries only a random id whose SHA-256 is the key.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use redis::AsyncCommands;
use sha2::{Digest, Sha256};

use crate::storage::model::SessionRow;
use crate::storage::{Store, StoreError};

/// Name of the session cookie.
pub const COOKIE: &str = "ctforge_session";

/// The `Set-Cookie` value for a session (HttpOnly, SameSite=Lax; `Secure` as
/// [`crate::config::ServerConfig::secure_cookies`] decides).
pub fn session_cookie(name: &str, token: &str, max_age_s: i64, secure: bool) -> String {
    format!(
        "{name}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        max_age_s.max(0),
        if secure { "; Secure" } else { "" }
    )
}

/// A session store failure.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Database error.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Redis error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Stored data could not be decoded.
    #[error("session data is corrupt")]
    Corrupt,
}

/// Where sessions live.
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Stores (or replaces) a session.
    async fn put(&self, session: &SessionRow, now_ms: i64) -> Result<(), SessionError>;
    /// An unexpired session.
    async fn get(&self, id_hash: &str, now_ms: i64) -> Result<Option<SessionRow>, SessionError>;
    /// Deletes a session.
    async fn delete(&self, id_hash: &str) -> Result<(), SessionError>;
    /// Number of live sessions.
    async fn count(&self, now_ms: i64) -> Result<i64, SessionError>;
}

/// Sessions in the database.
#[derive(Debug)]
pub struct DbSessions(pub Arc<dyn Store>);

#[async_trait]
impl SessionStore for DbSessions {
    async fn put(&self, session: &SessionRow, _now_ms: i64) -> Result<(), SessionError> {
        Ok(self.0.put_session(session).await?)
    }

    async fn get(&self, id_hash: &str, _now_ms: i64) -> Result<Option<SessionRow>, SessionError> {
        match self.0.get_session(id_hash).await {
            Ok(row) => Ok(Some(row)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, id_hash: &str) -> Result<(), SessionError> {
        Ok(self.0.delete_session(id_hash).await?)
    }

    async fn count(&self, _now_ms: i64) -> Result<i64, SessionError> {
        Ok(self.0.count_sessions().await?)
    }
}

/// Sessions in Redis, each a key with a TTL equal to its remaining lifetime.
#[derive(Clone)]
pub struct RedisSessions {
    conn: redis::aio::ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessions")
            .field("prefix", &self.prefix)
            .finish()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RedisRow {
    username: String,
    data_sealed: String,
    csrf_token: String,
    expires_at: i64,
    created_at: i64,
}

impl RedisSessions {
    /// Connects to Redis; `prefix` namespaces keys (tests use a random one).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, SessionError> {
        let client = redis::Client::open(url)?;
        let conn = redis::aio::ConnectionManager::new(client).await?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
        })
    }

    fn key(&self, id_hash: &str) -> String {
        format!("{}session:{id_hash}", self.prefix)
    }
}

#[async_trait]
impl SessionStore for RedisSessions {
    async fn put(&self, s: &SessionRow, now_ms: i64) -> Result<(), SessionError> {
        let ttl = u64::try_from(s.expires_at - now_ms).unwrap_or(0);
        if ttl == 0 {
            return self.delete(&s.id_hash).await;
        }
        let row = RedisRow {
            username: s.username.clone(),
            data_sealed: s.data_sealed.clone(),
            csrf_token: s.csrf_token.clone(),
            expires_at: s.expires_at,
            created_at: s.created_at,
        };
        let json = serde_json::to_string(&row).map_err(|_| SessionError::Corrupt)?;
        let mut conn = self.conn.clone();
        let _: () = conn.pset_ex(self.key(&s.id_hash), json, ttl).await?;
        Ok(())
    }

    async fn get(&self, id_hash: &str, now_ms: i64) -> Result<Option<SessionRow>, SessionError> {
        let mut conn = self.conn.clone();
        let json: Option<String> = conn.get(self.key(id_hash)).await?;
        let Some(json) = json else { return Ok(None) };
        let row: RedisRow = serde_json::from_str(&json).map_err(|_| SessionError::Corrupt)?;
        if row.expires_at <= now_ms {
            return Ok(None);
        }
        Ok(Some(SessionRow {
            id_hash: id_hash.to_owned(),
            username: row.username,
            data_sealed: row.data_sealed,
            csrf_token: row.csrf_token,
            expires_at: row.expires_at,
            created_at: row.created_at,
        }))
    }

    async fn delete(&self, id_hash: &str) -> Result<(), SessionError> {
        let mut conn = self.conn.clone();
        let _: () = conn.del(self.key(id_hash)).await?;
        Ok(())
    }

    async fn count(&self, _now_ms: i64) -> Result<i64, SessionError> {
        let mut conn = self.conn.clone();
        let mut iter: redis::AsyncIter<String> =
            conn.scan_match(format!("{}session:*", self.prefix)).await?;
        let mut n = 0;
        while let Some(item) = iter.next_item().await {
            item?;
            n += 1;
        }
        Ok(n)
    }
}

/// A new random token (256 bits, URL-safe base64).
pub fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

/// SHA-256 hex of a token: what the stores keep instead of the token.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
