//! One access-log line per request, in the configured log format. The path is logged without
//! its query string, and no header is logged, so tokens and keys never reach the log.

use crate::logging::{emit_batched, json_format, json_str, timestamp};
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
    opt_display(line, r.client_ip);
    line.push_str(",\"method\":");
    json_str(line, r.method);
    line.push_str(",\"path\":");
    json_str(line, r.path);
    line.push_str(",\"route\":");
    opt_str(line, r.route);
    let _ = write!(line, ",\"status\":{},\"upstream\":", r.status);
    opt_str(line, r.upstream);
    line.push_str(",\"backend\":");
    opt_display(line, r.backend);
    let _ = write!(
        line,
        ",\"attempts\":{},\"duration_ms\":{:.3},\"bytes_sent\":{},\"cache\":",
        r.attempts, r.duration_ms, r.bytes_sent
    );
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

fn text(line: &mut String, r: &AccessRecord<'_>) {
    timestamp(line);
    let dash = |s: Option<&str>| s.unwrap_or("-").to_owned();
    let _ = write!(
        line,
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
    if let Some(t) = r.trace {
        line.push_str(" trace=");
        line.push_str(&t.trace_hex());
    }
}

fn opt_str(line: &mut String, v: Option<&str>) {
    match v {
        Some(s) => json_str(line, s),
        None => line.push_str("null"),
    }
}

fn opt_display(line: &mut String, v: Option<impl std::fmt::Display>) {
    match v {
        Some(v) => {
            let _ = write!(line, "\"{v}\"");
        }
        None => line.push_str("null"),
    }
}
