//! Metrics of the fleet features, registered on first use (a gateway without etcd or discovery
//! does not show them): the etcd config source and service discovery.

use prometheus::{
    register_int_counter_vec, register_int_gauge, register_int_gauge_vec, IntCounterVec, IntGauge,
    IntGaugeVec,
};
use std::sync::LazyLock;

struct Fleet {
    etcd_revision: IntGauge,
    etcd_connected: IntGauge,
    discovery_lookups: IntCounterVec,
    discovery_members: IntGaugeVec,
}

static FLEET: LazyLock<Option<Fleet>> = LazyLock::new(|| match register() {
    Ok(m) => Some(m),
    Err(e) => {
        log::error!("fleet metrics registration failed: {e}");
        None
    }
});

fn register() -> prometheus::Result<Fleet> {
    Ok(Fleet {
        etcd_revision: register_int_gauge!(
            "config_etcd_revision",
            "The etcd revision of the config document running"
        )?,
        etcd_connected: register_int_gauge!(
            "config_etcd_connected",
            "1 while the watch on the etcd config document is connected"
        )?,
        discovery_lookups: register_int_counter_vec!(
            "discovery_lookups_total",
            "Service discovery lookups (DNS answers, etcd changes), by upstream and result; a failure keeps the last members",
            &["upstream", "result"]
        )?,
        discovery_members: register_int_gauge_vec!(
            "discovery_members",
            "Members the last successful discovery lookup found, by upstream",
            &["upstream"]
        )?,
    })
}

/// Sets `config_etcd_revision`.
pub fn etcd_revision(revision: i64) {
    if let Some(m) = FLEET.as_ref() {
        m.etcd_revision.set(revision);
    }
}

/// Sets `config_etcd_connected`.
pub fn etcd_connected(up: bool) {
    if let Some(m) = FLEET.as_ref() {
        m.etcd_connected.set(i64::from(up));
    }
}

/// Counts a discovery lookup of `upstream`; a success sets its member count.
pub fn discovery(upstream: &str, ok: bool, members: Option<usize>) {
    let Some(m) = FLEET.as_ref() else {
        return;
    };
    let result = if ok { "success" } else { "failure" };
    m.discovery_lookups
        .with_label_values(&[upstream, result])
        .inc();
    if let Some(n) = members {
        m.discovery_members
            .with_label_values(&[upstream])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}
