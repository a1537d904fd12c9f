//! Active health checks: the background loop that runs each upstream's probes on its interval.
//! The probes themselves are built with the upstream (`balance::probe`).

mod service;

pub use service::HealthChecks;
