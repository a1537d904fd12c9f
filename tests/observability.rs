//! Metrics on their own listener and the access log, end to end.

mod common;

use common::{dead_addr, get, request, wait_for, Backend, Gateway};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `name{labels}` → value, from Prometheus text.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn value(gw: &Gateway, key: &str) -> f64 {
    samples(&gw.scrape()).get(key).copied().unwrap_or(0.0)
}

fn config(backend: &str) -> String {
    format!(
        "upstreams:\n  u: {{backends: [{{addr: \"{backend}\"}}]}}\n  gone: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: r, path: /a, upstream: u}}\n  - {{name: down, path: /down, upstream: gone}}\n",
        dead_addr()
    )
}

#[test]
fn counts_are_exact_and_every_metric_has_its_labels() {
    let b = Backend::start("b");
    let gw = Gateway::start(&config(&b.addr.to_string()));
    for _ in 0..5 {
        assert_eq!(get(&gw.url("/a")).status, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(&gw.url("/a/x?status=404")).status, 404);
    }
    assert_eq!(request("POST", &gw.url("/a"), &[], Some("{}")).status, 200);
    for _ in 0..2 {
        assert_eq!(get(&gw.url("/nope")).status, 404);
    }
    assert_eq!(get(&gw.url("/down")).status, 502);
    gw.signal("HUP");
    let total = r#"http_requests_total{method="GET",route="r",status="200"}"#;
    // Recording happens after the answer is sent: wait for the last request to be counted.
    wait_for("the counters", Duration::from_secs(10), || {
        let s = samples(&gw.scrape());
        (s.get(r#"http_requests_total{method="GET",route="down",status="502"}"#) == Some(&1.0)
            && s.get(r#"config_reloads_total{result="success"}"#) == Some(&1.0))
        .then_some(())
    });
    let s = samples(&gw.scrape());
    let addr = b.addr.to_string();
    for (key, expected) in [
        (total.to_owned(), 5.0),
        (
            r#"http_requests_total{method="GET",route="r",status="404"}"#.to_owned(),
            3.0,
        ),
        (
            r#"http_requests_total{method="POST",route="r",status="200"}"#.to_owned(),
            1.0,
        ),
        (
            r#"http_requests_total{method="GET",route="unmatched",status="404"}"#.to_owned(),
            2.0,
        ),
        (
            r#"http_request_duration_seconds_count{method="GET",route="r"}"#.to_owned(),
            8.0,
        ),
        (
            format!(r#"backend_requests_total{{backend="{addr}",status="200",upstream="u"}}"#),
            6.0,
        ),
        (
            format!(r#"backend_requests_total{{backend="{addr}",status="404",upstream="u"}}"#),
            3.0,
        ),
        (
            format!(r#"backend_health_status{{backend="{addr}",upstream="u"}}"#),
            1.0,
        ),
        ("active_connections".to_owned(), 0.0),
    ] {
        assert_eq!(s.get(&key), Some(&expected), "{key}");
    }
    assert!(s.keys().any(|k| k.starts_with("backend_requests_total{")
        && k.contains("status=\"connect_error\",upstream=\"gone\"")));
    assert!(
        s.contains_key("process_resident_memory_bytes"),
        "process metrics"
    );
    assert!(
        !s.keys().any(|k| k.contains("/a/x") || k.contains("/nope")),
        "raw paths in labels"
    );
    assert_eq!(get(&format!("http://{}/other", gw.metrics)).status, 404);
}

#[test]
fn promtool_accepts_the_exposition() {
    let b = Backend::start("b");
    let gw = Gateway::start(&config(&b.addr.to_string()));
    get(&gw.url("/a"));
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is required in CI (.ci/run installs it)"
        );
        eprintln!("promtool not installed here; lint skipped");
        return;
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(gw.scrape().as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn active_connections_follows_requests_in_flight() {
    let b = Backend::start("slow");
    let gw = Gateway::start(&config(&b.addr.to_string()));
    let url = gw.url("/a?delay_ms=1500");
    let slow = std::thread::spawn(move || get(&url).status);
    wait_for("the request in flight", Duration::from_secs(10), || {
        (b.received() == 1).then_some(())
    });
    assert_eq!(value(&gw, "active_connections"), 1.0);
    assert_eq!(slow.join().expect("client"), 200);
    wait_for("the gauge back at 0", Duration::from_secs(5), || {
        (value(&gw, "active_connections") == 0.0).then_some(())
    });
}

#[test]
fn one_json_access_line_per_request_without_query_strings() {
    let b = Backend::start("b");
    let gw = Gateway::start(&config(&b.addr.to_string()));
    let ids = ["req-one", "req-two", "req-three"];
    for (i, id) in ids.iter().enumerate() {
        let path = if i == 2 {
            "/missing"
        } else {
            "/a/item?token=s3cret"
        };
        request("GET", &gw.url(path), &[("x-request-id", id)], None);
    }
    let lines = wait_for("three access lines", Duration::from_secs(5), || {
        let lines = gw.access_lines();
        (lines.len() == 3).then_some(lines)
    });
    for (line, id) in lines.iter().zip(ids) {
        assert_eq!(line["request_id"], id);
        for field in [
            "timestamp",
            "client_ip",
            "method",
            "path",
            "route",
            "status",
            "upstream",
            "backend",
            "duration_ms",
            "bytes_sent",
            "cache",
            "user",
        ] {
            assert!(line.get(field).is_some(), "{field} missing in {line}");
        }
    }
    assert_eq!(lines[0]["route"], "r");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["path"], "/a/item");
    assert_eq!(lines[0]["backend"], b.addr.to_string());
    assert_eq!(lines[0]["client_ip"], "127.0.0.1");
    assert!(lines[0]["bytes_sent"].as_u64().is_some_and(|n| n > 0));
    assert_eq!(lines[2]["status"], 404);
    assert!(lines[2]["route"].is_null());
    assert!(!gw.log().contains("s3cret"), "query string reached the log");
}

#[test]
fn text_format() {
    let b = Backend::start("b");
    let header = common::gateway::header().replace("format: json", "format: text");
    let gw = Gateway::start_raw(&format!("{header}{}", config(&b.addr.to_string())));
    request("GET", &gw.url("/a"), &[("x-request-id", "text-id")], None);
    let line = wait_for("the access line", Duration::from_secs(5), || {
        gw.log()
            .lines()
            .find(|l| l.contains(" ACCESS text-id "))
            .map(str::to_owned)
    });
    assert!(line.contains("\"/a\" 200 route=r"), "{line}");
    assert!(serde_json::from_str::<serde_json::Value>(&line).is_err());
}
