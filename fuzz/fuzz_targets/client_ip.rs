//! Any X-Forwarded-For values: the client address is the peer, or an address written in them,
//! never a panic; an untrusted peer is always its own client.
#![no_main]

use api_gateway::fuzzing::{client_ip, RequestHeader};
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

fuzz_target!(|data: &[u8]| {
    let Some((first, values)) = data.split_first() else {
        return;
    };
    let mut req = RequestHeader::build("GET", b"/", None).expect("request");
    for value in values.split(|b| *b == b'\n') {
        if let Ok(v) = http::HeaderValue::from_bytes(value) {
            req.append_header("x-forwarded-for", v).expect("header");
        }
    }
    let peer: IpAddr = if first % 2 == 0 {
        [10, 0, 0, 1].into()
    } else {
        [203, 0, 113, 1].into()
    };
    let client = client_ip(
        peer,
        &["10.0.0.0/8", "::ffff:0:0/96", "2001:db8::/32"],
        &req,
    );
    if !peer.to_canonical().is_ipv4() || peer == IpAddr::from([203, 0, 113, 1]) {
        assert_eq!(client, peer, "an untrusted peer is the client");
    }
    if client != peer {
        let written: Vec<IpAddr> = values
            .split(|b| *b == b'\n')
            .flat_map(|v| v.split(|b| *b == b','))
            .filter_map(|hop| std::str::from_utf8(hop).ok()?.trim().parse::<IpAddr>().ok())
            .map(|ip| ip.to_canonical())
            .collect();
        assert!(
            written.contains(&client),
            "{client} is not among {written:?}"
        );
    }
});
