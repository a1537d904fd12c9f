//! HTTP/2 to backends (`protocol: h2c`, and `h2` over TLS with a private CA): requests, bodies,
//! trailers and health checks go to a real HTTP/2 origin; config checks for the protocol
//! settings.

mod common;

use common::h2::H2Origin;
use common::pki::Pki;
use common::{request, wait_for, Gateway};
use std::process::Command;
use std::time::Duration;

fn config(origin: &H2Origin, extra: &str) -> String {
    format!(
        "upstreams:\n  u:\n    backends: [{{addr: \"{}\"}}]\n    protocol: h2c\n    health_check: {{kind: http, path: /health, interval: 200ms}}\n{extra}routes:\n  - {{name: r, path: /, upstream: u}}\n",
        origin.addr
    )
}

#[test]
fn an_h2_backend_over_tls_is_verified_against_the_upstream_ca_file() {
    let pki = Pki::new();
    pki.issue("origin", &["localhost"]);
    let origin = H2Origin::start_tls("tls", &pki.path("origin.pem"), &pki.path("origin.key"));
    let upstream = |ca: &str| {
        format!(
            "upstreams:\n  u:\n    backends: [{{addr: \"{}\"}}]\n    tls: true\n    sni: localhost\n    protocol: h2\n{ca}    health_check: {{kind: http, path: /health, interval: 200ms}}\nroutes:\n  - {{name: r, path: /, upstream: u}}\n",
            origin.addr
        )
    };
    let ca = pki.path("ca.pem");
    let gw = Gateway::start(&upstream(&format!("    ca_file: {}\n", ca.display())));
    let r = request("GET", &gw.url("/a"), &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["version"], "HTTP/2.0");
    let posted = request("POST", &gw.url("/p"), &[], Some("over TLS"));
    assert_eq!(posted.json()["body"], "over TLS");
    wait_for(
        "an HTTP/2 health check over TLS",
        Duration::from_secs(5),
        || {
            origin
                .seen()
                .contains(&"HTTP/2.0 /health".to_owned())
                .then_some(())
        },
    );

    // Without the CA the system's store does not know the certificate: nothing gets through.
    let before = origin.seen().iter().filter(|p| p.ends_with("/b")).count();
    let untrusted = Gateway::start(&upstream(""));
    let r = request("GET", &untrusted.url("/b"), &[], None);
    assert_eq!(r.status, 502, "{}", r.body);
    let after = origin.seen().iter().filter(|p| p.ends_with("/b")).count();
    assert_eq!(before, after, "an unverified backend was sent the request");
}

#[test]
fn a_ca_file_needs_tls_and_a_readable_pem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text_file = dir.path().join("notes.txt");
    std::fs::write(&text_file, "not a certificate\n").expect("write");
    let (code, text) = common::gateway::check_config(&format!(
        "upstreams:\n  a: {{backends: [{{addr: 127.0.0.1:1}}], ca_file: {0}}}\n  b: {{backends: [{{addr: 127.0.0.1:2}}], tls: true, ca_file: /nonexistent/ca.pem}}\n  c: {{backends: [{{addr: 127.0.0.1:3}}], tls: true, ca_file: {0}}}\nroutes:\n  - {{name: r, path: /, upstream: a}}\n",
        text_file.display()
    ));
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("upstreams.a.ca_file: a CA file is only used with tls: true"),
        "{text}"
    );
    assert!(
        text.contains("upstreams.b.ca_file: cannot read /nonexistent/ca.pem"),
        "{text}"
    );
    let c = format!(
        "upstreams.c.ca_file: cannot read {}: no PEM certificate",
        text_file.display()
    );
    assert!(text.contains(&c), "{text}");
}

#[test]
fn requests_bodies_and_health_checks_reach_an_h2c_backend_in_http2() {
    let origin = H2Origin::start("h2");
    let header =
        common::gateway::header().replace("admin: \"{admin}\"}", "admin: \"{admin}\", h2c: true}");
    let gw = Gateway::start_raw(&format!("{header}{}", config(&origin, "")));
    let r = request("GET", &gw.url("/a?x=1"), &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = r.json();
    assert_eq!(seen["version"], "HTTP/2.0");
    assert_eq!(seen["path"], "/a");
    assert_eq!(r.header("x-backend"), Some("h2"));

    let posted = request("POST", &gw.url("/p"), &[], Some("the body"));
    assert_eq!(posted.json()["body"], "the body");

    // Health checks are HTTP/2 too.
    wait_for("an HTTP/2 health check", Duration::from_secs(5), || {
        origin
            .seen()
            .contains(&"HTTP/2.0 /health".to_owned())
            .then_some(())
    });

    // HTTP/2 end to end keeps the backend's trailers.
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "--http2-prior-knowledge",
            "-D",
            "-",
        ])
        .arg(gw.url("/t"))
        .output()
        .expect("curl must be installed (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(text.starts_with("http/2 200"), "{text}");
    assert!(text.contains("x-trailer: done"), "{text}");
}

#[test]
fn protocol_settings_are_checked() {
    let (code, text) = common::gateway::check_config(
        "upstreams:\n  a: {backends: [{addr: 127.0.0.1:1}], protocol: h2}\n  b: {backends: [{addr: 127.0.0.1:2}], protocol: h2c, tls: true}\n  c: {backends: [{addr: 127.0.0.1:3}], protocol: h2c}\n  d: {backends: [{addr: 127.0.0.1:4}], protocol: http3}\nroutes:\n  - {name: r, path: /, upstream: c, websocket: true}\n",
    );
    assert_eq!(code, Some(1), "{text}");
    for want in [
        "upstreams.a.protocol: h2 is HTTP/2 over TLS and needs tls: true",
        "upstreams.b.protocol: h2c is plaintext HTTP/2",
        "upstreams.d.protocol",
        "routes[0].websocket: WebSocket tunnels need upstreams spoken to in http1",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
}
