//! Client IP allow/deny lists (CIDRs). Deny wins; a non-empty allow list admits only its ranges.

use super::SecurityError;
use crate::config::ConfigErrors;
use ipnet::IpNet;
use std::net::IpAddr;

/// Parses a CIDR (`10.0.0.0/8`) or a single address (`127.0.0.1`).
pub fn parse_cidr(text: &str) -> Result<IpNet, SecurityError> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| SecurityError::Cidr(text.to_owned()))
}

/// Parses a list of CIDRs at `path`, pushing each bad entry.
fn parse_list(path: &str, list: &[String], errors: &mut ConfigErrors) -> Vec<IpNet> {
    list.iter()
        .enumerate()
        .filter_map(|(i, text)| {
            parse_cidr(text)
                .map_err(|e| errors.push(format!("{path}[{i}]"), e))
                .ok()
        })
        .collect()
}

/// `security.trusted_proxies`: peers whose `X-Forwarded-*` headers are believed.
#[derive(Debug, Default, Clone)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn build(list: &[String], errors: &mut ConfigErrors) -> TrustedProxies {
        TrustedProxies(parse_list("security.trusted_proxies", list, errors))
    }

    /// True when `ip` may set `X-Forwarded-*` headers for the clients behind it.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IpRules {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl IpRules {
    /// The `ip_allow` / `ip_deny` lists of one level (`path`: `security`, `groups.x`, ...).
    pub fn build(
        path: &str,
        allow: &[String],
        deny: &[String],
        errors: &mut ConfigErrors,
    ) -> IpRules {
        IpRules {
            allow: parse_list(&format!("{path}.ip_allow"), allow, errors),
            deny: parse_list(&format!("{path}.ip_deny"), deny, errors),
        }
    }

    /// Effective rules of a route: deny lists add up (global, group, route); the most specific
    /// non-empty allow list applies.
    pub fn combine(levels: [&IpRules; 3]) -> IpRules {
        IpRules {
            allow: levels
                .iter()
                .rev()
                .find(|l| !l.allow.is_empty())
                .map(|l| l.allow.clone())
                .unwrap_or_default(),
            deny: levels.iter().flat_map(|l| l.deny.iter().copied()).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// True when a client at `ip` gets through: no rules, or an address they permit (an
    /// unknown address gets through only when there are no rules).
    pub fn admit(&self, ip: Option<IpAddr>) -> bool {
        self.is_empty() || ip.is_some_and(|ip| self.permits(ip))
    }

    /// True when `ip` may use the route.
    pub fn permits(&self, ip: IpAddr) -> bool {
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().expect("cidr")).collect()
    }

    #[test]
    fn deny_wins_and_specific_allow_applies() {
        let global = IpRules {
            allow: nets(&["10.0.0.0/8"]),
            deny: nets(&["10.9.0.0/16"]),
        };
        let group = IpRules {
            allow: vec![],
            deny: nets(&["10.1.0.0/16"]),
        };
        let route = IpRules {
            allow: nets(&["10.1.2.0/24", "192.168.0.0/16"]),
            deny: vec![],
        };
        let r = IpRules::combine([&global, &group, &route]);
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(
            r.permits(ip("192.168.1.1")),
            "route allow replaces the global one"
        );
        assert!(!r.permits(ip("10.1.2.3")), "group deny still applies");
        assert!(!r.permits(ip("10.2.0.1")), "outside the route's allow list");
        let only_global = IpRules::combine([&global, &IpRules::default(), &IpRules::default()]);
        assert!(only_global.permits(ip("10.2.0.1")));
        assert!(!only_global.permits(ip("10.9.1.1")));
        assert!(!only_global.permits(ip("8.8.8.8")));
    }
}
