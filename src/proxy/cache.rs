//! The cache phases of the proxy: whether a request uses the cache and under which key,
//! whether an answer is kept, serving stale, and the cache result each answer reports.

use super::ctx::{CacheCtx, CacheUse as Use, RequestCtx};
use crate::cache::{self, Admission, Purge, FRONT};
use crate::outcome::{ErrorCode, Flow, Reply};
use pingora::cache::key::HashBinary;
use pingora::cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora::cache::predictor::Predictor;
use pingora::cache::{CacheKey, CacheMeta, CacheOptionOverrides, CachePhase, RespCacheable};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::Session;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// A fill taking longer than this no longer holds the other requests for its key.
const LOCK_AGE: Duration = Duration::from_secs(30);

static LOCK: LazyLock<Box<CacheKeyLockImpl>> = LazyLock::new(|| CacheLock::new_boxed(LOCK_AGE));

/// Keys whose last answer could not be stored (`no-store`, `private`, an error status, too
/// large): their next requests go straight to the origin, without a lookup or the fill lock
/// (in Redis too), until an answer can be stored again. 32 × 2 048 keys at most, least recent
/// forgotten first.
static PREDICTOR: LazyLock<Predictor<32>> = LazyLock::new(|| Predictor::new(2_048, None));

/// `request_cache_filter`: turns the cache on for a request its route may serve from it.
pub fn enable(session: &mut Session, ctx: &mut RequestCtx) {
    let (Some(route), Some(cache)) = (&ctx.route, &ctx.snapshot.cache) else {
        return;
    };
    let Some(policy) = &route.cache else {
        return;
    };
    if ctx.websocket {
        // A tunnel is never stored.
        ctx.cache.used = Use::Bypass;
        return;
    }
    let req = session.req_header();
    let path = route.cache_path(ctx.path.as_deref().unwrap_or(req.uri.path()));
    let caller = ctx.admitted.caller.as_deref();
    match policy.admit(&cache.key_prefix, req, &path, caller) {
        Admission::Bypass => ctx.cache.used = Use::Bypass,
        // A GET or HEAD with a body: the origin may answer by the body, which the key leaves
        // out, so the answer is neither served from the cache nor stored.
        Admission::Use(_) if !session.as_downstream_mut().is_body_empty() => {
            ctx.cache.used = Use::Bypass;
        }
        Admission::Use(mut key) => {
            if let (Some(arm), true) = (ctx.arm, route.split.is_split()) {
                cache::for_upstream(&mut key, &route.upstream(arm).name);
            }
            let mut overrides = CacheOptionOverrides::default();
            overrides.wait_timeout = Some(cache.lock_timeout);
            let predictor: &'static Predictor<32> = &PREDICTOR;
            session.cache.enable(
                &FRONT,
                None,
                Some(predictor),
                Some(LOCK.as_ref()),
                Some(overrides),
            );
            session.cache.set_max_file_size_bytes(cache.max_object_size);
            ctx.cache = CacheCtx {
                used: Use::On,
                key: Some(key),
            };
        }
    }
}

/// `cache_key_callback` (called once per request): the key, carrying the section its store
/// belongs to.
pub fn key(ctx: &mut RequestCtx) -> Result<CacheKey> {
    let (Some(primary), Some(cache)) = (ctx.cache.key.take(), &ctx.snapshot.cache) else {
        return Error::e_explain(InternalError, "cache enabled without a key");
    };
    let mut key = CacheKey::new(primary, "");
    key.extensions.insert(Arc::clone(cache));
    Ok(key)
}

/// `response_cache_filter`: whether the origin's answer is kept, and how long.
pub fn decide(resp: &ResponseHeader, ctx: &RequestCtx) -> RespCacheable {
    let (Some(route), Some(cache)) = (&ctx.route, &ctx.snapshot.cache) else {
        return RespCacheable::Uncacheable(pingora::cache::NoCacheReason::NeverEnabled);
    };
    let ttl = route.cache.as_ref().and_then(|p| p.ttl);
    cache::decide(resp, cache, ttl)
}

