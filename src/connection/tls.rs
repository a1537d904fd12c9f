//! TLS on a guarded listener: the listener itself is plain TCP, and the handshake is made by
//! the guard (pingora's TLS server handshake with the gateway's callbacks), so it runs under
//! the connection's deadline instead of pingora's fixed minute.

use super::GuardedStream;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::server::handshake_with_callback;
use pingora::protocols::Stream;
use pingora::tls::ssl::{select_next_proto, AlpnError, SslAcceptor, SslMethod, SslVersion};
use std::sync::Arc;

/// ALPN preference with HTTP/2: `h2`, then `http/1.1`.
const H2_H1: &[u8] = b"\x02h2\x08http/1.1";
/// ALPN preference without it.
const H1: &[u8] = b"\x08http/1.1";

/// The TLS side of a listener: settings and the callbacks that pick certificates.
pub struct TlsListener {
    acceptor: SslAcceptor,
    callbacks: Arc<dyn TlsAccept + Send + Sync>,
}

impl TlsListener {
    /// Mozilla's intermediate settings, TLS 1.2 or newer, ALPN `h2, http/1.1` with `http2`.
    pub fn new(
        callbacks: Arc<dyn TlsAccept + Send + Sync>,
        http2: bool,
    ) -> Result<TlsListener, pingora::tls::error::ErrorStack> {
        let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())?;
        builder.set_min_proto_version(Some(SslVersion::TLS1_2))?;
        let preference = if http2 { H2_H1 } else { H1 };
        builder.set_alpn_select_callback(move |_, offered| {
            // An unknown protocol list is ignored: most clients then speak HTTP/1.1.
            select_next_proto(preference, offered).ok_or(AlpnError::NOACK)
        });
        Ok(TlsListener {
            acceptor: builder.build(),
            callbacks,
        })
    }

    /// The server side of the handshake on `stream`.
    pub async fn handshake(&self, stream: Stream) -> pingora::Result<Stream> {
        let transport = GuardedStream::transport(stream);
        let tls =
            handshake_with_callback(&self.acceptor, transport, self.callbacks.as_ref()).await?;
        Ok(Box::new(tls))
    }
}
