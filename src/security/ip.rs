//! Client IP allow/deny lists (CIDRs). Deny wins; a non-empty allow list admits only its ranges.

use ipnet::IpNet;
use std::net::IpAddr;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IpRules {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl IpRules {
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
