//! Builds the pingora server: proxy listener and background services.

use crate::admin::{AdminApp, History, Sampler};
use crate::auth::{JwksRefresher, RevocationSync};
use crate::cache::PurgeListener;
use crate::cli::Cli;
use crate::config::file::{FileConfig, ServerConfig};
use crate::connection::{Guarded, Guards, SIDE_LISTENER_CAP};
use crate::etcd::Document;
use crate::health::HealthChecks;
use crate::metrics::MetricsApp;
use crate::proxy::Gateway;
use crate::reload::ConfigReloader;
use crate::snapshot::Snapshot;
use crate::state::Shared;
use pingora::apps::http_app::HttpServer;
use pingora::apps::HttpServerOptions;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::proxy::http_proxy;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use pingora::services::ServiceHandle;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Starts serving `snapshot` (compiled with the etcd document `remote`, if the config comes
/// from etcd); returns only if the server exits.
pub(crate) fn run(cli: &Cli, config_path: PathBuf, snapshot: Snapshot, remote: Option<Document>) {
    let file = Arc::clone(&snapshot.file);
    let opt = Opt {
        upgrade: cli.upgrade,
        daemon: cli.daemon,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf(&file.server, cli.daemon));
    // Bootstrap (taking the sockets over in an upgrade) runs as a service, after any daemon
    // fork, so `-u -d` returns at once and systemd's next ExecReload line can send SIGQUIT to the
    // old process, which only then hands its sockets over (see conf/gateway.service). Listening
    // services wait for it.
    let bootstrap = server.bootstrap_as_a_service();
    if !cli.daemon {
        write_pid_file(&file.server.pid_file);
    }
    let shared = Shared::new(snapshot, config_path, cli.demo, remote);
    metrics_sources(&shared);
    let (reloader, discovery, history) = background(&mut server, &shared, &file);
    // Every listener's connections go through the same guards (caps and head deadline).
    let guards = Guards::new();
    log::debug!(
        "at most {} connections open at once (file-descriptor bound)",
        guards.fd_bound()
    );
    let wait_for = [&reloader, &discovery, &bootstrap];
    if let Err(e) = proxy_services(&mut server, &shared, &guards, &wait_for) {
        log::error!("{e}");
        return;
    }
    side_services(&mut server, &shared, &guards, history, &bootstrap);
    let https = file
        .listen
        .proxy_tls
        .as_ref()
        .map_or(String::new(), |t| format!(", HTTPS on {}", t.addr));
    log::info!(
        "gateway starting: proxy on {}{https}, metrics on {}, admin on {}",
        file.listen.proxy,
        file.listen.metrics,
        file.listen.admin
    );
    server.run_forever();
}

/// Pingora writes the pid file for a daemon only; `kill -HUP $(cat pid_file)` should work in
/// the foreground as well.
fn write_pid_file(path: &str) {
    if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
        log::warn!("cannot write the pid file {path}: {e}");
    }
}

/// What the metrics read from the live snapshot at scrape time: backend health, cache memory.
fn metrics_sources(shared: &Arc<Shared>) {
    if crate::metrics::get().is_none() {
        return;
    }
    let source = shared.clone();
    crate::metrics::set_health_source(Arc::new(move || {
        let snapshot = source.snapshot.load();
        let mut out = Vec::new();
        for up in snapshot.upstreams.values() {
            for b in up.view().backends {
                out.push((up.name.clone(), b.addr, b.healthy));
            }
        }
        out
    }));
    let source = shared.clone();
    crate::metrics::set_cache_memory_source(Arc::new(move || {
        let snapshot = source.snapshot.load();
        snapshot.cache.as_ref()?.store.memory_usage()
    }));
}

/// The background services: reload, etcd watch, service discovery, health checks, revocation
/// sync, JWKS refresh, cache purges, trace export, the stats history. The reloader's and the
/// discovery's handles (the proxy waits for them) and the history (the admin API reads it).
fn background(
    server: &mut Server,
    shared: &Arc<Shared>,
    file: &FileConfig,
) -> (ServiceHandle, ServiceHandle, Arc<History>) {
    let reloader = server.add_service(background_service(
        "config reload",
        ConfigReloader::new(shared.clone()),
    ));
    if let Some(cfg) = &file.etcd {
        server.add_service(background_service(
            "etcd config watch",
            crate::etcd::watch::EtcdWatcher::new(shared.clone(), cfg.clone()),
        ));
    }
    let discovery = server.add_service(background_service(
        "service discovery",
        crate::balance::discovery::service::Discovery::new(shared.clone()),
    ));
    server.add_service(background_service(
        "health checks",
        HealthChecks::new(shared.clone()),
    ));
    server.add_service(background_service(
        "revocation sync",
        RevocationSync::new(shared.clone()),
    ));
    server.add_service(background_service(
        "jwks refresh",
        JwksRefresher::new(shared.clone()),
    ));
    server.add_service(background_service(
        "cache purge listener",
        PurgeListener::new(shared.clone()),
    ));
    if let Some(exporter) = file.tracing.as_ref().and_then(crate::trace::install) {
        server.add_service(background_service("trace export", exporter));
    }
    let history = Arc::new(History::default());
    server.add_service(background_service(
        "stats history",
        Sampler::new(Arc::clone(&history)),
    ));
    (reloader, discovery, history)
}

