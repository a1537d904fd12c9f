//! Upstream pools and backend selection.

mod upstream;

pub use upstream::{resolve, Upstream, MAX_RETRIES};
