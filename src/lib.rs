//! API gateway on Cloudflare Pingora.
//!
//! Where things live: `config` (the YAML schema and its loading), `routing` (compiling a file into
//! a [`routing::Snapshot`] and route lookup), `balance` (upstream pools and the five selection
//! strategies), `health` (active health checks), `proxy` (the `ProxyHttp` implementation),
//! `state` (the live snapshot behind an `ArcSwap`), `reload` (SIGHUP), `app` (the pingora
//! server), `cli` and `logging`.

#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod balance;
pub mod cli;
pub mod config;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod ratelimit;
pub mod redis;
pub mod reload;
pub mod routing;
pub mod security;
pub mod state;
