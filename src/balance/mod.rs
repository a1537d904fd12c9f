//! Upstream pools: selection strategies, per-backend counters, health-aware picks.

mod breaker;
mod budget;
mod build;
pub mod discovery;
mod error;
mod outlier;
mod probe;
mod selector;
mod stats;
mod upstream;
mod view;
mod window;

pub use breaker::{Connecting, Refusal, Slot, State as CircuitState};
pub use build::build;
pub use outlier::Ejection;
pub use stats::{BackendStats, InFlight};
pub use upstream::{HealthDue, Upstream};
