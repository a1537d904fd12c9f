//! Pingora set up the way the gateway sets it up, with no filters: mimalloc, no downstream
//! modules, one runtime per worker thread, the gateway's upstream pool size and idle timeout.
//! Beside `bare_proxy` (pingora's defaults) it splits what the gateway costs into what its
//! choice of settings gains and what its features spend (`make bench-instructions`).
//!
//! Usage: `tuned_proxy LISTEN_ADDR ORIGIN_ADDR` (one worker thread).

use api_gateway::internals::{ServerConfig, UPSTREAM_IDLE_TIMEOUT};
use async_trait::async_trait;
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use std::net::SocketAddr;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Tuned(SocketAddr);

#[async_trait]
impl ProxyHttp for Tuned {
    type CTX = ();

    fn new_ctx(&self) {}

    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.0, false, String::new());
        peer.options.idle_timeout = Some(UPSTREAM_IDLE_TIMEOUT);
        Ok(Box::new(peer))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(origin)) = (args.get(1), args.get(2).and_then(|a| a.parse().ok()))
    else {
        eprintln!("usage: tuned_proxy LISTEN_ADDR ORIGIN_ADDR");
        std::process::exit(2);
    };
    let gateway = ServerConfig::default();
    let conf = ServerConf {
        threads: 1,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        upstream_keepalive_pool_size: gateway.upstream_keepalive_pool_size,
        work_stealing: gateway.work_stealing,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Tuned(origin));
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever();
}
