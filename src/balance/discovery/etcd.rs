//! Members registered in etcd: one key per instance under the upstream's prefix, its value
//! `ip:port` or `{"addr": "ip:port", "weight": 2, "name": "users-7"}`. An instance registers with
//! a lease it keeps alive; when it dies the lease expires, the key goes, and so does the member.

use super::Found;
use crate::config::file::EtcdConfig;
use crate::etcd::{bounded, call_error, connect, EtcdError};
use etcd_client::{Client, EventType, GetOptions, WatchOptions, WatchStream};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Registration {
    addr: SocketAddr,
    #[serde(default = "one")]
    weight: usize,
    #[serde(default)]
    name: Option<String>,
}

fn one() -> usize {
    1
}

/// A registration's value as a member.
pub fn parse(value: &[u8]) -> Result<Found, String> {
    let text = std::str::from_utf8(value).map_err(|_| "not UTF-8".to_owned())?;
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(Found {
            addr,
            weight: 1,
            name: None,
        });
    }
    let r: Registration = serde_json::from_str(text)
        .map_err(|e| format!("{text:?}: expected ip:port or {{\"addr\": \"ip:port\"}}: {e}"))?;
    if r.weight == 0 {
        return Err(format!("{text:?}: weight must be at least 1"));
    }
    Ok(Found {
        addr: r.addr,
        weight: r.weight,
        name: r.name,
    })
}

/// The registrations under a prefix, by key.
#[derive(Default)]
pub struct Registry {
    members: BTreeMap<Vec<u8>, Found>,
}

impl Registry {
    fn put(&mut self, key: &[u8], value: &[u8], upstream: &str) {
        match parse(value) {
            Ok(found) => {
                self.members.insert(key.to_vec(), found);
            }
            Err(e) => {
                log::warn!(
                    "upstream {upstream}: registration {} left out: {e}",
                    String::from_utf8_lossy(key)
                );
                self.members.remove(key);
            }
        }
    }

    pub fn members(&self) -> Vec<Found> {
        self.members.values().cloned().collect()
    }
}

/// A watched prefix: the registrations now, and the stream of their changes.
pub struct Watch {
    pub registry: Registry,
    stream: WatchStream,
    upstream: String,
    cfg: EtcdConfig,
}

/// Reads every registration under `prefix` and watches from the revision of that read.
pub async fn watch(cfg: &EtcdConfig, prefix: &str, upstream: &str) -> Result<Watch, EtcdError> {
    let mut client: Client = connect(cfg).await?;
    let listed = bounded(
        cfg,
        client.get(prefix, Some(GetOptions::new().with_prefix())),
    )
    .await?;
    let revision = listed.header().map_or(0, |h| h.revision());
    let mut registry = Registry::default();
    for kv in listed.kvs() {
        registry.put(kv.key(), kv.value(), upstream);
    }
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let stream = bounded(cfg, client.watch(prefix, Some(options))).await?;
    Ok(Watch {
        registry,
        stream,
        upstream: upstream.to_owned(),
        cfg: cfg.clone(),
    })
}

impl Watch {
    /// Waits for the next change and applies it; `Ok(false)` when the watch ended (cancelled,
    /// compacted) and must be started again.
    pub async fn next(&mut self) -> Result<bool, EtcdError> {
        let answer = self.stream.message().await.map_err(call_error(&self.cfg))?;
        let Some(answer) = answer else {
            return Ok(false);
        };
        if answer.canceled() || answer.compact_revision() > 0 {
            return Ok(false);
        }
        for event in answer.events() {
            let Some(kv) = event.kv() else { continue };
            match event.event_type() {
                EventType::Put => self.registry.put(kv.key(), kv.value(), &self.upstream),
                EventType::Delete => {
                    self.registry.members.remove(kv.key());
                }
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_are_an_address_or_a_json_object() {
        let plain = parse(b"10.0.0.5:8080\n").expect("plain");
        assert_eq!(plain.addr, "10.0.0.5:8080".parse().expect("addr"));
        assert_eq!(plain.weight, 1);
        let json = parse(br#"{"addr": "[::1]:81", "weight": 3, "name": "u-7"}"#).expect("json");
        assert_eq!((json.weight, json.name.as_deref()), (3, Some("u-7")));
        for bad in [
            &b"users:80"[..],
            b"{\"addr\": \"1.2.3.4:5\", \"weight\": 0}",
            b"\xff",
        ] {
            assert!(parse(bad).is_err());
        }
    }
}
