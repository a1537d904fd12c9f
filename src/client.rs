//! Who is asking, for every listener: the TCP peer's address as the IPv4 address it is when a
//! dual-stack listener reports it mapped, and the client address behind trusted proxies.

use crate::security::TrustedProxies;
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession;
use std::net::IpAddr;

const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// The TCP peer's address; an IPv4 client of a dual-stack listener (`::ffff:a.b.c.d`) as the
/// IPv4 address it is, so IPv4 rules and trusted proxies apply to it.
pub fn peer_ip(session: &ServerSession) -> Option<IpAddr> {
    let addr = session.client_addr()?.as_inet()?;
    Some(addr.ip().to_canonical())
}

/// The client address: the TCP peer, or, when the peer is a trusted proxy, the right-most
/// address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, trusted: &TrustedProxies, req: &RequestHeader) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let mut client = peer;
    for value in req.headers.get_all(X_FORWARDED_FOR).iter().rev() {
        let Ok(text) = value.to_str() else {
            return client;
        };
        for hop in text.rsplit(',') {
            match hop.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()) {
                Ok(ip) => {
                    client = ip;
                    if !trusted.contains(ip) {
                        return client;
                    }
                }
                Err(_) => return client,
            }
        }
    }
    client
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::ConfigErrors;

    /// Trusted proxies from CIDR texts (shared with the forwarded-header tests).
    pub(crate) fn trusted(list: &[&str]) -> TrustedProxies {
        let list: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        let mut errors = ConfigErrors::default();
        let t = TrustedProxies::build(&list, &mut errors);
        assert!(errors.is_empty(), "{errors}");
        t
    }

    /// A GET with these `X-Forwarded-For` lines.
    pub(crate) fn req(xff: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).expect("request");
        for v in xff {
            r.append_header("x-forwarded-for", *v).expect("header");
        }
        r
    }

    pub(crate) fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let t = trusted(&["10.0.0.0/8"]);
        let client = client_ip(ip("203.0.113.9"), &t, &req(&["1.2.3.4"]));
        assert_eq!(client, ip("203.0.113.9"));
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_wins() {
        let t = trusted(&["10.0.0.0/8", "127.0.0.1"]);
        // The client wrote "6.6.6.6" itself; the proxy appended the address it saw.
        let r = req(&["6.6.6.6, 198.51.100.7, 10.0.0.2"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &t, &r), ip("198.51.100.7"));
        // Several header lines are one list, in order.
        let r = req(&["6.6.6.6", "198.51.100.7", "10.1.1.1"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &t, &r), ip("198.51.100.7"));
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_good_hop() {
        let t = trusted(&["10.0.0.0/8"]);
        let r = req(&["1.1.1.1, not-an-ip, 10.0.0.3"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &t, &r),
            ip("10.0.0.3"),
            "a trusted hop before garbage is as far as the chain can be believed"
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &t, &req(&[])), ip("10.0.0.1"));
        let all_trusted = req(&["10.9.9.9, 10.0.0.3"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &t, &all_trusted), ip("10.9.9.9"));
    }

    #[test]
    fn ipv4_mapped_hops_count_as_ipv4() {
        let t = trusted(&["10.0.0.0/8"]);
        let r = req(&["::ffff:198.51.100.7, ::ffff:10.0.0.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &t, &r), ip("198.51.100.7"));
    }
}
