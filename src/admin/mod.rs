//! The admin listener (`listen.admin`): the dashboard at `/`, the JSON admin API under `/api/`
//! (admin role required), and `/auth/*` so the dashboard logs in same-origin. Handlers return
//! [`Answer`]s; [`answer::write`] is the only writer.

mod answer;
mod api;
mod files;
mod history;
mod promql;
mod redact;

pub use history::{History, Sampler};

use crate::auth::endpoints::{self, Call, Endpoint, MAX_BODY};
use crate::auth::AuthPolicy;
use crate::outcome::{Denial, ErrorCode};
use crate::proxy::{client_ip, RequestId};
use crate::state::Shared;
use answer::Answer;
use async_trait::async_trait;
use http::{Method, Response};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::{Arc, LazyLock};

/// Largest request body the admin API reads (a purge, a login).
const MAX_ADMIN_BODY: usize = 64 * 1024;

pub struct AdminApp {
    shared: Arc<Shared>,
    history: Arc<History>,
    /// `dashboard/dist` under the working directory at start-up (a daemon moves to `/`).
    default_dir: String,
}

impl AdminApp {
    pub fn new(shared: Arc<Shared>, history: Arc<History>) -> AdminApp {
        let default_dir = std::env::current_dir()
            .map(|d| d.join(files::DEFAULT_DIR).to_string_lossy().into_owned())
            .unwrap_or_else(|_| files::DEFAULT_DIR.to_owned());
        AdminApp {
            shared,
            history,
            default_dir,
        }
    }
}

/// The OpenAPI description of the admin API and `/auth/*`, as JSON.
static OPENAPI: LazyLock<bytes::Bytes> = LazyLock::new(|| {
    let doc: serde_json::Value =
        serde_yaml::from_str(include_str!("openapi.yaml")).unwrap_or_default();
    bytes::Bytes::from(doc.to_string())
});

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let request_id =
            RequestId::from_request(req.headers.get("x-request-id").map(|v| v.as_bytes()));
        let head = req.method == Method::HEAD;
        let answer = self.route(session).await;
        answer::write(answer, request_id.as_str(), head)
    }
}

impl AdminApp {
    async fn route(&self, session: &mut ServerSession) -> Answer {
        let snapshot = self.shared.snapshot.load_full();
        let req = session.req_header();
        let path = req.uri.path().to_owned();
        let query = req.uri.query().map(str::to_owned);
        let method = req.method.clone();

        if let Some(endpoint) = Endpoint::at(&path) {
            return self.token_endpoint(session, endpoint).await;
        }
        if path != "/api" && !path.starts_with("/api/") {
            if !matches!(method, Method::GET | Method::HEAD) {
                return allow("GET, HEAD");
            }
            let dir = snapshot
                .file
                .admin
                .as_ref()
                .and_then(|a| a.dashboard_dir.as_deref())
                .unwrap_or(&self.default_dir);
            return files::serve(dir, &path).await;
        }

        let Some(allowed) = methods(&path) else {
            return ErrorCode::RouteNotFound.into();
        };
        let read_only = matches!(method, Method::GET | Method::HEAD);
        if !(allowed == "POST" && method == Method::POST || allowed == "GET, HEAD" && read_only) {
            return allow(allowed);
        }
        let headers = &session.req_header().headers;
        if headers.contains_key(http::header::AUTHORIZATION) && headers.contains_key("x-api-key") {
            // One credential per call: which of two would count is not for the caller to guess.
            crate::metrics::auth("failure", "two_credentials");
            return ErrorCode::Unauthorized.into();
        }
        let check = AuthPolicy::admin().check(snapshot.auth.as_deref(), session.req_header());
        crate::metrics::auth(check.event.result, check.event.reason);
        if let Err(denial) = check.caller {
            return denial.into();
        }
        match path.as_str() {
            "/api/routes" => api::routes(&snapshot),
            "/api/upstreams" => api::upstreams(&snapshot),
            "/api/config" => api::config(&snapshot),
            "/api/metrics" => api::metrics(),
            "/api/stats/history" => api::history(&self.history, query.as_deref()),
            "/api/openapi.json" => Answer::Body {
                status: 200,
                content_type: "application/json",
                cache_control: "no-cache",
                body: OPENAPI.clone(),
            },
            "/api/promql" | "/api/promql/range" => {
                let url = snapshot
                    .file
                    .admin
                    .as_ref()
                    .and_then(|a| a.prometheus_url.as_deref());
                promql::query(url, path.ends_with("/range"), query.as_deref()).await
            }
            "/api/reload" => {
                let request_id = session
                    .req_header()
                    .headers
                    .get("x-request-id")
                    .map(|v| v.as_bytes());
                let id = RequestId::from_request(request_id);
                api::reload(&self.shared, id.as_str()).await
            }
            "/api/cache/purge" => match read_body(session, MAX_ADMIN_BODY).await {
                Some(body) => api::purge(&snapshot, &body).await,
                None => ErrorCode::PayloadTooLarge.into(),
            },
            _ => ErrorCode::RouteNotFound.into(),
        }
    }

    /// `/auth/login|refresh|logout`, as on the proxy listener.
    async fn token_endpoint(&self, session: &mut ServerSession, endpoint: Endpoint) -> Answer {
        let snapshot = self.shared.snapshot.load_full();
        let Some(auth) = snapshot.auth.as_ref().filter(|a| a.issues_tokens()) else {
            return ErrorCode::RouteNotFound.into();
        };
        let body = read_body(session, MAX_BODY).await;
        let req = session.req_header();
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let client = peer.map(|ip| client_ip(ip, &snapshot.edge.trusted_proxies, req));
        let handled = endpoints::handle(
            auth,
            endpoint,
            Call {
                method: &req.method,
                body: body.as_deref(),
                client_ip: client,
                bearer: crate::auth::bearer(req),
            },
        )
        .await;
        if let Some(event) = handled.event {
            crate::metrics::auth(event.result, event.reason);
        }
        handled.flow.into()
    }
}

/// The methods an admin API path takes, or `None` for a path that is not one.
fn methods(path: &str) -> Option<&'static str> {
    Some(match path {
        "/api/routes" | "/api/upstreams" | "/api/config" | "/api/metrics"
        | "/api/stats/history" | "/api/openapi.json" | "/api/promql" | "/api/promql/range" => {
            "GET, HEAD"
        }
        "/api/reload" | "/api/cache/purge" => "POST",
        _ => return None,
    })
}

fn allow(methods: &'static str) -> Answer {
    Denial::new(ErrorCode::MethodNotAllowed)
        .with(http::header::ALLOW, http::HeaderValue::from_static(methods))
        .into()
}

/// The body, or `None` once it grows past `limit` (or the client breaks off).
async fn read_body(session: &mut ServerSession, limit: usize) -> Option<bytes::Bytes> {
    let mut body = bytes::BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return None;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Some(body.freeze()),
            Err(_) => return None,
        }
    }
}
