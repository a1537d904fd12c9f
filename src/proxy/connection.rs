//! Guards on the proxy listener's connections, below HTTP: a deadline for the whole request
//! head (a client sending one header line every few seconds is cut off instead of holding a
//! connection for minutes: pingora only bounds each single read), and a cap on the connections
//! one client address holds open at once.
//!
//! [`Guarded`] wraps the pingora HTTP application: each new connection is counted for its
//! address (pingora-limits' fixed-memory `Inflight`), refused at once past the cap, and its
//! stream wrapped in [`GuardedStream`], which watches the bytes of each request head. The
//! deadline starts with the first byte of a head, so idle keep-alive connections are left to
//! pingora's keep-alive timeout. Pingora serves a kept-alive connection's requests in a loop of
//! its own, so the end of each request is told to the stream ([`request_done`]): the next bytes
//! are the next head, under a deadline of their own. A head that arrives in one read (nearly
//! all of them) ends before any timer is armed.

use crate::state::Shared;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use pingora_limits::inflight::{Guard, Inflight};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The HTTP application `A`, behind the connection guards.
pub struct Guarded<A> {
    app: Arc<A>,
    shared: Arc<Shared>,
    per_ip: Inflight,
}

impl<A> Guarded<A> {
    pub fn new(app: A, shared: Arc<Shared>) -> Guarded<A> {
        Guarded {
            app: Arc::new(app),
            shared,
            per_ip: Inflight::new(),
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let stream = self.admit(stream)?;
        self.app.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await;
    }
}

impl<A> Guarded<A> {
    /// Counts a new connection for its address; `None` (the connection is closed) past the cap.
    fn admit(&self, stream: Stream) -> Option<Stream> {
        let snapshot = self.shared.snapshot.load();
        let edge = &snapshot.edge;
        let ip: Option<IpAddr> = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet().map(|a| a.ip())))
            .map(|ip| ip.to_canonical());
        let slot = match (ip, edge.max_connections_per_ip) {
            (Some(ip), Some(cap)) => {
                let (slot, open) = self.per_ip.incr(ip, 1);
                if open > cap as isize {
                    log::debug!("{ip}: {open} connections open, over max_connections_per_ip");
                    return None;
                }
                Some(slot)
            }
            _ => None,
        };
        Some(Box::new(GuardedStream {
            inner: stream,
            timeout: edge.request_head_timeout,
            head: Head::Idle,
            deadline: None,
            request_done: AtomicBool::new(false),
            _slot: slot,
        }))
    }
}

/// Where the current request head is.
enum Head {
    /// Between requests (or before the first): no deadline.
    Idle,
    /// A head began at `started` and did not end in the read that began it. `tail` holds the
    /// last two bytes seen; `armed` says whether `deadline` is set for this head.
    Reading {
        started: Instant,
        tail: [u8; 2],
        armed: bool,
    },
    /// The head ended; the body and the answer have no head deadline.
    Done,
}

/// A connection's stream, watching each request head against its deadline.
pub struct GuardedStream {
    inner: Stream,
    timeout: Option<Duration>,
    head: Head,
    /// The connection's head timer, made the first time a head spans reads and reset after.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Set by [`request_done`]: the next bytes read begin a new head.
    request_done: AtomicBool,
    /// Counts the connection for its address until it closes.
    _slot: Option<Guard>,
}

