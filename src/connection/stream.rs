//! A guarded connection's stream: each request head watched against its deadline.
//!
//! The first head's deadline starts when the connection is accepted (a client that connects
//! and says nothing is cut off too); a kept-alive connection's next head starts its own with
//! its first byte, so idle keep-alive connections are left to pingora's keep-alive timeout.
//! Empty lines before a request line (which a server must skip) do not end a head. Pingora
//! serves a kept-alive connection's requests in a loop of its own, so the end of each request is
//! told to the stream ([`request_done`]). A head that arrives in one read (nearly all of them)
//! ends before any timer is armed. Pingora's one peek (the h2c preface, 24 bytes) is answered
//! under the same deadline, and as soon as the bytes cannot be the preface: a short HTTP/1
//! request is served at once instead of waiting for bytes that never come.

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::Slot;

/// The HTTP/2 connection preface, the only thing pingora peeks for.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Where the current request head is.
enum Head {
    /// Between requests: no deadline until a byte arrives.
    Idle,
    /// A head began at `started` (or the connection was accepted then). `tail` holds the last
    /// two bytes seen; `content` whether anything but empty lines came; `armed` whether
    /// `deadline` is set for this head.
    Reading {
        started: Instant,
        tail: [u8; 2],
        content: bool,
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
    /// Bytes read by a peek, handed out again by the next reads.
    peeked: Vec<u8>,
    /// Counts the connection until it closes.
    _slot: Option<Slot>,
}

impl GuardedStream {
    /// Watches `inner`'s request heads; the first one's deadline runs from `accepted`.
    pub fn new(
        inner: Stream,
        timeout: Option<Duration>,
        accepted: Instant,
        slot: Option<Slot>,
    ) -> GuardedStream {
        GuardedStream {
            inner,
            timeout,
            head: Head::Reading {
                started: accepted,
                tail: [0; 2],
                content: false,
                armed: false,
            },
            deadline: None,
            request_done: AtomicBool::new(false),
            peeked: Vec::new(),
            _slot: slot,
        }
    }

    /// Only passes the bytes through (the transport under a TLS session).
    pub fn transport(inner: Stream) -> GuardedStream {
        GuardedStream {
            head: Head::Done,
            ..GuardedStream::new(inner, None, Instant::now(), None)
        }
    }
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
    /// Follows the bytes just read: a first byte starts a head, an empty line after something
    /// else ends it. The clock is read only when a head spans reads (nearly every head arrives
    /// in one).
    fn saw(&mut self, mut bytes: &[u8]) {
        if bytes.is_empty() || self.timeout.is_none() {
            return;
        }
        let (tail, content) = match &self.head {
            Head::Done => return,
            Head::Idle => ([0; 2], false),
            Head::Reading { tail, content, .. } => (*tail, *content),
        };
        if !content {
            // Empty lines before the request line are skipped, and do not end anything.
            let skip = bytes
                .iter()
                .position(|b| !matches!(b, b'\r' | b'\n'))
                .unwrap_or(bytes.len());
            bytes = &bytes[skip..];
        }
        let next = if bytes.is_empty() {
            Some(tail)
        } else {
            head_end(tail, bytes)
        };
        match (next, &mut self.head) {
            (None, _) => self.head = Head::Done,
            (Some(t), Head::Reading { tail, content, .. }) => {
                *tail = t;
                *content |= !bytes.is_empty();
            }
            (Some(t), _) => {
                self.head = Head::Reading {
                    started: Instant::now(),
                    tail: t,
                    content: !bytes.is_empty(),
                    armed: false,
                }
            }
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
        if !this.peeked.is_empty() {
            let n = this.peeked.len().min(buf.remaining());
            buf.put_slice(&this.peeked[..n]);
            this.peeked.drain(..n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if this.expired(cx) {
                    Poll::Ready(Err(head_timed_out()))
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
    /// Fills `buf` with the first bytes (read again afterwards) within the head's deadline,
    /// stopping as soon as they cannot be the HTTP/2 preface (the rest of `buf` is then zero).
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let limit = match (&self.head, self.timeout) {
            (Head::Reading { started, .. }, Some(t)) => Some(*started + t),
            (_, Some(t)) => Some(Instant::now() + t),
            (_, None) => None,
        };
        let mut got = std::mem::take(&mut self.peeked);
        let this = &mut *self;
        let want = buf.len();
        let fill = async move {
            while got.len() < want
                && H2_PREFACE.starts_with(&got[..got.len().min(H2_PREFACE.len())])
            {
                let mut chunk = [0u8; 64];
                let n = tokio::io::AsyncReadExt::read(&mut *this, &mut chunk).await?;
                if n == 0 {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                }
                got.extend_from_slice(&chunk[..n]);
            }
            Ok(got)
        };
        let got = match limit {
            Some(at) => tokio::time::timeout_at(at, fill)
                .await
                .map_err(|_| head_timed_out())??,
            None => fill.await?,
        };
        let n = got.len().min(buf.len());
        buf[..n].copy_from_slice(&got[..n]);
        buf[n..].fill(0);
        self.peeked = got;
        Ok(true)
    }
}

fn head_timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the request head did not arrive within request_head_timeout",
    )
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
