//! A real HTTP/2 origin without TLS (h2c, prior knowledge), on the `h2` crate.

use bytes::Bytes;
use std::net::SocketAddr;
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
                    tokio::spawn(serve(socket, name, Arc::clone(&log), Arc::clone(&wait)));
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

async fn serve(
    socket: tokio::net::TcpStream,
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