/// Tells a request's connection (its `Session::stream()`) that the request is over (the
/// `logging` phase): its next bytes are the next request's head.
pub fn request_done(stream: Option<&Stream>) {
    if let Some(guarded) = stream.and_then(|s| s.as_any().downcast_ref::<GuardedStream>()) {
        guarded.request_done.store(true, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for GuardedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedStream")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl GuardedStream {
    /// Follows the bytes just read: a first byte starts a head, an empty line ends it.
    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.timeout.is_none() {
            return;
        }
        let tail = match &self.head {
            Head::Done => return,
            Head::Idle => [0; 2],
            Head::Reading { tail, .. } => *tail,
        };
        match head_end(tail, bytes) {
            None => self.head = Head::Done,
            Some(tail) => match &mut self.head {
                Head::Reading { tail: t, .. } => *t = tail,
                _ => {
                    self.head = Head::Reading {
                        started: Instant::now(),
                        tail,
                        armed: false,
                    }
                }
            },
        }
    }

    /// Whether the head being read is past its deadline; arms the timer (waking this task when
    /// it fires) the first time a head waits for more bytes.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let (Head::Reading { started, armed, .. }, Some(timeout)) = (&mut self.head, self.timeout)
        else {
            return false;
        };
        let at = *started + timeout;
        let deadline = match (&mut self.deadline, *armed) {
            (Some(d), true) => d,
            (Some(d), false) => {
                d.as_mut().reset(at);
                d
            }
            (slot @ None, _) => slot.insert(Box::pin(tokio::time::sleep_until(at))),
        };
        *armed = true;
        deadline.as_mut().poll(cx).is_ready()
    }
}

/// Scans `bytes` read after the head's last two bytes `tail` for the empty line that ends a
/// head (CRLF CRLF, or LF LF: refused later with a 400, but the head is over). `None` when it
/// ended, else the head's new last two bytes.
fn head_end(tail: [u8; 2], bytes: &[u8]) -> Option<[u8; 2]> {
    let at = |i: usize, back: usize| -> u8 {
        match i.checked_sub(back) {
            Some(j) => bytes[j],
            None => tail[2 + i - back],
        }
    };
    for i in memchr::memchr_iter(b'\n', bytes) {
        let before = at(i, 1);
        if before == b'\n' || (before == b'\r' && at(i, 2) == b'\n') {
            return None;
        }
    }
    let n = bytes.len();
    Some([at(n, 2), at(n, 1)])
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if *this.request_done.get_mut() {
            *this.request_done.get_mut() = false;
            this.head = Head::Idle;
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if this.expired(cx) {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request head did not arrive within request_head_timeout",
                    )))
                } else {
                    Poll::Pending
                }
            }
            other => other,
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for GuardedStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for GuardedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for GuardedStream {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for GuardedStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for GuardedStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for GuardedStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for GuardedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::head_end;

    /// Feeds `text` in the given pieces; whether the head ended, and after which piece.
    fn ends(pieces: &[&[u8]]) -> Option<usize> {
        let mut tail = [0; 2];
        for (i, piece) in pieces.iter().enumerate() {
            match head_end(tail, piece) {
                None => return Some(i),
                Some(t) => tail = t,
            }
        }
        None
    }

    #[test]
    fn the_empty_line_ends_a_head_wherever_the_reads_split_it() {
        for head in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET / HTTP/1.1\nHost: x\n\n",
        ] {
            let n = head.len();
            assert_eq!(ends(&[head]), Some(0));
            for cut in 1..n {
                assert_eq!(ends(&[&head[..cut], &head[cut..]]), Some(1), "cut at {cut}");
            }
            // One byte per read.
            let bytes: Vec<&[u8]> = head.chunks(1).collect();
            assert_eq!(ends(&bytes), Some(n - 1));
            // Not ended before its last byte.
            assert_eq!(ends(&[&head[..n - 1]]), None);
        }
        // A body after the head in the same read.
        assert_eq!(
            ends(&[b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab"]),
            Some(0)
        );
    }

    #[test]
    fn line_ends_alone_do_not_end_a_head() {
        assert_eq!(
            ends(&[b"GET / HTTP/1.1\r\n", b"A: b\r\n", b"C: d\r\n"]),
            None
        );
        assert_eq!(ends(&[b"\r", b"\r\n"]), None);
        assert_eq!(ends(&[b"A: b\r\n\r"]), None);
    }
}
