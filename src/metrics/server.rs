//! The metrics listener: `GET /metrics` in Prometheus text format (pingora-prometheus), a JSON
//! 404 elsewhere.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use pingora_prometheus::PrometheusHttpApp;

pub struct MetricsApp;

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        // The connection's next bytes are the next request's head.
        crate::connection::request_done(session.stream());
        if session.req_header().uri.path() == "/metrics" {
            return PrometheusHttpApp.response(session).await;
        }
        let body = br#"{"error":{"code":"route_not_found","message":"Metrics are served at /metrics","request_id":""}}
"#.to_vec();
        Response::builder()
            .status(404)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_default()
    }
}
