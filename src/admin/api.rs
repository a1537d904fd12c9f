//! The admin API's JSON endpoints over the live snapshot. Each returns an [`Answer`]; the
//! listener authorizes the caller first and writes what they return.

use super::answer::Answer;
use super::history::History;
use super::redact;
use crate::cache::Purge;
use crate::config::ConfigErrors;
use crate::outcome::{ErrorCode, Flow, Reply};
use crate::routing::Route;
use crate::snapshot::Snapshot;
use crate::state::Shared;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

fn ok(body: &Value) -> Answer {
    Flow::Reply(Reply::json(200, body.to_string())).into()
}

/// `GET /api/routes`: routes in file order with their full prefix, and the groups.
pub fn routes(snapshot: &Snapshot) -> Answer {
    let routes: Vec<Value> = snapshot
        .file
        .routes
        .iter()
        .map(|cfg| {
            let mut v = serde_json::to_value(cfg).unwrap_or(Value::Null);
            let route = snapshot.routes.iter().find(|r| r.name == cfg.name);
            if let (Some(obj), Some(route)) = (v.as_object_mut(), route) {
                obj.insert("prefix".into(), Value::String(route.prefix.clone()));
                obj.insert("effective".into(), effective(snapshot, route));
            }
            v
        })
        .collect();
    ok(&json!({ "routes": routes, "groups": snapshot.file.groups }))
}

/// What applies to a route's requests, group and global settings merged and defaults filled
/// in: its checks (`auth` null when open, `rate_limit` null when none), its caching and its
/// middlewares in the order they run (`plugins`).
fn effective(snapshot: &Snapshot, route: &Route) -> Value {
    let mut out = route.chain.effective();
    out["cache"] = match (&route.cache, &snapshot.cache) {
        (Some(policy), Some(cache)) => json!({
            "ttl_s": policy.ttl.unwrap_or(cache.default_ttl).as_secs(),
            "authenticated": policy.authenticated,
        }),
        _ => Value::Null,
    };
    out["plugins"] = json!(route.middlewares.names());
    out
}

/// `GET /api/upstreams`: every upstream and backend with health and counters.
pub fn upstreams(snapshot: &Snapshot) -> Answer {
    let upstreams: Vec<Value> = snapshot
        .upstreams
        .values()
        .map(|u| {
            let view = u.view();
            let healthy = view.backends.iter().filter(|b| b.healthy).count();
            let mut v = serde_json::to_value(&view).unwrap_or(Value::Null);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("healthy".into(), healthy.into());
                obj.insert("total".into(), view.backends.len().into());
                obj.insert(
                    "circuit".into(),
                    u.circuit().map_or(Value::Null, |c| c.name().into()),
                );
                obj.insert("connecting".into(), u.connecting().into());
                obj.insert(
                    "health_check".into(),
                    serde_json::to_value(&u.config.health_check).unwrap_or(Value::Null),
                );
            }
            v
        })
        .collect();
    ok(&json!({ "upstreams": upstreams }))
}

/// `GET /api/config`: the sections, and under `source` where they come from.
pub fn config(snapshot: &Snapshot, shared: &Shared) -> Answer {
    let mut body = redact::redacted(&snapshot.file);
    body["source"] = source(shared);
    ok(&body)
}

/// Where the config comes from: the file, or the file and a document in etcd (its revision,
/// the watch's state, the last document refused with its problems).
fn source(shared: &Shared) -> Value {
    match crate::etcd::status() {
        Some(status) => {
            let mut out = status.describe();
            out["file"] = json!(shared.config_path.display().to_string());
            out
        }
        None => crate::etcd::describe_file(&shared.config_path),
    }
}

/// `POST /api/reload`: what changed, or every problem (the running config stays).
pub async fn reload(shared: &Arc<Shared>, request_id: &str) -> Answer {
    let job = Arc::clone(shared);
    match tokio::task::spawn_blocking(move || job.reload()).await {
        Ok(Ok(changes)) => ok(&json!({
            "reloaded": true,
            "changes": changes,
            "source": source(shared),
        })),
        Ok(Err(errors)) => problems(&errors, request_id),
        Err(_) => ErrorCode::Internal.into(),
    }
}

