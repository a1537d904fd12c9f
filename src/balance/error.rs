//! The problems an `upstreams.<name>` entry can have.

use std::net::SocketAddr;

/// A problem in an `upstreams.<name>` entry.
#[derive(Debug, thiserror::Error)]
pub enum BalanceError {
    #[error("invalid address {0:?}: expected host:port")]
    NoPort(String),
    #[error("cannot resolve {addr:?}: {reason}")]
    Resolve { addr: String, reason: String },
    #[error("duplicate backend {0}")]
    Duplicate(SocketAddr),
    #[error("unknown strategy {name:?}, expected one of: {known}{hint}")]
    UnknownStrategy {
        name: String,
        known: String,
        hint: String,
    },
    #[error("at least one backend is required")]
    NoBackends,
    #[error("{0}")]
    Probe(String),
    #[error("discovery failed: {0}")]
    Discovery(String),
    #[error("must be at least 1")]
    AtLeastOne,
    #[error("must be below {0}")]
    TooMany(usize),
    #[error("must start with /")]
    NoSlash,
    #[error("only http checks have a path")]
    TcpPath,
    #[error("must not be shorter than base_ejection")]
    BelowBase,
    #[error("must be a percentage (0 to 100)")]
    Percent,
    #[error("a CA file is only used with tls: true")]
    CaWithoutTls,
    #[error("cannot read {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("h2 is HTTP/2 over TLS and needs tls: true (h2c is the plaintext one)")]
    H2WithoutTls,
    #[error("h2c is plaintext HTTP/2 and cannot be used with tls: true (use h2)")]
    H2cWithTls,
}
