//! The `groups` and `routes` sections: compiling them into routes (`compile`), and request-time
//! lookup (`table`).

mod compile;
mod path;
mod retry;
mod route;
mod split;
mod table;

pub use compile::{compile, Sections};
pub use path::normalize;
pub use route::Route;
pub use split::Client;
pub use table::{Lookup, RouteTable};
