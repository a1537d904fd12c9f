//! Revoked tokens (`jti`) and token families (`fam`), and refresh tokens already used.
//!
//! Checks on the request path read a local map only. With `store: redis` every revocation is
//! also written to Redis (a sorted set ordered by a Redis-side counter) and each instance pulls
//! the entries it has not seen every `SYNC_EVERY`, so a logout on one instance reaches the others
//! within that time. If Redis is unreachable, checks go on with the revocations known locally,
//! while refresh and logout answer 503, since they need the shared store.

use crate::redis::{RedisError, RedisHandle};
use redis::{AsyncCommands, Script};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

pub const SYNC_EVERY: Duration = Duration::from_millis(250);
const PREFIX: &str = "gw:auth";
/// The revocation list, its expiry index and its sequence counter: one script writes all three,
/// so they share a hash tag (one cluster slot).
const REVOKED: &str = "{gw:auth}:revoked";
const REVOKED_EXP: &str = "{gw:auth}:revoked:exp";
const REVOKED_SEQ: &str = "{gw:auth}:revoked:seq";
/// Their names before they had a hash tag, taken over by the first sync.
const UNTAGGED: [(&str, &str); 3] = [
    ("gw:auth:revoked", REVOKED),
    ("gw:auth:revoked:exp", REVOKED_EXP),
    ("gw:auth:revoked:seq", REVOKED_SEQ),
];

/// The store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("revocation store: {0}")]
    Redis(#[from] RedisError),
    #[error("revocation store: lock poisoned")]
    Poisoned,
    #[error("revocation store: {MAX_USED} spent refresh tokens are remembered, none expired yet")]
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Token,
    Family,
}

pub struct RedisStore {
    redis: Arc<RedisHandle>,
    /// Highest sequence number pulled so far.
    seen: Mutex<i64>,
    /// The keys of an older version were renamed (or there were none).
    renamed: std::sync::atomic::AtomicBool,
}

/// Refresh token ids already spent (memory store), until they expire.
#[derive(Default)]
struct Used {
    /// `jti` → its `exp`.
    ids: HashMap<String, u64>,
    /// The second expired ids were last dropped: at most one pass a second, not one a refresh.
    pruned_at: u64,
}

/// Spent refresh tokens remembered at most (memory store); past it refresh answers 503 until
/// some expire, rather than forgetting one (which would allow its reuse).
const MAX_USED: usize = 1_000_000;

enum Backend {
    Memory,
    Redis(Box<RedisStore>),
}

pub struct Revocations {
    tokens: RwLock<HashMap<String, u64>>,
    families: RwLock<HashMap<String, u64>>,
    /// Users removed from the config: subject → (tokens issued at or before this second are
    /// revoked, until this expiry). Adding the user back (same name, same hash, so the same
    /// epoch) does not bring those tokens back.
    users: RwLock<HashMap<String, (u64, u64)>>,
    used: std::sync::Mutex<Used>,
    backend: Backend,
    /// What this store was built from, so a reload with the same settings keeps it.
    pub settings: String,
}

static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3], 'LIMIT', 0, 500)
if #expired > 0 then
  redis.call('ZREM', KEYS[1], unpack(expired))
  redis.call('ZREM', KEYS[2], unpack(expired))
