//! Upstream pools: selection strategies, per-backend counters, health-aware picks.

pub mod selector;
mod stats;
mod upstream;
mod view;

pub use selector::Picked;
pub use stats::{BackendStats, InFlight};
pub use upstream::{resolve, strategy_name, HealthDue, Upstream, MAX_RETRIES};
pub use view::{BackendView, UpstreamView};
