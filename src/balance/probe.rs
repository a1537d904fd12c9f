//! Active health checks from `upstreams.<name>.health_check`, on pingora's HTTP and TCP checks.

use crate::config::file::{HealthCheckConfig, HealthCheckKind};
use openssl::x509::X509;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::prelude::*;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_THRESHOLD: usize = 2;

/// Builds the probe. HTTP probes `GET <path>` (default `/health`, in HTTP/2 when `h2`) and
/// wants a 2xx answer; TCP probes want the connection accepted.
pub fn build(
    cfg: &HealthCheckConfig,
    tls: bool,
    sni: &str,
    h2: bool,
    ca: Option<&Arc<Box<[X509]>>>,
) -> Result<Box<dyn HealthCheck + Send + Sync>> {
    let timeout = cfg.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
    let success = cfg.healthy_threshold.unwrap_or(DEFAULT_THRESHOLD);
    let failure = cfg.unhealthy_threshold.unwrap_or(DEFAULT_THRESHOLD);
    Ok(match cfg.kind {
        HealthCheckKind::Http => {
            let host = if sni.is_empty() { "localhost" } else { sni };
            let mut check = HttpHealthCheck::new(host, tls);
            let path = cfg.path.as_deref().unwrap_or("/health");
            let mut req = RequestHeader::build("GET", path.as_bytes(), None)?;
            req.insert_header("host", host)?;
            req.insert_header("user-agent", "api-gateway-health-check")?;
            check.req = req;
            check.validator = Some(Box::new(expect_2xx));
            check.consecutive_success = success;
            check.consecutive_failure = failure;
            check.peer_template.options.connection_timeout = Some(timeout);
            check.peer_template.options.read_timeout = Some(timeout);
            check.peer_template.options.ca = ca.cloned();
            if h2 {
                check.peer_template.options.set_http_version(2, 2);
            }
            Box::new(check)
        }
        HealthCheckKind::Tcp => {
            let mut check = if tls {
                TcpHealthCheck::new_tls(sni)
            } else {
                TcpHealthCheck::new()
            };
            check.consecutive_success = success;
            check.consecutive_failure = failure;
            check.peer_template.options.connection_timeout = Some(timeout);
            check.peer_template.options.ca = ca.cloned();
            check
        }
    })
}

fn expect_2xx(resp: &ResponseHeader) -> Result<()> {
    if resp.status.is_success() {
        Ok(())
    } else {
        Error::e_explain(
            CustomCode("health check status", resp.status.as_u16()),
            "expected a 2xx answer",
        )
    }
}
