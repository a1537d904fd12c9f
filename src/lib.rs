//! API gateway on Cloudflare Pingora.
//!
//! Where things live: `config` (the YAML schema and its loading), `routing` (compiling a file into
//! a [`routing::Snapshot`] and route lookup), `balance` (upstream pools), `proxy` (the
//! `ProxyHttp` implementation), `state` (the live snapshot behind an `ArcSwap`), `reload`
//! (SIGHUP), `app` (the pingora server), `cli` and `logging`.

pub mod app;
pub mod balance;
pub mod cli;
pub mod config;
pub mod logging;
pub mod proxy;
pub mod reload;
pub mod routing;
pub mod state;