/// The proxy's listeners: plain HTTP (and h2c), and HTTPS when configured, each behind the
/// connection guards; they start once `wait_for` have.
fn proxy_services(
    server: &mut Server,
    shared: &Arc<Shared>,
    guards: &Arc<Guards>,
    wait_for: &[&ServiceHandle],
) -> Result<(), String> {
    let file = Arc::clone(&shared.snapshot.load().file);
    let conf = Arc::clone(&server.configuration);
    let guarded = |app| Guarded::new(app, shared.clone(), Arc::clone(guards), None);
    let gateway = || {
        let mut http = http_proxy(&conf, Gateway::new(shared.clone(), file.server.header_case));
        if file.listen.h2c {
            let mut options = HttpServerOptions::default();
            options.h2c = true;
            http.server_options = Some(options);
        }
        http
    };
    let mut proxy = Service::new("gateway proxy".to_owned(), guarded(gateway()));
    // Plain HTTP is read straight into pingora's request buffer: a 64 KiB read buffer per
    // connection (pingora's default, kept for TLS, whose records it batches) only added a copy
    // per read and 16 MiB of peak RSS at 256 connections.
    proxy.add_listener(
        ListenerConfig::tcp(&file.listen.proxy).l4_buffer(L4BufferSettings::default().read(0)),
    );
    let mut services = vec![server.add_service(proxy)];
    if let Some(tls) = &file.listen.proxy_tls {
        // A plain TCP listener: the guard makes the handshake, under its deadline.
        let listener = crate::proxy::tls_settings(shared.clone(), tls.http2)
            .map_err(|e| format!("cannot set up TLS on {}: {e}", tls.addr))?;
        let mut https = Service::new(
            "gateway proxy tls".to_owned(),
            guarded(gateway()).with_tls(listener),
        );
        https.add_tcp(&tls.addr);
        services.push(server.add_service(https));
    }
    for service in &services {
        for dependency in wait_for {
            service.add_dependency(*dependency);
        }
    }
    Ok(())
}

/// The metrics and admin listeners, each behind the guards with a cap of its own.
fn side_services(
    server: &mut Server,
    shared: &Arc<Shared>,
    guards: &Arc<Guards>,
    history: Arc<History>,
    bootstrap: &ServiceHandle,
) {
    let file = Arc::clone(&shared.snapshot.load().file);
    let cap = Some(SIDE_LISTENER_CAP);
    let metrics_app = HttpServer::new_app(MetricsApp);
    let metrics_app = Guarded::new(metrics_app, shared.clone(), Arc::clone(guards), cap);
    let mut metrics = Service::new("metrics".to_owned(), metrics_app);
    metrics.add_tcp(&file.listen.metrics);
    server.add_service(metrics).add_dependency(bootstrap);
    let admin_app = HttpServer::new_app(AdminApp::new(shared.clone(), history));
    let admin_app = Guarded::new(admin_app, shared.clone(), Arc::clone(guards), cap);
    let mut admin = Service::new("admin".to_owned(), admin_app);
    admin.add_tcp(&file.listen.admin);
    server.add_service(admin).add_dependency(bootstrap);
}

/// Whether every listener's address can be bound now: one line per address that cannot, naming
/// it and its setting (`cannot listen on 127.0.0.1:8080 (listen.proxy): Address already in
/// use`). Not for an upgrade, whose sockets the running process hands over.
pub fn check_listeners(snapshot: &Snapshot) -> Result<(), Vec<String>> {
    let listen = &snapshot.file.listen;
    let mut addresses = vec![
        ("listen.proxy", listen.proxy.as_str()),
        ("listen.metrics", listen.metrics.as_str()),
        ("listen.admin", listen.admin.as_str()),
    ];
    if let Some(tls) = &listen.proxy_tls {
        addresses.push(("listen.proxy_tls.addr", tls.addr.as_str()));
    }
    let problems: Vec<String> = addresses
        .into_iter()
        .filter_map(|(setting, addr)| {
            let e = std::net::TcpListener::bind(addr).err()?;
            Some(format!("cannot listen on {addr} ({setting}): {e}"))
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn server_conf(cfg: &ServerConfig, daemon: bool) -> ServerConf {
    ServerConf {
        daemon,
        threads: cfg.threads,
        // Not `daemon_wait_for_ready`: in pingora 0.9.1 the daemon can signal readiness before
        // the parent listens for it, and the signal then kills the parent (a failed reload).
        // The new pid file is written right after the fork, seconds before the old process
        // exits, which is what systemd needs to follow the main pid.
        pid_file: cfg.pid_file.clone(),
        upgrade_sock: cfg.upgrade_sock.clone(),
        grace_period_seconds: Some(whole_seconds(cfg.grace_period.0)),
        graceful_shutdown_timeout_seconds: Some(whole_seconds(cfg.graceful_shutdown_timeout.0)),
        upstream_keepalive_pool_size: cfg.upstream_keepalive_pool_size,
        listener_tasks_per_fd: cfg.listener_tasks_per_fd,
        work_stealing: cfg.work_stealing,
        ..ServerConf::default()
    }
}

/// Pingora takes whole seconds; round up so a grace period is never cut short.
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