end
local seq = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[1], seq, ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return seq
",
    )
});

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Revocations {
    pub fn memory() -> Revocations {
        Revocations::with(Backend::Memory, "memory".into())
    }

    /// Revocations shared through `redis`.
    pub fn redis(redis: Arc<RedisHandle>) -> Revocations {
        let settings = format!("redis {}", redis.url());
        let store = RedisStore {
            redis,
            seen: Mutex::new(0),
            renamed: std::sync::atomic::AtomicBool::new(false),
        };
        Revocations::with(Backend::Redis(Box::new(store)), settings)
    }

    /// Takes over what `previous` knows locally (revoked tokens and families, spent refresh
    /// tokens), so a reload that changes the store forgets no revocation.
    pub fn carry_over(self, previous: &Revocations) -> Revocations {
        for (from, to) in [
            (&previous.tokens, &self.tokens),
            (&previous.families, &self.families),
        ] {
            if let (Ok(from), Ok(mut to)) = (from.read(), to.write()) {
                to.extend(from.iter().map(|(k, v)| (k.clone(), *v)));
            }
        }
        if let (Ok(from), Ok(mut to)) = (previous.users.read(), self.users.write()) {
            to.extend(from.iter().map(|(k, v)| (k.clone(), *v)));
        }
        if let (Ok(from), Ok(mut to)) = (previous.used.lock(), self.used.lock()) {
            to.ids.extend(from.ids.iter().map(|(k, v)| (k.clone(), *v)));
        }
        self
    }

    /// True when this store keeps its revocations in `redis`.
    pub fn uses(&self, redis: &Arc<RedisHandle>) -> bool {
        matches!(&self.backend, Backend::Redis(store) if Arc::ptr_eq(&store.redis, redis))
    }

    fn with(backend: Backend, settings: String) -> Revocations {
        Revocations {
            tokens: Default::default(),
            families: Default::default(),
            users: Default::default(),
            used: Default::default(),
            backend,
            settings,
        }
    }

    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    /// True when the token or its family was revoked. Local read only; no I/O.
    pub fn is_revoked(&self, jti: &str, fam: &str) -> bool {
        let hit = |map: &RwLock<HashMap<String, u64>>, key: &str| {
            !key.is_empty()
                && map
                    .read()
                    .is_ok_and(|m| m.get(key).is_some_and(|exp| *exp >= now()))
        };
        hit(&self.tokens, jti) || hit(&self.families, fam)
    }

    /// True when a token is revoked: by its id, its family, or, for a token of ours (issued at
    /// `user_iat` under a user epoch), by the removal of its user `sub`. Local reads only.
    pub fn revokes(&self, jti: &str, fam: &str, sub: &str, user_iat: Option<u64>) -> bool {
        self.is_revoked(jti, fam) || user_iat.is_some_and(|iat| self.is_user_revoked(sub, iat))
    }

    /// True when `sub` was removed from the config after this token was issued (`iat`).
    pub fn is_user_revoked(&self, sub: &str, iat: u64) -> bool {
        self.users.read().is_ok_and(|m| {
            m.get(sub)
                .is_some_and(|(before, exp)| iat <= *before && *exp >= now())
        })
    }

    /// Revokes every token of `sub` issued up to now, until `exp`: locally at once, and in
    /// Redis by a task of its own (so an instance started later learns it too).
    pub fn revoke_user(self: &Arc<Self>, sub: &str, exp: u64) {
        let before = now();
        self.remember_user(sub, before, exp);
        let (Backend::Redis(_), Ok(runtime)) =
            (&self.backend, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let (this, member) = (Arc::clone(self), format!("u:{before}:{exp}:{sub}"));
        runtime.spawn(async move {
            if let Err(e) = this.publish(&member, exp).await {
                log::warn!("the removal of a user could not be written to Redis: {e}");
            }
        });
    }

    async fn publish(&self, member: &str, exp: u64) -> Result<(), StoreError> {
        let Backend::Redis(store) = &self.backend else {
            return Ok(());
        };
        let mut conn = store.connection().await?;
        let mut call = REVOKE.prepare_invoke();
        call.key(REVOKED)
            .key(REVOKED_EXP)
            .key(REVOKED_SEQ)
            .arg(member)
            .arg(exp)
            .arg(now());
        store.run(call.invoke_async::<i64>(&mut conn)).await?;
        Ok(())
    }

    fn remember_user(&self, sub: &str, before: u64, exp: u64) {
        if let Ok(mut m) = self.users.write() {
            let entry = m.entry(sub.to_owned()).or_insert((before, exp));
            *entry = (entry.0.max(before), entry.1.max(exp));
        }
    }

    /// Revokes a token or a family until `exp` (unix seconds): locally at once, then in Redis.
    pub async fn revoke(&self, kind: Kind, id: &str, exp: u64) -> Result<(), StoreError> {
        let member = format!("{}:{id}:{exp}", if kind == Kind::Token { "j" } else { "f" });
        self.publish(&member, exp).await?;
        self.remember(kind, id, exp);
        Ok(())
    }

    /// Marks a refresh token used; `false` when it had been used before (reuse).
    pub async fn consume_refresh(&self, jti: &str, exp: u64) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Memory => {
                let Ok(mut used) = self.used.lock() else {
                    return Err(StoreError::Poisoned);
                };
                let t = now();
                if t > used.pruned_at {
                    used.ids.retain(|_, e| *e >= t);
                    used.pruned_at = t;
                }
                if used.ids.contains_key(jti) {
                    return Ok(false);
                }
                if used.ids.len() >= MAX_USED {
                    return Err(StoreError::Full);
                }
                used.ids.insert(jti.to_owned(), exp);
                Ok(true)
            }
            Backend::Redis(store) => {
                let mut conn = store.connection().await?;
                let key = format!("{PREFIX}:used:{jti}");
                let opts = redis::SetOptions::default()
                    .conditional_set(redis::ExistenceCheck::NX)
                    .with_expiration(redis::SetExpiry::EXAT(exp.max(now() + 1)));
                let set: Option<String> = store.run(conn.set_options(&key, 1, opts)).await?;
                Ok(set.is_some())
            }
        }
    }

    /// Pulls revocations made by other instances (Redis only) and drops expired local entries.
    pub async fn sync(&self) -> Result<usize, StoreError> {
        let t = now();
        for map in [&self.tokens, &self.families] {
            if let Ok(mut m) = map.write() {
                m.retain(|_, exp| *exp >= t);
            }
        }
        if let Ok(mut m) = self.users.write() {
            m.retain(|_, (_, exp)| *exp >= t);
        }
        let Backend::Redis(store) = &self.backend else {
            return Ok(0);
        };
        let mut seen = store.seen.lock().await;
        let mut conn = store.connection().await?;
        store.take_over_untagged(&mut conn).await;
        // A counter below what was seen means Redis lost its data (a restart without
        // persistence, a flush): start over, or new revocations would stay unseen until the
        // counter caught up.
        let counter: Option<i64> = store.run(conn.get(REVOKED_SEQ)).await?;
        if counter.unwrap_or(0) < *seen {
            log::warn!(
                "revocation counter in Redis went back from {} to {}: Redis lost its data; pulling every revocation again",
                *seen,
                counter.unwrap_or(0)
            );
            *seen = 0;
        }
        let entries: Vec<(String, i64)> = store
            .run(conn.zrangebyscore_withscores(REVOKED, format!("({}", *seen), "+inf"))
            .await?;
        for (member, seq) in &entries {
            *seen = (*seen).max(*seq);
            if let Some(user) = member.strip_prefix("u:") {
                let mut parts = user.splitn(3, ':');
                if let (Some(Ok(before)), Some(Ok(exp)), Some(sub)) = (
                    parts.next().map(str::parse),
                    parts.next().map(str::parse),
                    parts.next(),
                ) {
                    self.remember_user(sub, before, exp);
                }
                continue;
            }
            let mut parts = member.splitn(2, ':');
            let kind = match parts.next() {
                Some("j") => Kind::Token,
                Some("f") => Kind::Family,
                _ => continue,
            };
            let Some((id, exp)) = parts.next().and_then(|rest| rest.rsplit_once(':')) else {
                continue;
            };
            if let Ok(exp) = exp.parse() {
                self.remember(kind, id, exp);
            }
        }
        Ok(entries.len())
    }

    fn remember(&self, kind: Kind, id: &str, exp: u64) {
        let map = if kind == Kind::Token {
            &self.tokens
        } else {
            &self.families
        };
        if let Ok(mut m) = map.write() {
            m.insert(id.to_owned(), exp);
        }
    }
}

