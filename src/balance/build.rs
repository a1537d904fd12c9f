//! Checks the `upstreams` section and builds its pools, keeping the running pool of an entry
//! whose settings did not change (its health, counters and connections survive a reload).

use super::error::BalanceError;
use super::outlier::{DEFAULT_BASE_EJECTION, DEFAULT_MAX_EJECTION};
use super::upstream::{Upstream, MAX_RETRIES};
use crate::config::file::{HealthCheckKind, Strategy, UpstreamConfig, UpstreamProtocol};
use crate::config::ConfigErrors;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Every upstream of the file that built. `previous` are the running snapshot's upstreams;
/// `has_etcd`: the file has an `etcd` section (etcd discovery uses its connection).
pub fn build(
    cfg: &BTreeMap<String, UpstreamConfig>,
    previous: Option<&BTreeMap<String, Arc<Upstream>>>,
    has_etcd: bool,
    errors: &mut ConfigErrors,
) -> BTreeMap<String, Arc<Upstream>> {
    let mut out = BTreeMap::new();
    for (name, cfg) in cfg {
        let path = format!("upstreams.{name}");
        check(&path, cfg, errors);
        if let Some(d) = &cfg.discovery {
            super::discovery::check(&format!("{path}.discovery"), d, has_etcd, errors);
            if !cfg.backends.is_empty() {
                errors.push(
                    format!("{path}.backends"),
                    "set backends or discovery, not both",
                );
            }
        }
        let running = previous.and_then(|p| p.get(name));
        if let Some(kept) = running.filter(|u| u.config == *cfg) {
            out.insert(name.clone(), Arc::clone(kept));
            continue;
        }
        match Upstream::build(name, cfg, running.map(Arc::as_ref)) {
            Ok(u) => {
                out.insert(name.clone(), Arc::new(u));
            }
            Err(problems) => {
                for (sub, e) in problems {
                    errors.push(format!("{path}.{sub}"), e);
                }
            }
        }
    }
    out
}

fn check(path: &str, cfg: &UpstreamConfig, errors: &mut ConfigErrors) {
    check_strategy(path, &cfg.strategy, errors);
    check_settings(path, cfg, errors);
}

/// A strategy that is not built in must be registered.
fn check_strategy(path: &str, strategy: &Strategy, errors: &mut ConfigErrors) {
    if let Strategy::Custom(name) = strategy {
        let registry = crate::plugin::registry();
        if registry.balancer_factory(name).is_none() {
            let known: Vec<&str> = Strategy::BUILT_IN
                .into_iter()
                .chain(registry.balancer_names())
                .collect();
            let likely = crate::config::wording::closest(name, known.iter().copied());
            errors.push(
                format!("{path}.strategy"),
                BalanceError::UnknownStrategy {
                    name: name.clone(),
                    known: known.join(", "),
                    hint: likely.map_or_else(String::new, |l| format!(" (did you mean {l:?}?)")),
                },
            );
        }
    }
}

fn check_settings(path: &str, cfg: &UpstreamConfig, errors: &mut ConfigErrors) {
    for (i, b) in cfg.backends.iter().enumerate() {
        if b.weight == 0 {
            errors.push(
                format!("{path}.backends[{i}].weight"),
                BalanceError::AtLeastOne,
            );
        }
    }
    match (cfg.protocol, cfg.tls) {
        (UpstreamProtocol::H2, false) => {
            errors.push(format!("{path}.protocol"), BalanceError::H2WithoutTls)
        }
        (UpstreamProtocol::H2c, true) => {
            errors.push(format!("{path}.protocol"), BalanceError::H2cWithTls)
        }
        _ => {}
    }
    if cfg.retries.is_some_and(|r| r >= MAX_RETRIES) {
        errors.push(
            format!("{path}.retries"),
            BalanceError::TooMany(MAX_RETRIES),
        );
    }
    if let Some(o) = &cfg.outlier {
        let op = format!("{path}.outlier");
        if o.consecutive_errors == Some(0) {
            errors.push(format!("{op}.consecutive_errors"), BalanceError::AtLeastOne);
        }
        let base = o.base_ejection.map_or(DEFAULT_BASE_EJECTION, |d| d.0);
        let max = o.max_ejection.map_or(DEFAULT_MAX_EJECTION, |d| d.0);
        if max < base {
            errors.push(format!("{op}.max_ejection"), BalanceError::BelowBase);
        }
        if o.max_ejection_percent.is_some_and(|p| p > 100) {
            errors.push(format!("{op}.max_ejection_percent"), BalanceError::Percent);
        }
    }
    if cfg
        .retry_budget
        .as_ref()
        .and_then(|b| b.percent)
        .is_some_and(|p| p > 100)
    {
        errors.push(
            format!("{path}.retry_budget.percent"),
            BalanceError::Percent,
        );
    }
    if let Some(b) = &cfg.circuit_breaker {
        let bp = format!("{path}.circuit_breaker");
        for (field, n) in [
            ("max_requests", b.max_requests),
            ("max_pending_connects", b.max_pending_connects),
        ] {
            if n == Some(0) {
                errors.push(format!("{bp}.{field}"), BalanceError::AtLeastOne);
            }
        }
        if b.failure_percent.is_some_and(|p| p == 0 || p > 100) {
            errors.push(format!("{bp}.failure_percent"), BalanceError::Percent);
        }
        for (field, n) in [
            ("min_requests", b.min_requests),
            ("half_open_requests", b.half_open_requests),
        ] {
            if n == Some(0) {
                errors.push(format!("{bp}.{field}"), BalanceError::AtLeastOne);
            }
        }
    }
    let Some(hc) = &cfg.health_check else {
        return;
    };
    let hp = format!("{path}.health_check");
    match (hc.kind, &hc.path) {
        (HealthCheckKind::Http, Some(p)) if !p.starts_with('/') => {
            errors.push(format!("{hp}.path"), BalanceError::NoSlash)
        }
        (HealthCheckKind::Tcp, Some(_)) => errors.push(format!("{hp}.path"), BalanceError::TcpPath),
        _ => {}
    }
    for (field, n) in [
        ("healthy_threshold", hc.healthy_threshold),
        ("unhealthy_threshold", hc.unhealthy_threshold),
    ] {
        if n == Some(0) {
            errors.push(format!("{hp}.{field}"), BalanceError::AtLeastOne);
        }
    }
}
