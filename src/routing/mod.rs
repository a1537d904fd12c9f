//! From file config to the live snapshot (`compile`), and request-time lookup (`table`).

mod compile;
pub mod method;
mod policy;
pub mod route;
mod snapshot;
pub mod table;

pub use compile::{compile, inactive_settings};
pub use route::{AuthPolicy, CachePolicy, Route};
pub use snapshot::Snapshot;
pub use table::{Lookup, RouteTable};
