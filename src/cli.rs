//! Command line, as in the contract. Pingora's own options are built from these flags.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    version,
    about = "API gateway on Cloudflare Pingora: routing, load balancing, auth, rate limits, caching"
)]
pub struct Cli {
    /// Config file.
    #[arg(short = 'c', long = "config", default_value = "conf/gateway.yaml")]
    pub config: PathBuf,
    /// Validate the config, print every problem with its path, and exit (0 valid, 1 not).
    #[arg(short = 't', long = "test")]
    pub test: bool,
    /// Run in the background; the pid goes to `server.pid_file`.
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
    /// Take the listening sockets over from a running gateway through `server.upgrade_sock`.
    #[arg(short = 'u', long = "upgrade")]
    pub upgrade: bool,
    /// Accept the demo config's published JWT secret (for `make run`; never in production).
    #[arg(long = "demo")]
    pub demo: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a password on stdin (one trailing newline dropped) and print an argon2id hash for
    /// `auth.users[].password_hash`.
    HashPassword,
}
