//! The user's YAML schema (`file`), its scalar types (`units`), environment substitution (`env`),
//! reading (`load`) and problem reporting (`error`). Validation across sections happens in
//! `routing::compile`, the only place that turns a file into a live snapshot.

pub mod env;
pub mod error;
pub mod file;
pub mod load;
pub mod units;

pub use error::{ConfigError, ConfigErrors};
pub use file::FileConfig;
pub use load::{load_file, parse_str, Parsed};
