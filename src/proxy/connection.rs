//! Guards on the proxy listener's connections, below HTTP: a deadline for the whole request
//! head (a client sending one header line every few seconds is cut off instead of holding a
//! connection for minutes: pingora only bounds each single read), and a cap on the connections
//! one client address holds open at once.
//!
//! [`Guarded`] wraps the pingora HTTP application: each new connection is counted for its
//! address (pingora-limits' fixed-memory `Inflight`), refused at once past the cap, and its
//! stream wrapped in [`GuardedStream`], which watches the bytes of each request head. The
//! deadline starts with the first byte of a head, so idle keep-alive connections are left to
//! pingora's keep-alive timeout.

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
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

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
        let stream = if stream.as_any().is::<GuardedStream>() {
            // A kept-alive connection back for its next request.
            let mut guarded = stream.into_any().downcast::<GuardedStream>().ok()?;
            guarded.head = Head::Idle;
            guarded as Stream
        } else {
            self.admit(stream)?
        };
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
            _slot: slot,
        }))
    }
}

/// Where the current request head is.
enum Head {
    /// Between requests (or before the first): no deadline.
    Idle,
    /// Bytes of a head arrived; it must end before `deadline`. `tail` holds the last four bytes.
    Reading {
        deadline: Pin<Box<Sleep>>,
        tail: u32,
    },
    /// The head ended; the body and the answer have no head deadline.
    Done,
}

/// A connection's stream, watching each request head against its deadline.
pub struct GuardedStream {
    inner: Stream,
    timeout: Option<Duration>,
    head: Head,
    /// Counts the connection for its address until it closes.
    _slot: Option<Guard>,
}

impl std::fmt::Debug for GuardedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedStream")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl GuardedStream {
    /// Follows the bytes just read: a first byte starts the deadline, an empty line ends it.
    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let (Head::Idle, Some(timeout)) = (&self.head, self.timeout) {
            self.head = Head::Reading {
                deadline: Box::pin(tokio::time::sleep(timeout)),
                tail: 0,
            };
        }
        let Head::Reading { tail, .. } = &mut self.head else {
            return;
        };
        for b in bytes {
            *tail = (*tail << 8) | u32::from(*b);
            // CRLF CRLF, or LF LF (refused later with a 400, but the head is over).
            if *tail == 0x0d0a_0d0a || *tail & 0xffff == 0x0a0a {
                self.head = Head::Done;
                return;
            }
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let expired = match &mut this.head {
                    Head::Reading { deadline, .. } => deadline.as_mut().poll(cx).is_ready(),
                    _ => false,
                };
                if expired {
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
