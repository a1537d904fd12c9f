//! One access-log line per request, in the configured log format. The path is logged without
//! its query string, and no header is logged, so tokens and keys never reach the log.

use crate::logging::{
    emit_batched, json_format, json_str, push_ip, push_socket_addr, push_uint, timestamp,
};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

pub struct AccessRecord<'a> {
    pub request_id: &'a str,
    pub client_ip: Option<IpAddr>,
    pub method: &'a str,
    pub path: &'a str,
    pub route: Option<&'a str>,
    pub status: u16,
    pub upstream: Option<&'a str>,
    pub backend: Option<SocketAddr>,
    pub attempts: usize,
    pub duration_ms: f64,
    pub bytes_sent: usize,
    pub cache: &'a str,
    pub user: Option<&'a str>,
    pub outcome: &'a str,
    /// The request's trace, when tracing is on.
    pub trace: Option<&'a crate::trace::Context>,
}

pub fn write(r: &AccessRecord<'_>) {
    emit_batched(|line| {
        if json_format() {
            json(line, r)
        } else {
            text(line, r)
        }
    });
}

fn json(line: &mut String, r: &AccessRecord<'_>) {
    line.push_str("{\"timestamp\":\"");
    timestamp(line);
    line.push_str("\",\"level\":\"INFO\",\"target\":\"access\",\"request_id\":");
    json_str(line, r.request_id);
    line.push_str(",\"client_ip\":");
    quoted_or_null(line, r.client_ip, push_ip);
    line.push_str(",\"method\":");
    json_str(line, r.method);
    line.push_str(",\"path\":");
    json_str(line, r.path);
    line.push_str(",\"route\":");
    opt_str(line, r.route);
    line.push_str(",\"status\":");
    push_uint(line, r.status.into(), 1);
    line.push_str(",\"upstream\":");
    opt_str(line, r.upstream);
    line.push_str(",\"backend\":");
    quoted_or_null(line, r.backend, push_socket_addr);
    line.push_str(",\"attempts\":");
    push_uint(line, r.attempts as u64, 1);
    line.push_str(",\"duration_ms\":");
    push_millis(line, r.duration_ms);
    line.push_str(",\"bytes_sent\":");
    push_uint(line, r.bytes_sent as u64, 1);
    line.push_str(",\"cache\":");
    json_str(line, r.cache);
    line.push_str(",\"user\":");
    opt_str(line, r.user);
    line.push_str(",\"outcome\":");
    json_str(line, r.outcome);
    if let Some(t) = r.trace {
        line.push_str(",\"trace_id\":\"");
        line.push_str(&t.trace_hex());
        line.push('"');
    }
    line.push('}');
}

/// Milliseconds with three decimals, as `{:.3}` writes them.
fn push_millis(line: &mut String, ms: f64) {
    let micros = (ms.max(0.0) * 1000.0).round() as u64;
    push_uint(line, micros / 1000, 1);
    line.push('.');
    push_uint(line, micros % 1000, 3);
}

fn text(line: &mut String, r: &AccessRecord<'_>) {
    timestamp(line);
    line.push_str(" ACCESS ");
    line.push_str(r.request_id);
    line.push(' ');
    or_dash(line, r.client_ip, push_ip);
    line.push(' ');
    line.push_str(r.method);
    line.push(' ');
    // Quoted and escaped, so a path cannot forge fields or lines.
    let _ = write!(line, "{:?}", r.path);
    line.push(' ');
    push_uint(line, r.status.into(), 1);
    line.push_str(" route=");
    line.push_str(r.route.unwrap_or("-"));
    line.push_str(" upstream=");
    line.push_str(r.upstream.unwrap_or("-"));
    line.push_str(" backend=");
    or_dash(line, r.backend, push_socket_addr);
    line.push_str(" attempts=");
    push_uint(line, r.attempts as u64, 1);
    line.push(' ');
    push_millis(line, r.duration_ms);
    line.push_str("ms ");
    push_uint(line, r.bytes_sent as u64, 1);
    line.push_str("B cache=");
    line.push_str(r.cache);
    line.push_str(" user=");
    line.push_str(r.user.unwrap_or("-"));
    line.push(' ');
    line.push_str(r.outcome);
    if let Some(t) = r.trace {
        line.push_str(" trace=");
        line.push_str(&t.trace_hex());
    }
}

fn or_dash<T>(line: &mut String, v: Option<T>, push: fn(&mut String, T)) {
    match v {
        Some(v) => push(line, v),
        None => line.push('-'),
    }
}

fn opt_str(line: &mut String, v: Option<&str>) {
    match v {
        Some(s) => json_str(line, s),
        None => line.push_str("null"),
    }
}

fn quoted_or_null<T>(line: &mut String, v: Option<T>, push: fn(&mut String, T)) {
    match v {
        Some(v) => {
            line.push('"');
            push(line, v);
            line.push('"');
        }
        None => line.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AccessRecord<'static> {
        AccessRecord {
            request_id: "id-1",
            client_ip: Some("203.0.113.9".parse().expect("ip")),
            method: "GET",
            path: "/api/\"x\"",
            route: Some("api"),
            status: 200,
            upstream: None,
            backend: Some("[::1]:8080".parse().expect("addr")),
            attempts: 2,
            duration_ms: 12.3456,
            bytes_sent: 1024,
            cache: "-",
            user: Some("alice"),
            outcome: "ok",
            trace: None,
        }
    }

    #[test]
    fn a_json_line_holds_every_field() {
        let record = record();
        let mut line = String::new();
        json(&mut line, &record);
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(v["client_ip"], "203.0.113.9");
        assert_eq!(v["path"], "/api/\"x\"");
        assert_eq!(v["status"], 200);
        assert_eq!(v["upstream"], serde_json::Value::Null);
        assert_eq!(v["backend"], "[::1]:8080");
        assert_eq!(v["attempts"], 2);
        assert_eq!(v["duration_ms"], 12.346);
        assert_eq!(v["bytes_sent"], 1024);
        assert_eq!(v["user"], "alice");
        for ms in [0.0, 0.0004, 0.0006, 1.0, 2.71, 12345.678] {
            let mut s = String::new();
            push_millis(&mut s, ms);
            assert_eq!(s, format!("{ms:.3}"), "{ms}");
        }
    }

    #[test]
    fn a_text_line_is_what_fmt_writes() {
        let full = record();
        let empty = AccessRecord {
            client_ip: None,
            path: "/a b\n\u{1b}[31m",
            route: None,
            backend: None,
            user: None,
            duration_ms: 0.0004,
            ..record()
        };
        for r in [full, empty] {
            let mut line = String::new();
            text(&mut line, &r);
            let dash = |s: Option<&str>| s.unwrap_or("-").to_owned();
            let expected = format!(
                " ACCESS {} {} {} {:?} {} route={} upstream={} backend={} attempts={} {:.3}ms {}B cache={} user={} {}",
                r.request_id,
                r.client_ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
                r.method,
                r.path,
                r.status,
                dash(r.route),
                dash(r.upstream),
                r.backend.map_or_else(|| "-".to_owned(), |b| b.to_string()),
                r.attempts,
                r.duration_ms,
                r.bytes_sent,
                r.cache,
                dash(r.user),
                r.outcome,
            );
            let (_, fields) = line.split_once(" ACCESS ").expect("after the timestamp");
            assert_eq!(format!(" ACCESS {fields}"), expected);
        }
    }
}
