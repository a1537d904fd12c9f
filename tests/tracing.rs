//! OpenTelemetry tracing end to end: spans reach an OTLP/HTTP receiver started by the test,
//! join the caller's trace (trusted callers only), pass the context to the backend, and a
//! collector that is down changes nothing for clients.

mod common;

use common::{dead_addr, request, wait_for, Backend, Gateway};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An OTLP/HTTP receiver: keeps every span POSTed to it, answers 200.
struct Receiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Value>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (kept, stopped) = (Arc::clone(&spans), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let kept = Arc::clone(&kept);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut out = stream;
                    loop {
                        let mut length = 0;
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        for rs in doc["resourceSpans"].as_array().into_iter().flatten() {
                            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                                for span in ss["spans"].as_array().into_iter().flatten() {
                                    let mut span = span.clone();
                                    span["service"] = rs["resource"]["attributes"][0]["value"]
                                        ["stringValue"]
                                        .clone();
                                    kept.lock().expect("spans").push(span);
                                }
                            }
                        }
                        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
                        if out.write_all(ok).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Receiver { addr, spans, stop }
    }

    fn spans(&self) -> Vec<Value> {
        self.spans.lock().expect("spans").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn config(backend: &Backend, collector: SocketAddr, tracing: &str, security: &str) -> String {
    format!(
        "security: {security}\ntracing: {{otlp_endpoint: \"http://{collector}/v1/traces\", batch_interval: 100ms, {tracing}}}\nupstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: r, path: /, upstream: u}}\n",
        backend.addr
    )
}

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The attribute `key` of `span`.
fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    span["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|kv| kv["key"] == key))
        .map_or(&Value::Null, |kv| &kv["value"])
}

#[test]
fn spans_join_a_trusted_callers_trace_and_reach_the_collector() {
    let collector = Receiver::start();
    let b = Backend::start("b");
    let gw = Gateway::start(&config(
        &b,
        collector.addr,
        "sample_ratio: 0, service_name: edge",
        "{trusted_proxies: [127.0.0.1/32]}",
    ));
    let r = request(
        "GET",
        &gw.url("/x"),
        &[("traceparent", CALLER), ("tracestate", "vendor=1")],
        None,
    );
    assert_eq!(r.status, 200);
    let sent = r.json()["headers"].clone();
    let forwarded = sent["traceparent"]
        .as_str()
        .expect("traceparent to the backend");
    assert!(
        forwarded.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{forwarded}"
    );
    assert!(forwarded.ends_with("-01"));
    let gateway_span = &forwarded[36..52];
    assert_ne!(gateway_span, "00f067aa0ba902b7");
    assert_eq!(sent["tracestate"], "vendor=1");

    let span = wait_for("the span at the collector", Duration::from_secs(10), || {
        collector.spans().into_iter().next()
    });
    assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span["parentSpanId"], "00f067aa0ba902b7");
    assert_eq!(span["spanId"], gateway_span);
    assert_eq!(span["name"], "GET r");
    assert_eq!(span["service"], "edge");
    assert_eq!(attr(&span, "http.route")["stringValue"], "r");
    assert_eq!(attr(&span, "http.response.status_code")["intValue"], "200");
    assert_eq!(attr(&span, "gateway.upstream")["stringValue"], "u");
    let line = wait_for("the access line", Duration::from_secs(5), || {
        gw.access_lines().into_iter().find(|l| l["path"] == "/x")
    });
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");

    // Not sampled by the caller, or no caller context at ratio 0: no span, a context anyway.
    let unsampled = CALLER.replace("-01", "-00");
    let r = request("GET", &gw.url("/y"), &[("traceparent", &unsampled)], None);
    assert!(r.json()["headers"]["traceparent"]
        .as_str()
        .is_some_and(|t| t.ends_with("-00")));
    let r = request("GET", &gw.url("/z"), &[], None);
    let fresh = r.json()["headers"]["traceparent"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        fresh.starts_with("00-") && fresh.ends_with("-00"),
        "{fresh}"
    );
    assert!(!fresh.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
    // A later sampled request shows the batches keep flowing and nothing else was recorded.
    request("GET", &gw.url("/w"), &[("traceparent", CALLER)], None);
    wait_for("the second span", Duration::from_secs(10), || {
        (collector.spans().len() == 2).then_some(())
    });
    let paths: Vec<Value> = collector
        .spans()
        .iter()
        .map(|s| attr(s, "url.path")["stringValue"].clone())
        .collect();
    assert_eq!(paths, ["/x", "/w"]);
}

#[test]
fn an_untrusted_callers_context_is_replaced_by_a_new_trace() {
    let collector = Receiver::start();
    let b = Backend::start("b");
    let gw = Gateway::start(&config(&b, collector.addr, "sample_ratio: 1", "{}"));
    let r = request(
        "GET",
        &gw.url("/x"),
        &[("traceparent", CALLER), ("tracestate", "vendor=1")],
        None,
    );
    let sent = r.json()["headers"].clone();
    let forwarded = sent["traceparent"].as_str().unwrap_or("");
    assert!(
        !forwarded.contains("4bf92f3577b34da6a3ce929d0e0e4736"),
        "{forwarded}"
    );
    assert!(sent.get("tracestate").is_none(), "{sent}");
    let span = wait_for("the span", Duration::from_secs(10), || {
        collector.spans().into_iter().next()
    });
    assert!(span.get("parentSpanId").is_none(), "{span}");
    assert_eq!(span["traceId"].as_str(), forwarded.get(3..35));
}

#[test]
fn a_collector_that_is_down_changes_nothing_for_clients() {
    let collector = Receiver::start();
    let b = Backend::start("b");
    let gw = Gateway::start(&config(&b, collector.addr, "sample_ratio: 1", "{}"));
    request("GET", &gw.url("/before"), &[], None);
    wait_for("a span", Duration::from_secs(10), || {
        (!collector.spans().is_empty()).then_some(())
    });
    // The collector goes away mid-test; another one is not there either.
    drop(collector);
    let started = Instant::now();
    for i in 0..200 {
        assert_eq!(
            request("GET", &gw.url(&format!("/r/{i}")), &[], None).status,
            200
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    wait_for("failed exports counted", Duration::from_secs(10), || {
        gw.metric(r#"tracing_spans_dropped_total{reason="export_failed"}"#)
            .filter(|n| *n >= 1.0)
    });

    let gw2 = Gateway::start(&config(&b, dead_addr(), "sample_ratio: 1", "{}"));
    for i in 0..50 {
        assert_eq!(
            request("GET", &gw2.url(&format!("/d/{i}")), &[], None).status,
            200
        );
    }
}

#[test]
fn bad_tracing_settings_are_listed() {
    let (code, text) = common::gateway::check_config(
        "tracing: {otlp_endpoint: \"udp://x\", sample_ratio: 1.5, queue_size: 0, batch_interval: 0s}\nupstreams: {u: {backends: [{addr: 127.0.0.1:1}]}}\nroutes: [{name: r, path: /, upstream: u}]\n",
    );
    assert_eq!(code, Some(1), "{text}");
    for want in [
        "tracing.otlp_endpoint",
        "tracing.sample_ratio",
        "tracing.queue_size",
        "tracing.batch_interval",
    ] {
        assert!(text.contains(want), "{want} in {text}");
    }
}

#[test]
fn a_span_keeps_a_bounded_part_of_a_long_path() {
    let collector = Receiver::start();
    let b = Backend::start("b");
    let gw = Gateway::start(&config(&b, collector.addr, "sample_ratio: 1", "{}"));
    let long = format!("/{}", "p".repeat(20_000));
    let r = request("GET", &gw.url(&long), &[], None);
    assert_eq!(r.status, 200);
    let span = wait_for("the span at the collector", Duration::from_secs(10), || {
        collector.spans().into_iter().next()
    });
    let path = attr(&span, "url.path")["stringValue"]
        .as_str()
        .expect("url.path")
        .to_owned();
    assert_eq!(path.len(), 512);
    assert!(long.starts_with(&path));
}
