//! HTTPS and HTTP/2 on the proxy: certificates chosen by SNI and verified against a test CA,
//! rotation by SIGHUP while a connection stays open, `gateway -t` on bad certificate files,
//! HTTP/2 over TLS and h2c through the gateway's features.

mod common;

use common::pki::Pki;
use common::{wait_for, Backend, Gateway};
use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

/// A gateway whose `listen` adds `proxy_tls` with the certificates `a` and `b` (and
/// `extra_listen` settings), one route to `backend`; returns it and the HTTPS address.
fn start(pki: &Pki, backend: &Backend, extra_listen: &str) -> (Gateway, SocketAddr) {
    let body = format!(
        "upstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: r, path: /, upstream: u}}\n",
        backend.addr
    );
    start_with(pki, &body, extra_listen)
}

/// As [`start`], with `body` (upstreams, routes, ...) after the header.
fn start_with(pki: &Pki, body: &str, extra_listen: &str) -> (Gateway, SocketAddr) {
    let port = common::free_port();
    let file = |f: &str| pki.path(f).to_string_lossy().into_owned();
    let tls = format!(
        "{{addr: \"127.0.0.1:{port}\", certificates: [{{cert: \"{}\", key: \"{}\"}}, {{cert: \"{}\", key: \"{}\"}}]}}",
        file("a.pem"),
        file("a.key"),
        file("b.pem"),
        file("b.key")
    );
    let extra = if extra_listen.is_empty() {
        String::new()
    } else {
        format!(", {extra_listen}")
    };
    let header = common::gateway::header().replace(
        "admin: \"{admin}\"}",
        &format!("admin: \"{{admin}}\", proxy_tls: {tls}{extra}}}"),
    );
    let gw = Gateway::start_raw(&format!("{header}{body}"));
    (gw, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// A TLS client that checks the chain against the test CA and the name against `sni`.
fn tls_connect(pki: &Pki, addr: SocketAddr, sni: &str, verify: bool) -> SslStream<TcpStream> {
    let mut builder = SslConnector::builder(SslMethod::tls()).expect("connector");
    builder.set_ca_file(pki.path("ca.pem")).expect("ca");
    if !verify {
        builder.set_verify(SslVerifyMode::NONE);
    }
    let connector = builder.build();
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut config = connector.configure().expect("configure");
    if !verify {
        config.set_verify_hostname(false);
    }
    config.connect(sni, tcp).expect("TLS handshake")
}

/// The DNS names of the certificate the server presented.
fn served_names(s: &SslStream<TcpStream>) -> Vec<String> {
    let cert = s.ssl().peer_certificate().expect("a certificate");
    cert.subject_alt_names()
        .map(|n| {
            n.iter()
                .filter_map(|g| g.dnsname().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// One keep-alive request on `s`; the status line and body.
fn exchange(s: &mut SslStream<TcpStream>, host: &str, path: &str) -> (String, String) {
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse().ok())
        .expect("content-length");
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).expect("body");
    let status = head.lines().next().unwrap_or("").to_owned();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn pki_with_two_names() -> Pki {
    let pki = Pki::new();
    pki.issue("a", &["a.example.test"]);
    pki.issue("b", &["*.b.example.test", "b.example.test"]);
    pki
}

#[test]
fn each_name_gets_its_certificate_and_the_chain_verifies() {
    let pki = pki_with_two_names();
    let b = Backend::start("b");
    let (gw, https) = start(&pki, &b, "");
    let mut a = tls_connect(&pki, https, "a.example.test", true);
    assert_eq!(served_names(&a), ["a.example.test"]);
    let (status, body) = exchange(&mut a, "a.example.test", "/x");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let seen: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https");

    let wild = tls_connect(&pki, https, "api.b.example.test", true);
    assert_eq!(served_names(&wild), ["*.b.example.test", "b.example.test"]);
    let apex = tls_connect(&pki, https, "B.Example.Test", true);
    assert_eq!(served_names(&apex)[0], "*.b.example.test");
    // A wildcard covers one label only; unknown names get the first certificate.
    let deep = tls_connect(&pki, https, "x.api.b.example.test", false);
    assert_eq!(served_names(&deep), ["a.example.test"]);

    // Only TLS 1.2 and newer.
    let old = Command::new("openssl")
        .args(["s_client", "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"])
        .args(["-connect", &https.to_string()])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    assert!(!old.status.success(), "TLS 1.1 was accepted");

    // The plain listener still serves HTTP.
    assert_eq!(common::get(&gw.url("/x")).status, 200);
}

#[test]
fn a_reload_rotates_certificates_while_open_connections_keep_going() {
    let pki = pki_with_two_names();
    let b = Backend::start("b");
    let (gw, https) = start(&pki, &b, "");
    let mut held = tls_connect(&pki, https, "a.example.test", true);
    let before = held
        .ssl()
        .peer_certificate()
        .expect("cert")
        .to_der()
        .expect("der");
    assert!(exchange(&mut held, "a.example.test", "/1")
        .0
        .contains("200"));

    // The new certificate under new file names: only the certificate list of `listen` changes.
    pki.issue("a2", &["a.example.test"]);
    let config = std::fs::read_to_string(&gw.config).expect("config");
    let config = config.replace("a.pem", "a2.pem").replace("a.key", "a2.key");
    std::fs::write(&gw.config, config).expect("rewrite");
    gw.signal("HUP");
    wait_for("the reload", Duration::from_secs(10), || {
        gw.metric(r#"config_reloads_total{result="success"}"#)
            .filter(|n| *n >= 1.0)
    });
    let fresh = tls_connect(&pki, https, "a.example.test", true);
    let after = fresh
        .ssl()
        .peer_certificate()
        .expect("cert")
        .to_der()
        .expect("der");
    assert_ne!(before, after, "new connections get the new certificate");
    // The connection opened before the reload still works.
    assert!(exchange(&mut held, "a.example.test", "/2")
        .0
        .contains("200"));
    let log = gw.log();
    assert!(
        !log.contains("listen: changed"),
        "certificates apply on reload: {log}"
    );
}

#[test]
fn bad_certificate_files_are_config_errors_and_a_bad_reload_keeps_the_running_ones() {
    let pki = pki_with_two_names();
    pki.issue("c", &["c.example.test"]);
    let file = |f: &str| pki.path(f).to_string_lossy().into_owned();
    let yaml = format!(
        "listen: {{proxy: 127.0.0.1:1, proxy_tls: {{addr: 127.0.0.1:2, certificates: [{{cert: \"{}\", key: \"{}\"}}, {{cert: \"{}\", key: \"{}\"}}, {{cert: \"{}\", key: \"{}\"}}]}}}}\nupstreams: {{u: {{backends: [{{addr: 127.0.0.1:3}}]}}}}\nroutes: [{{name: r, path: /, upstream: u}}]\n",
        file("a.pem"),
        file("c.key"),
        file("missing.pem"),
        file("b.key"),
        file("ca.key"),
        file("b.pem"),
    );
    let (code, text) = common::gateway::check_config(&yaml);
    assert_eq!(code, Some(1), "{text}");
    for want in [
        "listen.proxy_tls.certificates[0].key: ",
        "is not the private key of the certificate",
        "listen.proxy_tls.certificates[1].cert: cannot read",
        "listen.proxy_tls.certificates[2].cert: ",
        "holds no PEM certificate",
        "listen.proxy_tls.certificates[2].key: ",
        "holds no PEM private key",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }

    // A reload onto a broken key keeps serving the running certificates.
    let b = Backend::start("b");
    let (gw, https) = start(&pki, &b, "");
    std::fs::write(pki.path("a.key"), "not a key").expect("break the key");
    gw.signal("HUP");
    wait_for("the failed reload", Duration::from_secs(10), || {
        gw.metric(r#"config_reloads_total{result="failure"}"#)
            .filter(|n| *n >= 1.0)
    });
    let mut s = tls_connect(&pki, https, "a.example.test", true);
    assert!(exchange(&mut s, "a.example.test", "/x").0.contains("200"));
}

/// `curl` with `args`; the status, HTTP version and body (`-w` appends them).
fn curl(args: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .args(args)
        .output()
        .expect("curl must be installed (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (code, version) = tail.split_once(' ').unwrap_or((tail, ""));
    (
        code.parse().unwrap_or(0),
        version.to_owned(),
        body.to_owned(),
    )
}

#[test]
fn http2_over_tls_and_h2c_go_through_the_same_pipeline() {
    let pki = pki_with_two_names();
    let b = Backend::start("b");
    let (gw, https) = start(&pki, &b, "h2c: true");
    let resolve = format!("a.example.test:{}:127.0.0.1", https.port());
    let ca = pki.path("ca.pem").to_string_lossy().into_owned();
    let url = format!("https://a.example.test:{}/x?via=h2", https.port());
    let (code, version, body) = curl(&["--http2", "--cacert", &ca, "--resolve", &resolve, &url]);
    assert_eq!((code, version.as_str()), (200, "2"), "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https");
    assert_eq!(
        seen["headers"]["x-forwarded-host"],
        format!("a.example.test:{}", https.port())
    );

    // Without h2 in ALPN the client falls back to HTTP/1.1.
    let (code, version, _) = curl(&["--http1.1", "--cacert", &ca, "--resolve", &resolve, &url]);
    assert_eq!((code, version.as_str()), (200, "1.1"));

    // h2c (prior knowledge) on the plain listener.
    let (code, version, body) = curl(&["--http2-prior-knowledge", &gw.url("/y")]);
    assert_eq!((code, version.as_str()), (200, "2"), "{body}");
    // The gateway's own answers over HTTP/2 are the same JSON.
    let (code, version, body) = curl(&[
        "--http2-prior-knowledge",
        "--path-as-is",
        &gw.url("/a/../etc"),
    ]);
    assert_eq!((code, version.as_str()), (400, "2"), "{body}");
    assert!(body.contains("\"code\":\"bad_request\""), "{body}");
    let lines = wait_for("access lines", Duration::from_secs(5), || {
        let lines = gw.access_lines();
        (lines.len() >= 3).then_some(lines)
    });
    assert!(lines.iter().any(|l| l["path"] == "/y"), "{lines:?}");
}

#[test]
fn groups_with_https_redirect_send_plain_http_to_the_https_listener() {
    let pki = pki_with_two_names();
    let b = Backend::start("b");
    let body = format!(
        "security: {{trusted_proxies: [127.0.0.1/32]}}\ngroups:\n  secure: {{prefix: /secure, https_redirect: true}}\nupstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: s, group: secure, path: /, upstream: u}}\n  - {{name: open, path: /open, upstream: u}}\n  - {{name: opted, path: /opted, upstream: u, https_redirect: true}}\n",
        b.addr
    );
    let (gw, https) = start_with(&pki, &body, "");
    let r = common::request(
        "POST",
        &gw.url("/secure/x?q=1"),
        &[("host", "a.example.test:8080")],
        Some("body"),
    );
    assert_eq!(r.status, 308);
    let location = format!("https://a.example.test:{}/secure/x?q=1", https.port());
    assert_eq!(r.header("location"), Some(location.as_str()));
    assert_eq!(b.received(), 0, "nothing went to the backend in plaintext");
    let opted = common::request(
        "GET",
        &gw.url("/opted"),
        &[("host", "a.example.test")],
        None,
    );
    assert_eq!(opted.status, 308);
    assert_eq!(common::get(&gw.url("/open")).status, 200);
    // TLS terminated by a trusted proxy in front: no loop.
    let behind = common::request(
        "GET",
        &gw.url("/secure/y"),
        &[("x-forwarded-proto", "https")],
        None,
    );
    assert_eq!(behind.status, 200);
    // Over HTTPS the route is served.
    let mut s = tls_connect(&pki, https, "a.example.test", true);
    assert!(exchange(&mut s, "a.example.test", "/secure/z")
        .0
        .contains("200"));
    // A Host that is not a plain host name gets no redirect.
    let odd = common::client::raw(
        gw.proxy,
        b"GET /secure/x HTTP/1.1\r\nHost: evil.test@a.example.test\r\n\r\n",
    );
    assert!(odd.starts_with("HTTP/1.1 400"), "{odd}");

    // Without an HTTPS listener the setting is a config error.
    let (_, text) = common::gateway::check_config(
        "groups: {g: {prefix: /g, https_redirect: true}}\nupstreams: {u: {backends: [{addr: 127.0.0.1:1}]}}\nroutes: [{name: r, group: g, path: /, upstream: u}, {name: s, path: /s, upstream: u, https_redirect: true}]\n",
    );
    assert!(
        text.contains("groups.g.https_redirect: needs listen.proxy_tls"),
        "{text}"
    );
    assert!(
        text.contains("routes[1].https_redirect: needs listen.proxy_tls"),
        "{text}"
    );
}
