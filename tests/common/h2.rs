//! A real HTTP/2 origin on the `h2` crate: h2c (prior knowledge), or over TLS with ALPN `h2`.

use bytes::Bytes;
use openssl::ssl::{AlpnError, Ssl, SslAcceptor, SslFiletype, SslMethod};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// An h2c (prior-knowledge HTTP/2) origin on a loopback port. Every answer is JSON
/// `{"backend","version","path","body"}` followed by the trailer `x-trailer: done`; `seen` lists
/// the paths asked for, with the HTTP version.
pub struct H2Origin {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    delay: Arc<AtomicU64>,
}

impl H2Origin {
    pub fn start(name: &'static str) -> H2Origin {
        H2Origin::serve(name, None)
    }

    /// The same over TLS with the certificate `cert` and its key (PEM files).
    pub fn start_tls(name: &'static str, cert: &Path, key: &Path) -> H2Origin {
        let mut tls = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("acceptor");
        tls.set_certificate_chain_file(cert).expect("certificate");
        tls.set_private_key_file(key, SslFiletype::PEM)
            .expect("key");
        tls.set_alpn_select_callback(|_, offered| {
            openssl::ssl::select_next_proto(b"\x02h2", offered).ok_or(AlpnError::NOACK)
        });
        H2Origin::serve(name, Some(Arc::new(tls.build())))
    }

    fn serve(name: &'static str, tls: Option<Arc<SslAcceptor>>) -> H2Origin {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let delay = Arc::new(AtomicU64::new(0));
        let (log, wait) = (Arc::clone(&seen), Arc::clone(&delay));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                while let Ok((socket, _)) = listener.accept().await {
                    let (log, wait) = (Arc::clone(&log), Arc::clone(&wait));
                    match &tls {
                        None => drop(tokio::spawn(serve(socket, name, log, wait))),
                        Some(tls) => {
                            let Ok(ssl) = Ssl::new(tls.context()) else {
                                continue;
                            };
                            let Ok(mut stream) = tokio_openssl::SslStream::new(ssl, socket) else {
                                continue;
                            };
                            tokio::spawn(async move {
                                if std::pin::Pin::new(&mut stream).accept().await.is_ok() {
                                    serve(stream, name, log, wait).await;
                                }
                            });
                        }
                    }
                }
            });
        });
        H2Origin { addr, seen, delay }
    }

    /// Every answer waits `ms` first from now on (deadlines sent by the client are ignored).
    pub fn set_delay(&self, ms: u64) {
        self.delay.store(ms, Ordering::SeqCst);
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("seen").clone()
    }
}

async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    socket: S,
    name: &'static str,
    seen: Arc<Mutex<Vec<String>>>,
    delay: Arc<AtomicU64>,
) {
    let Ok(mut conn) = h2::server::handshake(socket).await else {
        return;
    };
    while let Some(Ok((req, mut respond))) = conn.accept().await {
        let seen = Arc::clone(&seen);
        let delay = delay.load(Ordering::SeqCst);
        tokio::spawn(async move {
            let version = format!("{:?}", req.version());
            let path = req.uri().path().to_owned();
            seen.lock().expect("seen").push(format!("{version} {path}"));
            let mut body = req.into_body();
            let mut got = Vec::new();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
                got.extend_from_slice(&chunk);
            }
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            let json = serde_json::json!({
                "backend": name,
                "version": version,
                "path": path,
                "body": String::from_utf8_lossy(&got),
            })
            .to_string();
            let head = http::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("x-backend", name)
                .body(())
                .expect("response");
            let Ok(mut send) = respond.send_response(head, false) else {
                return;
            };
            let _ = send.send_data(Bytes::from(json), false);
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-trailer", http::HeaderValue::from_static("done"));
            let _ = send.send_trailers(trailers);
        });
    }
}
