//! Members from DNS: every A/AAAA address of `name` on its port, or the SRV records of `srv`
//! (their targets' addresses, ports and weights; only the records of the lowest priority, the
//! others being backups). Looked up again when the answer's TTL runs out, clamped between
//! `min_interval` and `max_interval`.

use super::Found;
use crate::config::file::DnsDiscoveryConfig;
use crate::config::ConfigErrors;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const MIN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(30);
/// One lookup, all its attempts.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Checks `discovery.dns` at `path`.
pub fn check(path: &str, cfg: &DnsDiscoveryConfig, errors: &mut ConfigErrors) {
    match (&cfg.name, &cfg.srv) {
        (Some(name), None) => {
            if split_name(name).is_none() {
                errors.push(
                    format!("{path}.name"),
                    format!("{name:?}: expected host:port (the port the members listen on)"),
                );
            }
        }
        (None, Some(srv)) => {
            if srv.is_empty() || srv.contains(':') {
                errors.push(
                    format!("{path}.srv"),
                    format!("{srv:?}: expected a name such as _http._tcp.users.internal"),
                );
            }
        }
        _ => errors.push(path, "set exactly one of name (A/AAAA) or srv"),
    }
    for (i, ns) in cfg.nameservers.iter().enumerate() {
        if ns.parse::<SocketAddr>().is_err() {
            errors.push(
                format!("{path}.nameservers[{i}]"),
                format!("{ns:?}: expected ip:port"),
            );
        }
    }
    if interval_bounds(cfg).0 > interval_bounds(cfg).1 {
        errors.push(
            format!("{path}.min_interval"),
            "must not be longer than max_interval",
        );
    }
}

/// `host:port` → (host, port).
fn split_name(name: &str) -> Option<(&str, u16)> {
    let (host, port) = name.rsplit_once(':')?;
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

fn interval_bounds(cfg: &DnsDiscoveryConfig) -> (Duration, Duration) {
    (
        cfg.min_interval.map_or(MIN_INTERVAL, |d| d.0),
        cfg.max_interval.map_or(MAX_INTERVAL, |d| d.0),
    )
}

/// How long to wait before the next lookup, for an answer valid `ttl` longer.
pub fn next_lookup(cfg: &DnsDiscoveryConfig, ttl: Duration) -> Duration {
    let (min, max) = interval_bounds(cfg);
    ttl.clamp(min, max)
}

/// After a failed lookup: the floor (the last good set is kept meanwhile).
pub fn retry_after(cfg: &DnsDiscoveryConfig) -> Duration {
    interval_bounds(cfg).0
}

/// A resolver asking `nameservers` (UDP, then TCP for truncated answers), or the system's. Its
/// cache is off: lookups are already spaced by the TTL.
pub fn resolver(cfg: &DnsDiscoveryConfig) -> Result<TokioResolver, String> {
    let mut builder = if cfg.nameservers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| format!("system resolver: {e}"))?
    } else {
        let mut config = ResolverConfig::new();
        for ns in &cfg.nameservers {
            let addr: SocketAddr = ns.parse().map_err(|_| format!("bad nameserver {ns}"))?;
            config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
            config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
        }
        TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.cache_size = 0;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.attempts = 2;
    opts.timeout = Duration::from_secs(1);
    Ok(builder.build())
}

/// The members and how long the answer is valid.
pub async fn lookup(
    resolver: &TokioResolver,
    cfg: &DnsDiscoveryConfig,
) -> Result<(Vec<Found>, Duration), String> {
    let work = async {
        match (&cfg.name, &cfg.srv) {
            (Some(name), _) => by_address(resolver, name).await,
            (None, Some(srv)) => by_service(resolver, srv).await,
            (None, None) => Err("nothing to look up".to_owned()),
        }
    };
    tokio::time::timeout(LOOKUP_TIMEOUT, work)
        .await
        .map_err(|_| format!("no answer within {LOOKUP_TIMEOUT:?}"))?
}

fn ttl(valid_until: Instant) -> Duration {
    valid_until.saturating_duration_since(Instant::now())
}

async fn by_address(
    resolver: &TokioResolver,
    name: &str,
) -> Result<(Vec<Found>, Duration), String> {
    let (host, port) = split_name(name).ok_or_else(|| format!("{name}: expected host:port"))?;
    let answer = resolver
        .lookup_ip(host)
        .await
        .map_err(|e| format!("{host}: {e}"))?;
    let found = answer
        .iter()
        .map(|ip| Found {
            addr: SocketAddr::new(ip, port),
            weight: 1,
            name: None,
        })
        .collect();
    Ok((found, ttl(answer.valid_until())))
}

async fn by_service(resolver: &TokioResolver, srv: &str) -> Result<(Vec<Found>, Duration), String> {
    let answer = resolver
        .srv_lookup(srv)
        .await
        .map_err(|e| format!("{srv}: {e}"))?;
    let mut valid = ttl(answer.as_lookup().valid_until());
    let best = answer.iter().map(|r| r.priority()).min();
    let mut found = Vec::new();
    for record in answer.iter().filter(|r| Some(r.priority()) == best) {
        let target = record.target().to_utf8();
        let ips = resolver
            .lookup_ip(record.target().clone())
            .await
            .map_err(|e| format!("{srv}: target {target}: {e}"))?;
        valid = valid.min(ttl(ips.valid_until()));
        for ip in ips.iter() {
            found.push(Found {
                addr: SocketAddr::new(ip, record.port()),
                // A weight of 0 is "rarely": the least there is here.
                weight: usize::from(record.weight().max(1)),
                name: Some(target.trim_end_matches('.').to_owned()),
            });
        }
    }
    Ok((found, valid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> DnsDiscoveryConfig {
        serde_yaml::from_str(yaml).expect("valid yaml")
    }

    #[test]
    fn the_ttl_is_honoured_between_the_floor_and_the_ceiling() {
        let c = cfg("{name: 'a:80', min_interval: 2s, max_interval: 20s}");
        assert_eq!(
            next_lookup(&c, Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        assert_eq!(next_lookup(&c, Duration::ZERO), Duration::from_secs(2));
        assert_eq!(
            next_lookup(&c, Duration::from_secs(3600)),
            Duration::from_secs(20)
        );
        assert_eq!(retry_after(&c), Duration::from_secs(2));
    }

    #[test]
    fn settings_are_checked_with_their_paths() {
        let mut errors = ConfigErrors::default();
        check("d", &cfg("{name: users.internal}"), &mut errors);
        check("e", &cfg("{srv: '_http._tcp.x', name: 'x:1'}"), &mut errors);
        check(
            "f",
            &cfg("{srv: _http._tcp.x, nameservers: [nope], min_interval: 9s, max_interval: 1s}"),
            &mut errors,
        );
        let text = errors.to_string();
        for needle in [
            "d.name: \"users.internal\": expected host:port",
            "e: set exactly one",
            "f.nameservers[0]",
            "f.min_interval",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
    }
}
