//! The config in etcd, end to end: a real etcd member, two gateway instances watching one
//! document, `gateway config push` with compare-and-swap, a refused document, etcd lost and
//! back, and starting from the local copy.

mod common;

use common::auth::{auth_section_with_admin_key, ADMIN_KEY};
use common::etcd::Etcd;
use common::gateway::{header, BIN};
use common::pki::Pki;
use common::{get, request, wait_for, Backend, Gateway};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const KEY: &str = "/gw-test/config";

/// The local file of an instance: listeners and where etcd is.
fn local(etcd: &Etcd) -> String {
    format!(
        "{}etcd: {{endpoints: [\"{}\"], prefix: /gw-test/, timeout: 1s}}\n",
        header(),
        etcd.endpoint()
    )
}

/// The shared document: auth (with the admin key), one upstream, a route per prefix.
fn document(backend: &Backend, prefixes: &[&str]) -> String {
    let mut doc = format!(
        "{}upstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n",
        auth_section_with_admin_key("memory"),
        backend.addr
    );
    for p in prefixes {
        doc.push_str(&format!(
            "  - {{name: r{}, path: {p}, upstream: u}}\n",
            p.trim_start_matches('/')
        ));
    }
    doc
}

/// `gateway -c <local> config <args>`, with the document written to a file first.
fn config_cmd(local: &Path, doc: Option<&str>, args: &[&str]) -> Output {
    let dir = local.parent().expect("config dir");
    let mut cmd = Command::new(BIN);
    cmd.arg("-c").arg(local).arg("config").args(args);
    if let Some(doc) = doc {
        let file = dir.join("push.yaml");
        std::fs::write(&file, doc).expect("write document");
        cmd.arg(&file);
    }
    cmd.output().expect("gateway config")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes a local file into a fresh dir (for the CLI) and returns both.
fn operator(etcd: &Etcd) -> (tempfile::TempDir, std::path::PathBuf) {
    operator_with(&local(etcd))
}

/// As [`operator`], with this local file.
fn operator_with(local: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("local.yaml");
    let yaml = local
        .replace("{proxy}", "127.0.0.1:1")
        .replace("{metrics}", "127.0.0.1:2")
        .replace("{admin}", "127.0.0.1:3")
        .replace("{dir}", &dir.path().display().to_string());
    std::fs::write(&path, yaml).expect("write local file");
    (dir, path)
}

/// Pushes the document with route `/v1` (there is none yet); the operator's dir stays while
/// the returned value lives.
fn push_v1(etcd: &Etcd, backend: &Backend) -> tempfile::TempDir {
    let (dir, op_file) = operator(etcd);
    let out = config_cmd(&op_file, Some(&document(backend, &["/v1"])), &["push"]);
    assert!(out.status.success(), "{}", text(&out));
    dir
}

fn health(gw: &Gateway) -> Value {
    get(&gw.url("/health")).json()
}

fn admin(gw: &Gateway, method: &str, path: &str) -> Value {
    let r = request(
        method,
        &gw.admin_url(path),
        &[("x-api-key", ADMIN_KEY)],
        None,
    );
    r.json()
}

fn serves(gw: &Gateway, path: &str) -> bool {
    get(&gw.url(path)).status == 200
}

#[test]
fn instances_converge_on_a_pushed_document_and_keep_running_past_a_bad_one() {
    let etcd = Etcd::start();
    let backend = Backend::start("b");
    let (_op, op_file) = operator(&etcd);
    let first = config_cmd(&op_file, Some(&document(&backend, &["/v1"])), &["push"]);
    assert!(first.status.success(), "{}", text(&first));
    let rev1: i64 = text(&first)
        .rsplit("revision ")
        .next()
        .and_then(|r| r.trim().parse().ok())
        .expect("push prints the revision");

    let a = Gateway::start_raw(&local(&etcd));
    let b = Gateway::start_raw(&local(&etcd));
    for gw in [&a, &b] {
        assert!(serves(gw, "/v1/x"));
        assert!(!serves(gw, "/v2/x"));
        assert!(gw.config.with_file_name("gateway.yaml.etcd-cache").exists());
        let h = health(gw);
        assert_eq!(h["config"]["source"], "etcd");
        assert_eq!(h["config"]["revision"], rev1);
        assert_eq!(h["checks"]["etcd"], "ok");
        assert_eq!(gw.metric("config_etcd_revision"), Some(rev1 as f64));
    }

    // A push with the revision it started from: both instances run it within 2 s.
    let rev = rev1.to_string();
    let pushed = Instant::now();
    let second = config_cmd(
        &op_file,
        Some(&document(&backend, &["/v1", "/v2"])),
        &["push", "--revision", &rev],
    );
    assert!(second.status.success(), "{}", text(&second));
    for gw in [&a, &b] {
        wait_for(
            "the new route on every instance",
            Duration::from_secs(2),
            || serves(gw, "/v2/x").then_some(()),
        );
    }
    assert!(pushed.elapsed() < Duration::from_secs(2));
    let rev2 = health(&a)["config"]["revision"].as_i64().expect("revision");
    assert!(rev2 > rev1);
    assert_eq!(health(&b)["config"]["revision"], rev2);
    let source = admin(&a, "GET", "/api/config")["source"].clone();
    assert_eq!(source["kind"], "etcd");
    assert_eq!(source["key"], KEY);
    assert_eq!(source["revision"], rev2);
    assert_eq!(source["connected"], true);

    // A document that does not validate, written straight to etcd: refused with its paths,
    // counted and shown; the running config stays.
    let bad = document(&backend, &["/v3"]).replace("upstream: u}", "upstream: nope}");
    etcd.put(KEY, &bad);
    for gw in [&a, &b] {
        let refused = wait_for("the refusal to show", Duration::from_secs(2), || {
            let h = health(gw);
            h["config"]["refused_revision"].as_i64()
        });
        assert!(refused > rev2);
        assert_eq!(health(gw)["config"]["revision"], rev2);
        assert!(serves(gw, "/v2/x") && !serves(gw, "/v3/x"));
        let source = admin(gw, "GET", "/api/config")["source"].clone();
        let problems = source["refused"]["problems"]
            .as_array()
            .expect("problems")
            .clone();
        assert_eq!(problems[0]["path"], "routes[0].upstream", "{source}");
        assert_eq!(
            gw.metric("config_reloads_total{result=\"failure\"}"),
            Some(1.0)
        );
        assert!(gw.log().contains("routes[0].upstream"), "{}", gw.log());
    }

    // The admin API's reload says where the config comes from and keeps the running revision.
    let reloaded = admin(&a, "POST", "/api/reload");
    assert_eq!(reloaded["reloaded"], true, "{reloaded}");
    assert_eq!(reloaded["source"]["kind"], "etcd");
    assert_eq!(reloaded["source"]["revision"], rev2);
    assert!(serves(&a, "/v2/x"));
}

#[test]
fn config_push_validates_and_never_overwrites_another_push() {
    let etcd = Etcd::start();
    let backend = Backend::start("b");
    let (_op, op_file) = operator(&etcd);

    // A document that does not validate is not written.
    let bad = document(&backend, &["/v1"]).replace("upstream: u}", "upstream: nope}");
    let out = config_cmd(&op_file, Some(&bad), &["push"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("routes[0].upstream"), "{}", text(&out));
    assert_eq!(etcd.get(KEY), None);
    // Nor one setting what only the local file may set.
    let with_listen = format!(
        "listen: {{proxy: \"127.0.0.1:9\"}}\n{}",
        document(&backend, &["/v1"])
    );
    let out = config_cmd(&op_file, Some(&with_listen), &["push"]);
    assert!(
        text(&out).contains("listen: in the etcd document"),
        "{}",
        text(&out)
    );
    assert_eq!(etcd.get(KEY), None);

    let v1 = document(&backend, &["/v1"]);
    let out = config_cmd(&op_file, Some(&v1), &["push"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(etcd.get(KEY).as_deref(), Some(v1.as_str()));
    let got = config_cmd(&op_file, None, &["get"]);
    let got_text = text(&got);
    let at = got_text
        .rsplit("revision ")
        .next()
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.parse::<i64>().ok())
        .expect("get prints the revision");

    // Two operators start from the same revision: the first push wins, the second is refused.
    let at_text = at.to_string();
    let first = config_cmd(
        &op_file,
        Some(&document(&backend, &["/v1", "/a"])),
        &["push", "--revision", &at_text],
    );
    assert!(first.status.success(), "{}", text(&first));
    let second = config_cmd(
        &op_file,
        Some(&document(&backend, &["/v1", "/b"])),
        &["push", "--revision", &at_text],
    );
    assert!(!second.status.success());
    assert!(
        text(&second).contains("someone pushed since"),
        "{}",
        text(&second)
    );
    assert!(etcd.get(KEY).expect("document").contains("/a"));
    // Without a revision, an existing document is not replaced; `--force` replaces it.
    let plain = config_cmd(&op_file, Some(&document(&backend, &["/c"])), &["push"]);
    assert!(!plain.status.success());
    assert!(
        text(&plain).contains("already holds a document"),
        "{}",
        text(&plain)
    );
    let forced = config_cmd(
        &op_file,
        Some(&document(&backend, &["/c"])),
        &["push", "--force"],
    );
    assert!(forced.status.success(), "{}", text(&forced));
    assert!(etcd.get(KEY).expect("document").contains("/c"));
}

#[test]
fn etcd_lost_keeps_serving_and_the_watch_resumes() {
    let mut etcd = Etcd::start();
    let backend = Backend::start("b");
    let _op = push_v1(&etcd, &backend);
    let gw = Gateway::start_raw(&local(&etcd));
    assert!(serves(&gw, "/v1/x"));

    etcd.kill();
    wait_for("the watch to notice", Duration::from_secs(10), || {
        (health(&gw)["checks"]["etcd"] == "down").then_some(())
    });
    let h = health(&gw);
    assert_eq!(h["status"], "degraded");
    assert!(serves(&gw, "/v1/x"));
    assert_eq!(gw.metric("config_etcd_connected"), Some(0.0));

    // Back, with a change written before the instance reconnects.
    etcd.restart();
    etcd.put(KEY, &document(&backend, &["/v1", "/v2"]));
    wait_for(
        "the change made while away",
        Duration::from_secs(15),
        || serves(&gw, "/v2/x").then_some(()),
    );
    assert_eq!(health(&gw)["checks"]["etcd"], "ok");
    // And the watch runs again after that.
    etcd.put(KEY, &document(&backend, &["/v1", "/v2", "/v3"]));
    wait_for(
        "a change after the reconnect",
        Duration::from_secs(2),
        || serves(&gw, "/v3/x").then_some(()),
    );
}

#[test]
fn start_while_etcd_is_unreachable_uses_the_local_copy_or_refuses() {
    let mut etcd = Etcd::start();
    let backend = Backend::start("b");
    let _op = push_v1(&etcd, &backend);
    // The copy kept where the next process (a fresh temp dir) finds it.
    let kept = tempfile::tempdir().expect("temp dir");
    let copy = kept.path().join("gateway.etcd-cache");
    let with_copy = local(&etcd).replace(
        "timeout: 1s}",
        &format!("timeout: 1s, cache_file: \"{}\"}}", copy.display()),
    );
    let gw = Gateway::start_raw(&with_copy);
    let revision = health(&gw)["config"]["revision"].clone();
    assert!(copy.exists(), "the applied document is kept");
    drop(gw);
    etcd.kill();

    // With the copy: starts on it, says so, and serves its routes.
    let again = Gateway::start_raw(&with_copy);
    assert!(serves(&again, "/v1/x"));
    let h = health(&again);
    assert_eq!(h["config"]["revision"], revision);
    assert_eq!(h["checks"]["etcd"], "down");
    assert!(
        again.log().contains("starting from the local copy"),
        "{}",
        again.log()
    );
    let source = admin(&again, "GET", "/api/config")["source"].clone();
    assert_eq!(source["from_local_copy"], true);

    // Without one (the default place, beside a new config file, is empty): refuses to start,
    // saying why.
    let mut bare = Gateway::spawn(&local(&etcd), &[]);
    let status = bare.wait_exit(Duration::from_secs(20));
    assert!(!status.success());
    assert!(bare.log().contains("no local copy"), "{}", bare.log());
}

#[test]
fn etcd_over_tls_with_a_client_certificate_and_a_password() {
    let pki = Pki::new();
    pki.issue("etcd", &["127.0.0.1"]);
    let path = |f: &str| pki.path(f).display().to_string();
    let mut etcd = Etcd::start_tls(&path("ca.pem"), &path("etcd.pem"), &path("etcd.key"));
    etcd.enable_auth("gw", "gw-pass", "/gw-test/");
    let backend = Backend::start("b");
    let secure = |password: &str| {
        format!(
            "{}etcd:\n  endpoints: [\"{}\"]\n  prefix: /gw-test/\n  timeout: 1s\n  username: gw\n  password: \"{password}\"\n  tls: {{ca_file: \"{}\", cert_file: \"{}\", key_file: \"{}\"}}\n",
            header(),
            etcd.endpoint(),
            path("ca.pem"),
            path("etcd.pem"),
            path("etcd.key")
        )
    };
    let (_op, op_file) = operator_with(&secure("gw-pass"));
    let out = config_cmd(&op_file, Some(&document(&backend, &["/v1"])), &["push"]);
    assert!(out.status.success(), "{}", text(&out));
    let gw = Gateway::start_raw(&secure("gw-pass"));
    assert!(serves(&gw, "/v1/x"));
    // The watch runs on the same authenticated connection.
    etcd.put(KEY, &document(&backend, &["/v1", "/v2"]));
    wait_for("the change over TLS", Duration::from_secs(2), || {
        serves(&gw, "/v2/x").then_some(())
    });
    // A wrong password: the start is refused with etcd's reason.
    let mut bad = Gateway::spawn(&secure("wrong-pass"), &[]);
    assert!(!bad.wait_exit(Duration::from_secs(20)).success());
    assert!(bad.log().contains("authentication failed"), "{}", bad.log());
    // Without the client certificate, etcd refuses the connection.
    let (_op2, no_cert) = operator_with(&secure("gw-pass").replace(
        &format!(
            ", cert_file: \"{}\", key_file: \"{}\"",
            path("etcd.pem"),
            path("etcd.key")
        ),
        "",
    ));
    let out = config_cmd(&no_cert, None, &["get"]);
    assert!(!out.status.success(), "{}", text(&out));
}
