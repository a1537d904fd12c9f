//! `GET /health` on the proxy listener.

use crate::snapshot::Snapshot;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::collections::HashSet;

/// Status and JSON body. `down` (503) when no route could be served or the process is draining;
/// `degraded` when some backend is unhealthy; `ok` otherwise.
pub fn report(snap: &Snapshot, draining: bool) -> (u16, Bytes) {
    let mut upstreams = Map::new();
    let mut degraded = false;
    let mut serving = HashSet::new();
    for (name, up) in &snap.upstreams {
        let (healthy, total) = up.health();
        degraded |= healthy < total;
        if healthy > 0 {
            serving.insert(name.as_str());
        }
        upstreams.insert(name.clone(), json!({"healthy": healthy, "total": total}));
    }
    // Each upstream's health is read once, however many routes share it.
    let servable = snap.routes.iter().any(|r| {
        r.split
            .arms()
            .any(|(u, _)| serving.contains(u.name.as_str()))
    });
    let redis_check = match snap.redis.as_ref().map(|r| r.is_healthy()) {
        None => "disabled",
        Some(true) => "ok",
        Some(false) => {
            degraded = true;
            "down"
        }
    };
    let cache_check = match snap.cache.as_ref().map(|c| c.store.redis()) {
        None => "disabled",
        Some(None) => "memory",
        Some(Some(redis)) if redis.is_healthy() => "ok",
        Some(Some(_)) => {
            degraded = true;
            "down"
        }
    };
    // With the config in etcd: whether the watch is connected, and the revision running (the
    // problems of a refused one are on the admin API, not on this public endpoint).
    let etcd = crate::etcd::status();
    let etcd_check = match etcd.map(|s| s.is_connected()) {
        None => "disabled",
        Some(true) => "ok",
        Some(false) => {
            degraded = true;
            "down"
        }
    };
    let status = if draining || !servable {
        "down"
    } else if degraded {
        "degraded"
    } else {
        "ok"
    };
    let mut body = json!({
        "status": status,
        "checks": {
            "redis": redis_check,
            "cache": cache_check,
            "upstreams": Value::Object(upstreams),
        },
    });
    if let Some(etcd) = etcd {
        body["checks"]["etcd"] = json!(etcd_check);
        body["config"] = etcd.summary();
    }
    let code = if status == "down" { 503 } else { 200 };
    (code, Bytes::from(body.to_string()))
}