impl RedisStore {
    /// Renames the revocation keys an older version wrote without a hash tag (once; a single
    /// Redis only: a cluster never held them).
    async fn take_over_untagged(&self, conn: &mut crate::redis::Conn) {
        use std::sync::atomic::Ordering;
        if self.renamed.load(Ordering::Relaxed) || matches!(conn, crate::redis::Conn::Cluster(_)) {
            return;
        }
        for (old, new) in UNTAGGED {
            let mut rename = redis::cmd("RENAMENX");
            rename.arg(old).arg(new);
            match self.redis.run(rename.query_async::<i64>(conn)).await {
                Ok(1) => log::info!("revocations: {old} renamed to {new}"),
                // Renamed already, or nothing to rename ("no such key").
                Ok(_) => {}
                Err(crate::redis::RedisError::Call(e))
                    if e.kind()
                        == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {}
                Err(_) => return,
            }
        }
        self.renamed.store(true, Ordering::Relaxed);
    }

    async fn connection(&self) -> Result<crate::redis::Conn, StoreError> {
        Ok(self.redis.connection().await?)
    }

    async fn run<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, StoreError> {
        Ok(self.redis.run(fut).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store() {
        let r = Revocations::memory();
        assert!(!r.is_revoked("t1", "f1"));
        r.revoke(Kind::Token, "t1", now() + 60)
            .await
            .expect("memory never fails");
        assert!(r.is_revoked("t1", "other"));
        r.revoke(Kind::Family, "f2", now() + 60)
            .await
            .expect("memory never fails");
        assert!(r.is_revoked("t9", "f2"));
        r.revoke(Kind::Token, "old", now() - 5)
            .await
            .expect("memory never fails");
        assert!(!r.is_revoked("old", ""), "expired entries no longer count");
        assert!(!r.is_user_revoked("ann", now()));
        let r = Arc::new(r);
        r.revoke_user("ann", now() + 60);
        assert!(r.is_user_revoked("ann", now() - 10));
        assert!(r.is_user_revoked("ann", now()), "the same second counts");
        assert!(!r.is_user_revoked("ann", now() + 1), "later tokens pass");
        assert!(!r.is_user_revoked("bob", now() - 10));
        assert!(r.consume_refresh("r1", now() + 60).await.expect("ok"));
        assert!(
            !r.consume_refresh("r1", now() + 60).await.expect("ok"),
            "second use is reuse"
        );
    }
}
