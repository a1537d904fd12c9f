//! Auth fixtures: users hashed by the real `gateway hash-password`, an API key, the auth
//! section and routes, and login helpers.

use super::gateway::BIN;
use super::{request, Backend, Gateway, Resp};
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub const SECRET: &str = "test-secret-0123456789-abcdefghijklmnop";
pub const API_KEY: &str = "k-ci-0123456789";
/// An API key with the admin role (see [`auth_section_with_admin_key`]).
pub const ADMIN_KEY: &str = "k-admin-0123456789";

/// `gateway hash-password`, through the real binary.
pub fn hash(password: &str) -> String {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run hash-password");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write password");
    let out = child.wait_with_output().expect("hash-password output");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}

fn hashes() -> &'static (String, String) {
    static H: OnceLock<(String, String)> = OnceLock::new();
    H.get_or_init(|| (hash("alice-pass"), hash("admin-pass")))
}

pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn auth_section(store: &str) -> String {
    let (alice, admin) = hashes();
    format!(
        "auth:\n  jwt: {{algorithm: HS256, secret: \"{SECRET}\", issuer: gw-test, audience: api, access_ttl: 15m, refresh_ttl: 1h, leeway: 30s}}\n  users:\n    - {{username: alice, password_hash: \"{alice}\", roles: [user]}}\n    - {{username: admin, password_hash: \"{admin}\", roles: [admin, user]}}\n  api_keys:\n    - {{name: ci-bot, key_hash: \"sha256:{}\", roles: [user]}}\n  revocation_store: {store}\n",
        sha256_hex(API_KEY)
    )
}

/// [`auth_section`] with a second API key, `ops-bot`, of role admin ([`ADMIN_KEY`]).
pub fn auth_section_with_admin_key(store: &str) -> String {
    auth_section(store).replace(
        "  revocation_store:",
        &format!(
            "    - {{name: ops-bot, key_hash: \"sha256:{}\", roles: [admin]}}\n  revocation_store:",
            sha256_hex(ADMIN_KEY)
        ),
    )
}

pub fn routes(backend: &Backend) -> String {
    format!(
        "upstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: open, path: /open, upstream: u}}\n  - {{name: user, path: /me, upstream: u, auth: {{required: true, roles: [user]}}}}\n  - {{name: admin, path: /admin, upstream: u, auth: {{required: true, roles: [admin]}}}}\n",
        backend.addr
    )
}

pub fn login(gw: &Gateway, user: &str, password: &str) -> Resp {
    let body = json!({"username": user, "password": password}).to_string();
    request(
        "POST",
        &gw.url("/auth/login"),
        &[("content-type", "application/json")],
        Some(&body),
    )
}

pub fn tokens(gw: &Gateway, user: &str, password: &str) -> (String, String) {
    let r = login(gw, user, password);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    (
        v["access_token"].as_str().expect("access").to_owned(),
        v["refresh_token"].as_str().expect("refresh").to_owned(),
    )
}

pub fn with_token(gw: &Gateway, path: &str, token: &str) -> Resp {
    request(
        "GET",
        &gw.url(path),
        &[("authorization", &format!("Bearer {token}"))],
        None,
    )
}

/// Runs `openssl` (test keys are made fresh, never stored in the repository).
pub fn openssl(args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .expect("openssl must be installed (.ci/run installs it)");
    assert!(ok.success(), "openssl {args:?}");
}

/// A fresh 2048-bit RSA private key, PEM.
pub fn rsa_pem() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("rsa.pem");
    let path = path.to_str().expect("path");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        path,
    ]);
    std::fs::read(path).expect("pem")
}
