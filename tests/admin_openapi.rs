//! The OpenAPI description stays true: schemathesis (from PyPI; `.ci/run` installs it) generates
//! requests from `/api/openapi.json` and checks every answer of the running gateway against it,
//! with a real Prometheus behind the PromQL endpoints.

mod common;

use common::auth::{auth_section_with_admin_key, ADMIN_KEY};
use common::prometheus::prometheus;
use common::{request, wait_for, Backend, Gateway};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// `SCHEMATHESIS`, else `schemathesis` on the PATH, else the CI venv's.
fn schemathesis() -> PathBuf {
    if let Some(p) = std::env::var_os("SCHEMATHESIS") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("schemathesis"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| PathBuf::from("/opt/ci-venv/bin/schemathesis"))
}

#[test]
fn schemathesis_finds_the_api_as_described() {
    let backend = Backend::start("b");
    let auth = auth_section_with_admin_key("memory");
    // The gateway is started first so Prometheus can scrape it; its URL comes in by reload.
    let body = |prometheus_url: &str| {
        format!(
            "admin: {{prometheus_url: \"{prometheus_url}\"}}\n{auth}upstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: c, path: /c, upstream: u, cache: {{enabled: true}}}}\n",
            backend.addr
        )
    };
    let gw = Gateway::start(&body("http://127.0.0.1:1"));
    let prom = prometheus(gw.metrics);
    gw.reconfigure(&body(&prom.url));
    let key = [("x-api-key", ADMIN_KEY)];
    let r = request("POST", &gw.admin_url("/api/reload"), &key, None);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(
        "prometheus to answer through the gateway",
        Duration::from_secs(20),
        || {
            (request("GET", &gw.admin_url("/api/promql?query=up"), &key, None).status == 200)
                .then_some(())
        },
    );

    let doc = request("GET", &gw.admin_url("/api/openapi.json"), &key, None);
    assert_eq!(doc.status, 200);
    let schema = gw.dir.path().join("openapi.json");
    std::fs::write(&schema, &doc.body).expect("write the schema");
    let bin = schemathesis();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let out = Command::new(&bin)
        .args(["--config-file", config, "run"])
        .arg(&schema)
        .args(["--url", &format!("http://{}", gw.admin)])
        .args(["--header", &format!("X-API-Key: {ADMIN_KEY}")])
        .args([
            "--checks",
            "all",
            "--max-examples",
            "25",
            "--seed",
            "7",
            // One worker: Python 3.11 (Debian 12's) shares its AST construction state between
            // threads, and hypothesis parsing lambda sources in two workers at once now and then
            // failed a run with "AST constructor recursion depth mismatch" (cpython#106905).
            "--workers",
            "1",
        ])
        .args(["--no-color", "--request-timeout", "15"])
        .current_dir(gw.dir.path())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): pip install schemathesis, or run .ci/run",
                bin.display()
            )
        });
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}"
    );
    assert!(
        report.contains("Tested: 13"),
        "every operation was tested:\n{report}"
    );
}
