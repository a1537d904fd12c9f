//! Active health checks: probes built from config (`probe`) and the background loop that runs
//! them on each upstream's interval (`service`).

pub mod probe;
mod service;

pub use service::HealthChecks;