/// The contract's error body for `invalid_config`, with the list of problems.
fn problems(errors: &ConfigErrors, request_id: &str) -> Answer {
    let code = ErrorCode::InvalidConfig;
    let list: Vec<Value> = errors
        .iter()
        .map(|e| json!({ "path": e.path, "message": e.message }))
        .collect();
    let body = json!({ "error": {
        "code": code.code(),
        "message": code.message(),
        "request_id": request_id,
        "problems": list,
    }});
    Flow::Reply(Reply::json(code.status(), body.to_string())).into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    url: Option<String>,
    prefix: Option<String>,
}

/// `POST /api/cache/purge` with `{"url": "/path?query"}` or `{"prefix": "/path"}`.
pub async fn purge(snapshot: &Snapshot, body: &[u8]) -> Answer {
    let Ok(req) = serde_json::from_slice::<PurgeRequest>(body) else {
        return ErrorCode::BadRequest.into();
    };
    let Some(cache) = &snapshot.cache else {
        return ErrorCode::CacheDisabled.into();
    };
    let purge = match (req.url, req.prefix) {
        (Some(url), None) => {
            let (path, query) = match url.split_once('?') {
                Some((p, q)) => (p.to_owned(), Some(q)),
                None => (url.clone(), None),
            };
            if !path.starts_with('/') {
                return ErrorCode::BadRequest.into();
            }
            // A path routing refuses was never cached.
            let Ok(path) = crate::routing::normalize(&path) else {
                return ok(&json!({ "purged": 0 }));
            };
            Purge::url(&cache.key_prefix, &snapshot.cache_path(&path), query)
        }
        (None, Some(prefix)) => {
            if !prefix.starts_with('/') {
                return ErrorCode::BadRequest.into();
            }
            let Ok(path) = crate::routing::normalize(&prefix) else {
                return ok(&json!({ "purged": 0 }));
            };
            Purge::prefix(&cache.key_prefix, &snapshot.cache_path(&path))
        }
        _ => return ErrorCode::BadRequest.into(),
    };
    match cache.store.purge(&purge).await {
        Ok(n) => ok(&json!({ "purged": n })),
        Err(e) => {
            log::warn!("admin purge failed: {e}");
            crate::outcome::Denial::retry_after(ErrorCode::StoreUnavailable, 1).into()
        }
    }
}

/// `GET /api/metrics`: the exposition text of the metrics listener.
pub fn metrics() -> Answer {
    let families = prometheus::gather();
    let mut text = String::new();
    if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&families, &mut text) {
        log::error!("metrics encoding failed: {e}");
        return ErrorCode::Internal.into();
    }
    Answer::Body {
        status: 200,
        content_type: "text/plain; version=0.0.4; charset=utf-8",
        cache_control: "no-store",
        body: Bytes::from(text),
    }
}

/// `GET /api/stats/history[?since=<unix seconds>]`.
pub fn history(history: &History, query: Option<&str>) -> Answer {
    let since = match param(query, "since") {
        None => 0,
        Some(s) => match s.parse::<u64>() {
            Ok(n) => n,
            Err(_) => return ErrorCode::BadRequest.into(),
        },
    };
    ok(&json!({
        "interval_s": 1,
        "capacity": super::history::CAPACITY,
        "seconds": history.since(since),
    }))
}

/// The first value of `name` in a query string, percent-decoded (`+` as space).
pub fn param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k)? == name).then(|| decode(v)).flatten()
    })
}

fn decode(s: &str) -> Option<String> {
    String::from_utf8(crate::http_client::percent_decode(&s.replace('+', " "))?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded() {
        let q = Some("a=1&query=rate(x%5B1m%5D)+%2B+1&since=5");
        assert_eq!(param(q, "query").as_deref(), Some("rate(x[1m]) + 1"));
        assert_eq!(param(q, "since").as_deref(), Some("5"));
        assert_eq!(param(q, "b"), None);
        assert_eq!(param(Some("query=%zz"), "query"), None);
        assert_eq!(param(Some("query=%+1"), "query"), None);
        assert_eq!(param(None, "query"), None);
    }
}