/// `cache_vary_filter`: the headers the answer names in `Vary`, the host, and the scheme and
/// forwarded host the backend was told (`X-Forwarded-Proto` / `-Host`), so an answer given to
/// plain HTTP (a redirect to HTTPS, say) never reaches an HTTPS client, nor the other way.
pub fn variance(meta: &CacheMeta, req: &RequestHeader, ctx: &RequestCtx) -> Option<HashBinary> {
    let forwarded = |name| {
        ctx.peer
            .trusted
            .then(|| req.headers.get(name))
            .flatten()
            .map(|v: &http::HeaderValue| v.as_bytes())
    };
    let scheme = forwarded(X_FORWARDED_PROTO).unwrap_or(match ctx.peer.tls {
        true => b"https",
        false => b"http",
    });
    let origin = cache::Origin {
        scheme,
        forwarded_host: forwarded(X_FORWARDED_HOST),
    };
    cache::variance(meta, req, &origin)
}

const X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: http::HeaderName = http::HeaderName::from_static("x-forwarded-host");

/// `should_serve_stale`: during `stale-while-revalidate` (no error), and on any failure to
/// get a fresh answer that is not the client's own (`stale-if-error`). Pingora asks only
/// within the entry's windows.
pub fn serve_stale(error: Option<&Error>) -> bool {
    error.is_none_or(|e| *e.esource() != ErrorSource::Downstream)
}

/// The word for `X-Cache-Status` and the metric's `result`, on a cache-enabled route.
pub fn result(session: &Session, ctx: &RequestCtx) -> Option<(&'static str, &'static str)> {
    Some(match ctx.cache.used {
        Use::Off => return None,
        Use::Bypass => ("BYPASS", "bypass"),
        Use::On => match session.cache.phase() {
            CachePhase::Hit => ("HIT", "hit"),
            CachePhase::Stale | CachePhase::StaleUpdating => ("STALE", "stale"),
            CachePhase::Expired | CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => {
                ("EXPIRED", "expired")
            }
            // A key the predictor knows to be uncacheable: the origin answered, as for a miss.
            CachePhase::Bypass if !session.cache.cacheable_prediction() => ("MISS", "miss"),
            CachePhase::Bypass => ("BYPASS", "bypass"),
            _ => ("MISS", "miss"),
        },
    })
}

/// At the end of a request: a fill that stored nothing stops holding other instances.
pub async fn finish(session: &Session, ctx: &RequestCtx) {
    if ctx.cache.used != Use::On {
        return;
    }
    if let (Some(key), Some(cache)) = (session.cache.maybe_cache_key(), &ctx.snapshot.cache) {
        cache.store.release(key).await;
    }
}

/// `PURGE <path>[?query]` (one URL) or `PURGE <path>*` (a prefix), sent by a trusted proxy
/// address itself: a client a trusted proxy forwards (whose address it puts in
/// `X-Forwarded-For`) is not one. `None` when the gateway has no cache.
pub async fn purge(ctx: &RequestCtx, req: &RequestHeader) -> Option<Flow> {
    let cache = ctx.snapshot.cache.as_ref()?;
    let trusted = &ctx.snapshot.edge.trusted_proxies;
    if !ctx.peer.client_ip.is_some_and(|ip| trusted.contains(ip)) {
        return Some(ErrorCode::Forbidden.into());
    }
    let path = ctx.path.as_deref().unwrap_or(req.uri.path());
    let purge = match path.strip_suffix('*') {
        Some(prefix) => Purge::prefix(&cache.key_prefix, &ctx.snapshot.cache_path(prefix)),
        None => Purge::url(
            &cache.key_prefix,
            &ctx.snapshot.cache_path(path),
            req.uri.query(),
        ),
    };
    Some(match cache.store.purge(&purge).await {
        Ok(n) => Flow::Reply(Reply::json(200, format!("{{\"purged\":{n}}}"))),
        Err(e) => {
            log::warn!("cache purge failed: {e}");
            ErrorCode::StoreUnavailable.into()
        }
    })
}
