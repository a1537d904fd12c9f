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
    /// Read a password on stdin (one trailing newline dropped; on a terminal, asked twice
    /// without echo) and print an argon2id hash for `auth.users[].password_hash`.
    HashPassword,
    /// The config document in etcd (the file's `etcd` section says where).
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate FILE with the local file, as `-t` would, and write it to etcd. Replaces the
    /// document only if it is still at `--revision` (so two operators cannot overwrite each
    /// other); without it, only if there is none yet.
    Push {
        /// The document: the sections etcd holds (routes, upstreams, auth, ...).
        file: PathBuf,
        /// The revision the edit started from (`gateway config get` prints it).
        #[arg(long, conflicts_with = "force")]
        revision: Option<i64>,
        /// Replace whatever is there.
        #[arg(long)]
        force: bool,
    },
    /// Print the document in etcd on stdout, and its revision on stderr.
    Get,
}

/// The password for `hash-password`: from a terminal, asked twice without echo (`Err` when the
/// two differ); from a pipe, all of stdin with one trailing newline dropped.
pub fn read_password() -> Result<Vec<u8>, String> {
    use std::io::{IsTerminal, Read};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut input = Vec::new();
        stdin
            .lock()
            .read_to_end(&mut input)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        if input.last() == Some(&b'\n') {
            input.pop();
            if input.last() == Some(&b'\r') {
                input.pop();
            }
        }
        return Ok(input);
    }
    let first = ask("Password: ")?;
    let again = ask("Again: ")?;
    if first != again {
        return Err("the two passwords differ".into());
    }
    Ok(first.into_bytes())
}

/// One line from the terminal with echo off (restored afterwards, also on error).
fn ask(prompt: &str) -> Result<String, String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).map_err(|e| format!("cannot read the terminal: {e}"))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(|e| format!("terminal: {e}"))?;
    // Asked once echo is off, so nothing typed after the prompt shows.
    eprint!("{prompt}");
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    let restored = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    read.map_err(|e| format!("cannot read the password: {e}"))?;
    restored.map_err(|e| format!("terminal: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
