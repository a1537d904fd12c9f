//! End-to-end harness: real `gateway` processes on temp configs, real TCP backends, ports from
//! one allocator, readiness polled with a deadline, children killed on drop.
#![allow(dead_code, unused_imports)]

pub mod auth;
pub mod backend;
pub mod client;
pub mod dns;
pub mod etcd;
pub mod gateway;
pub mod h2;
pub mod pki;
pub mod prometheus;
pub mod redis;
pub mod redis_ha;

pub use backend::{dead_addr, Backend};
pub use client::{get, raw, request, Resp};
pub use gateway::Gateway;

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback port that nothing listens on and that this process has not handed out before.
pub fn free_port() -> u16 {
    let mut seen = HANDED_OUT.lock().expect("port registry");
    let seen = seen.get_or_insert_with(HashSet::new);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral port")
            .port();
        if seen.insert(port) {
            return port;
        }
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
