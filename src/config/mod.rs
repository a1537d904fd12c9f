//! The user's YAML schema (`file`), its scalar types (`units`), environment substitution (`env`),
//! reading (`load`) and problem reporting (`error`). Each feature checks and builds its own
//! section; `snapshot::compile` puts them together.

mod check;
mod diff;
mod env;
mod error;
pub mod file;
mod load;
pub mod units;
pub(crate) mod wording;

pub use check::check_sections;
pub use diff::Changes;
pub use error::{without_url_credentials, ConfigErrors};
pub use file::FileConfig;
pub use load::{load_file, load_with, parse_str, Parsed};
