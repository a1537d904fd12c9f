//! Guards on every listener's connections (proxy, HTTPS, admin, metrics), below HTTP: a
//! process-wide cap on open connections that stays below the file-descriptor limit with room
//! for upstream connections, a cap per listener for the admin and metrics listeners (so they
//! cannot take the proxy's share), a cap on the connections one client address holds open
//! across all listeners (pingora-limits' fixed-memory `Inflight`), and one deadline for the TLS
//! handshake and the first request head, armed when the connection is accepted
//! ([`stream::GuardedStream`] watches every later head).
//!
//! A connection past a cap is closed at once, before anything is read from it.

mod stream;
mod tls;

pub use stream::{request_done, GuardedStream};
pub use tls::TlsListener;

use crate::state::Shared;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use pingora_limits::inflight::{Guard, Inflight};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// File descriptors kept for everything that is not a client or upstream connection:
/// listeners, log files, Redis, the cache, health probes.
const RESERVED_FDS: u64 = 128;

/// The most connections the admin or the metrics listener holds open at once.
pub const SIDE_LISTENER_CAP: usize = 256;

/// The TLS handshake's limit when `request_head_timeout` is off (pingora's own).
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(60);

/// Connection counts shared by every listener of the process.
pub struct Guards {
    per_ip: Inflight,
    open: AtomicUsize,
    /// The most client connections the file-descriptor limit leaves room for.
    fd_bound: usize,
}

impl Guards {
    /// Raises the soft file-descriptor limit to the hard one and derives the process-wide
    /// bound from it: half of what is left after [`RESERVED_FDS`], since every client
    /// connection may hold one upstream connection.
    pub fn new() -> Arc<Guards> {
        let fds = raise_fd_limit();
        Arc::new(Guards {
            per_ip: Inflight::new(),
            open: AtomicUsize::new(0),
            fd_bound: fd_bound(fds),
        })
    }

    /// The process-wide bound the file-descriptor limit allows.
    pub fn fd_bound(&self) -> usize {
        self.fd_bound
    }
}

/// `(fds - reserved) / 2`, at least 16.
fn fd_bound(fds: u64) -> usize {
    usize::try_from(fds.saturating_sub(RESERVED_FDS) / 2)
        .unwrap_or(usize::MAX)
        .max(16)
}

/// The soft `RLIMIT_NOFILE` after raising it as far as the hard limit allows.
fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    // Linux refuses more than fs.nr_open (1 048 576 by default) even under an infinite hard
    // limit.
    let target = hard.min(1 << 20);
    if target > soft && setrlimit(Resource::RLIMIT_NOFILE, target, hard).is_ok() {
        return target;
    }
    soft
}

/// One listener's count, and its own cap when it has one.
struct ListenerCount {
    open: AtomicUsize,
    cap: Option<usize>,
}

/// Counts one open connection until it closes.
pub struct Slot {
    guards: Arc<Guards>,
    listener: Arc<ListenerCount>,
    _per_ip: Option<Guard>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.guards.open.fetch_sub(1, Ordering::Relaxed);
        self.listener.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The application `A` (an HTTP server) behind the connection guards.
pub struct Guarded<A> {
    app: Arc<A>,
    shared: Arc<Shared>,
    guards: Arc<Guards>,
    listener: Arc<ListenerCount>,
    tls: Option<TlsListener>,
}

impl<A> Guarded<A> {
    /// `app` on a listener of its own count; `cap` bounds that listener alone.
    pub fn new(app: A, shared: Arc<Shared>, guards: Arc<Guards>, cap: Option<usize>) -> Guarded<A> {
        Guarded {
            app: Arc::new(app),
            shared,
            guards,
            listener: Arc::new(ListenerCount {
                open: AtomicUsize::new(0),
                cap,
            }),
            tls: None,
        }
    }

    /// Its connections are TLS: the handshake is made here, under the head deadline.
    pub fn with_tls(mut self, tls: TlsListener) -> Guarded<A> {
        self.tls = Some(tls);
        self
    }

    /// Counts a new connection; `None` (the connection is closed) past a cap.
    fn admit(&self, stream: &Stream) -> Option<Slot> {
        let snapshot = self.shared.snapshot.load();
        let edge = &snapshot.edge;
        let open = self.guards.open.fetch_add(1, Ordering::Relaxed) + 1;
        let here = self.listener.open.fetch_add(1, Ordering::Relaxed) + 1;
        let mut slot = Slot {
            guards: Arc::clone(&self.guards),
            listener: Arc::clone(&self.listener),
            _per_ip: None,
        };
        let cap = edge.max_connections.map_or(self.guards.fd_bound, |m| {
            (m as usize).min(self.guards.fd_bound)
        });
        if open > cap || self.listener.cap.is_some_and(|c| here > c) {
            log::debug!("connection refused: {open} open in the process, {here} on its listener");
            return None;
        }
        let ip: Option<IpAddr> = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet().map(|a| a.ip())))
            .map(|ip| ip.to_canonical());
        if let (Some(ip), Some(cap)) = (ip, edge.max_connections_per_ip) {
            let (guard, open) = self.guards.per_ip.incr(ip, 1);
            slot._per_ip = Some(guard);
            if open > cap as isize {
                log::debug!("{ip}: {open} connections open, over max_connections_per_ip");
                return None;
            }
        }
        Some(slot)
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let accepted = Instant::now();
        let slot = self.admit(&stream)?;
        let timeout = self.shared.snapshot.load().edge.request_head_timeout;
        let stream = match &self.tls {
            None => stream,
            Some(tls) => {
                let limit = accepted + timeout.unwrap_or(HANDSHAKE_LIMIT);
                match tokio::time::timeout_at(limit, tls.handshake(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        log::debug!("TLS handshake failed: {e}");
                        return None;
                    }
                    Err(_) => {
                        log::debug!("TLS handshake not done within request_head_timeout");
                        return None;
                    }
                }
            }
        };
        let stream = GuardedStream::new(stream, timeout, accepted, Some(slot));
        self.app.process_new(Box::new(stream), shutdown).await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::fd_bound;

    #[test]
    fn the_bound_leaves_room_for_upstreams_and_the_reserve() {
        assert_eq!(fd_bound(1024), 448);
        assert_eq!(fd_bound(65_536), 32_704);
        assert_eq!(fd_bound(100), 16);
    }
}
