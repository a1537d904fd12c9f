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

use crate::auth::endpoints::Endpoint;
use crate::auth::AuthPolicy;
use crate::client::{client_ip, peer_ip};
use crate::outcome::{Denial, ErrorCode};
use crate::request_id::RequestId;
use crate::snapshot::Snapshot;
use crate::state::Shared;
use crate::token_api;
use answer::Answer;
use async_trait::async_trait;
use http::{Method, Response};
use pingora::apps::http_app::ServeHttp;
use pingora::http::RequestHeader;
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

/// The admin API's endpoints.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Routes,
    Upstreams,
    Config,
    Metrics,
    History,
    Description,
    PromQl { range: bool },
    Reload,
    Purge,
}

impl Api {
    /// The endpoint at `path`, if any.
    fn at(path: &str) -> Option<Api> {
        Some(match path {
            "/api/routes" => Api::Routes,
            "/api/upstreams" => Api::Upstreams,
            "/api/config" => Api::Config,
            "/api/metrics" => Api::Metrics,
            "/api/stats/history" => Api::History,
            "/api/openapi.json" => Api::Description,
            "/api/promql" => Api::PromQl { range: false },
            "/api/promql/range" => Api::PromQl { range: true },
            "/api/reload" => Api::Reload,
            "/api/cache/purge" => Api::Purge,
            _ => return None,
        })
    }

    /// Actions take POST, reads GET and HEAD.
    fn is_action(self) -> bool {
        matches!(self, Api::Reload | Api::Purge)
    }

    fn takes(self, method: &Method) -> bool {
        match self.is_action() {
            true => method == Method::POST,
            false => matches!(*method, Method::GET | Method::HEAD),
        }
    }

    /// The `Allow` value.
    fn allow(self) -> &'static str {
        if self.is_action() {
            "POST"
        } else {
            "GET, HEAD"
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let request_id = RequestId::from_request(&req.headers);
        let head = req.method == Method::HEAD;
        let answer = self.route(session, request_id.as_str()).await;
        // The body is read: the connection's next bytes are the next request's head.
        crate::connection::request_done(session.stream());
        answer::write(answer, request_id.as_str(), head)
    }
}

impl AdminApp {
    async fn route(&self, session: &mut ServerSession, request_id: &str) -> Answer {
        let snapshot = self.shared.snapshot.load_full();
        let req = session.req_header();
        let path = req.uri.path();

        if let Some(endpoint) = Endpoint::at(path) {
            return token_endpoint(session, &snapshot, endpoint).await;
        }
        if path != "/api" && !path.starts_with("/api/") {
            if !matches!(req.method, Method::GET | Method::HEAD) {
                return allow("GET, HEAD");
            }
            let dir = snapshot
                .file
                .admin
                .as_ref()
                .and_then(|a| a.dashboard_dir.as_deref())
                .unwrap_or(&self.default_dir);
            return files::serve(dir, path).await;
        }
        let Some(api) = Api::at(path) else {
            return ErrorCode::RouteNotFound.into();
        };
        if !api.takes(&req.method) {
            return allow(api.allow());
        }
        if let Err(denial) = authorize(&snapshot, req) {
            return denial.into();
        }
        let query = req.uri.query().map(str::to_owned);
        let prometheus = || {
            let admin = snapshot.file.admin.as_ref();
            admin
                .and_then(|a| a.prometheus_url.as_deref())
                .filter(|u| !u.is_empty())
        };
        match api {
            Api::Routes => api::routes(&snapshot),
            Api::Upstreams => api::upstreams(&snapshot),
            Api::Config => api::config(&snapshot, &self.shared),
            Api::Metrics => api::metrics(),
            Api::History => api::history(&self.history, query.as_deref()),
            Api::Description => Answer::Body {
                status: 200,
                content_type: "application/json",
                cache_control: "no-cache",
                body: OPENAPI.clone(),
            },
            Api::PromQl { range } => promql::query(prometheus(), range, query.as_deref()).await,
            Api::Reload => api::reload(&self.shared, request_id).await,
            Api::Purge => match crate::body::read_limited(session, MAX_ADMIN_BODY).await {
                Ok(Some(body)) => api::purge(&snapshot, &body).await,
                Ok(None) => ErrorCode::PayloadTooLarge.into(),
                Err(_) => ErrorCode::BadRequest.into(),
            },
        }
    }
}

/// An admin caller, by one credential: which of two would count is not for the caller to guess.
fn authorize(snapshot: &Snapshot, req: &RequestHeader) -> Result<(), Denial> {
    if req.headers.contains_key(http::header::AUTHORIZATION)
        && req.headers.contains_key(crate::auth::X_API_KEY)
    {
        crate::metrics::auth("failure", "two_credentials");
        return Err(Denial::new(ErrorCode::Unauthorized));
    }
    let check = AuthPolicy::admin().check(snapshot.auth.as_deref(), req);
    crate::metrics::auth(check.event.result, check.event.reason);
    check.caller.map(|_| ())
}

/// `/auth/login|refresh|logout`, as on the proxy listener.
async fn token_endpoint(
    session: &mut ServerSession,
    snapshot: &Snapshot,
    endpoint: Endpoint,
) -> Answer {
    let trusted = &snapshot.edge.trusted_proxies;
    let client = peer_ip(session).map(|ip| client_ip(ip, trusted, session.req_header()));
    let Some(handled) = token_api::serve(snapshot, endpoint, session, client).await else {
        return ErrorCode::RouteNotFound.into();
    };
    if let Some(event) = handled.event {
        crate::metrics::auth(event.result, event.reason);
    }
    handled.flow.into()
}

fn allow(methods: &'static str) -> Answer {
    Denial::new(ErrorCode::MethodNotAllowed)
        .with(http::header::ALLOW, http::HeaderValue::from_static(methods))
        .into()
}
