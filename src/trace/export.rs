//! The exporter: a background service sending queued spans in batches to the collector as
//! OTLP/HTTP JSON. A failed export drops its batch (counted) and never blocks the queue.

use super::{span_hex, Attr, Span};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;

pub struct Exporter {
    spans: Mutex<Option<mpsc::Receiver<Span>>>,
    endpoint: String,
    service: String,
    batch: usize,
    interval: Duration,
    timeout: Duration,
}

/// Counts spans that never reached the collector.
pub fn dropped(reason: &str, n: usize) {
    if let Some(m) = crate::metrics::get() {
        m.tracing_spans_dropped
            .with_label_values(&[reason])
            .inc_by(n as u64);
    }
}

impl Exporter {
    pub fn new(
        spans: mpsc::Receiver<Span>,
        endpoint: String,
        service: String,
        batch: usize,
        interval: Duration,
        timeout: Duration,
    ) -> Exporter {
        Exporter {
            spans: Mutex::new(Some(spans)),
            endpoint,
            service,
            batch,
            interval,
            timeout,
        }
    }

    async fn send(&self, batch: &mut Vec<Span>) {
        if batch.is_empty() {
            return;
        }
        let body = self.payload(batch);
        let n = batch.len();
        batch.clear();
        let sent = crate::http_client::post(
            &self.endpoint,
            "application/json",
            body.into(),
            self.timeout,
            64 * 1024,
        )
        .await;
        match sent {
            Ok(r) if (200..300).contains(&r.status) => {}
            Ok(r) => {
                log::debug!("trace export: the collector answered {}", r.status);
                dropped("export_failed", n);
            }
            Err(e) => {
                log::debug!("trace export failed: {e}");
                dropped("export_failed", n);
            }
        }
    }

    fn payload(&self, batch: &[Span]) -> String {
        let spans: Vec<Value> = batch.iter().map(span_json).collect();
        json!({"resourceSpans": [{
            "resource": {"attributes": [attr("service.name", &Attr::Str(self.service.clone()))]},
            "scopeSpans": [{"scope": {"name": "api-gateway"}, "spans": spans}],
        }]})
        .to_string()
    }
}

fn span_json(s: &Span) -> Value {
    let mut v = json!({
        "traceId": s.context.trace_hex(),
        "spanId": span_hex(&s.context.span_id),
        "name": s.name,
        "kind": 2,
        "startTimeUnixNano": s.start_unix_ns.to_string(),
        "endTimeUnixNano": s.end_unix_ns.to_string(),
        "attributes": s.attributes.iter().map(|(k, a)| attr(k, a)).collect::<Vec<_>>(),
        "status": {"code": if s.error { 2 } else { 0 }},
    });
    if let (Some(parent), Some(obj)) = (&s.parent, v.as_object_mut()) {
        obj.insert("parentSpanId".into(), Value::String(span_hex(parent)));
    }
    v
}

fn attr(key: &str, value: &Attr) -> Value {
    let value = match value {
        Attr::Str(s) => json!({"stringValue": s}),
        Attr::Int(i) => json!({"intValue": i.to_string()}),
    };
    json!({"key": key, "value": value})
}

#[async_trait]
impl BackgroundService for Exporter {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let taken = self.spans.lock().ok().and_then(|mut s| s.take());
        let Some(mut spans) = taken else {
            return;
        };
        let mut batch = Vec::with_capacity(self.batch);
        let mut tick = tokio::time::interval(self.interval);
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    while let Ok(s) = spans.try_recv() {
                        batch.push(s);
                    }
                    self.send(&mut batch).await;
                    return;
                }
                span = spans.recv() => {
                    let Some(span) = span else { return };
                    batch.push(span);
                    if batch.len() >= self.batch {
                        self.send(&mut batch).await;
                    }
                }
                _ = tick.tick() => self.send(&mut batch).await,
            }
        }
    }
}
