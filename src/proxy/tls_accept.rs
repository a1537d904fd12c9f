//! The proxy's HTTPS listener: TLS settings, and the handshake callback that takes the
//! certificate for the client's SNI name from the running snapshot.

use crate::connection::TlsListener;
use crate::state::Shared;
use async_trait::async_trait;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use pingora::tls::error::ErrorStack;
use pingora::tls::ssl::NameType;
use std::sync::Arc;

/// The TLS side of the proxy's HTTPS listener: TLS 1.2 or newer, ALPN `h2, http/1.1` when
/// `http2`, certificates from the running snapshot.
pub fn settings(shared: Arc<Shared>, http2: bool) -> Result<TlsListener, ErrorStack> {
    TlsListener::new(Arc::new(BySni { shared }), http2)
}

/// Hands each handshake the certificate for its SNI name.
struct BySni {
    shared: Arc<Shared>,
}

#[async_trait]
impl TlsAccept for BySni {
    async fn certificate_callback(&self, ssl: &mut TlsRef) {
        let snapshot = self.shared.snapshot.load();
        let Some(cert) = snapshot
            .tls
            .as_ref()
            .and_then(|c| c.pick(ssl.servername(NameType::HOST_NAME)))
        else {
            return;
        };
        if let Err(e) = cert.install(ssl) {
            log::warn!("TLS handshake: could not install the certificate: {e}");
        }
    }
}
