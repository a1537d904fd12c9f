//! OpenTelemetry tracing: a span per request, in the caller's trace when a trusted caller sent
//! `traceparent` (sampled as the caller says), in a new one otherwise (sampled at
//! `sample_ratio`). The proxy forwards the context to the backend; sampled spans go through a
//! bounded queue to a background exporter (OTLP/HTTP, JSON). Recording never waits: a full
//! queue or a collector that is down drops spans and counts them.

mod context;
mod export;

use crate::config::file::TracingConfig;
use crate::config::ConfigErrors;
pub use context::{span_hex, Context};
pub use export::Exporter;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::mpsc;

const DEFAULT_RATIO: f64 = 0.01;
const DEFAULT_QUEUE: usize = 4096;
const DEFAULT_BATCH: usize = 512;
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// One finished request.
#[derive(Debug)]
pub struct Span {
    pub context: Context,
    pub parent: Option<[u8; 8]>,
    pub name: String,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    pub attributes: Vec<(&'static str, Attr)>,
    /// A 5xx answer or no answer.
    pub error: bool,
}

#[derive(Debug)]
pub enum Attr {
    Str(String),
    Int(i64),
}

/// The process's tracer, when `tracing` is configured.
pub struct Tracer {
    queue: mpsc::Sender<Span>,
    ratio: f64,
    pub trust_client_context: bool,
}

static TRACER: OnceLock<Tracer> = OnceLock::new();

pub fn get() -> Option<&'static Tracer> {
    TRACER.get()
}

/// Sets the tracer up from the start-up config; the exporter is to run as a background service.
pub fn install(cfg: &TracingConfig) -> Option<Exporter> {
    let (queue, spans) = mpsc::channel(cfg.queue_size.unwrap_or(DEFAULT_QUEUE));
    let tracer = Tracer {
        queue,
        ratio: cfg.sample_ratio.unwrap_or(DEFAULT_RATIO),
        trust_client_context: cfg.trust_client_context,
    };
    TRACER.set(tracer).ok()?;
    Some(Exporter::new(
        spans,
        cfg.otlp_endpoint.clone(),
        cfg.service_name
            .clone()
            .unwrap_or_else(|| "api-gateway".into()),
        cfg.batch_size.unwrap_or(DEFAULT_BATCH),
        cfg.batch_interval.map_or(DEFAULT_INTERVAL, |d| d.0),
        cfg.export_timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
    ))
}

impl Tracer {
    /// The request's own span: a child of `incoming` (sampled as it is), or a new trace.
    pub fn start(&self, incoming: Option<&Context>) -> Context {
        let sampled = incoming.map_or_else(|| fastrand::f64() < self.ratio, |p| p.sampled);
        Context::child(incoming, sampled)
    }

    /// Queues a finished span; dropped (and counted) when the queue is full.
    pub fn record(&self, span: Span) {
        if self.queue.try_send(span).is_err() {
            export::dropped("queue_full", 1);
        }
    }
}

/// The `tracing` section's problems.
pub fn check(cfg: Option<&TracingConfig>, errors: &mut ConfigErrors) {
    let Some(cfg) = cfg else {
        return;
    };
    if let Err(e) = crate::http_client::check_url(&cfg.otlp_endpoint) {
        errors.push("tracing.otlp_endpoint", e);
    }
    if cfg.sample_ratio.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
        errors.push("tracing.sample_ratio", "must be between 0 and 1");
    }
    for (field, n) in [
        ("queue_size", cfg.queue_size),
        ("batch_size", cfg.batch_size),
    ] {
        if n == Some(0) {
            errors.push(format!("tracing.{field}"), "must be at least 1");
        }
    }
    for (field, d) in [
        ("batch_interval", cfg.batch_interval),
        ("export_timeout", cfg.export_timeout),
    ] {
        if d.is_some_and(|d| d.0.is_zero()) {
            errors.push(format!("tracing.{field}"), "must be positive");
        }
    }
}
