//! Process lifecycle: SIGHUP reload, SIGTERM drain, daemon mode, socket-handoff upgrade.

mod common;

use common::client::get_idempotent;
use common::{get, wait_for, Backend, Gateway};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

fn routes(addr: &str, path: &str) -> String {
    format!(
        "upstreams:\n  u: {{backends: [{{addr: \"{addr}\"}}]}}\nroutes:\n  - {{name: r, path: {path}, upstream: u}}\n"
    )
}

#[test]
fn sighup_swaps_in_a_valid_file() {
    let b = Backend::start("b");
    let gw = Gateway::start(&routes(&b.addr.to_string(), "/old"));
    assert_eq!(get(&gw.url("/old")).status, 200);
    gw.reconfigure(&routes(&b.addr.to_string(), "/new"));
    gw.signal("HUP");
    wait_for("the new route", Duration::from_secs(10), || {
        (get(&gw.url("/new")).status == 200).then_some(())
    });
    assert_eq!(get(&gw.url("/old")).status, 404);
    assert!(gw.log().contains("config reloaded"));
}

#[test]
fn rust_log_takes_module_directives() {
    let b = Backend::start("b");
    let body = routes(&b.addr.to_string(), "/");
    let gw = Gateway::start_with_env(&body, &[("RUST_LOG", "warn,api_gateway::reload=info")]);
    gw.signal("HUP");
    wait_for("the reload line", Duration::from_secs(10), || {
        gw.log().contains("config reloaded").then_some(())
    });
    let log = gw.log();
    let reload_line = log
        .lines()
        .find(|l| l.contains("config reloaded"))
        .expect("reload line");
    let line: serde_json::Value = serde_json::from_str(reload_line).expect("a JSON line");
    assert_eq!(line["target"], "api_gateway::reload");
    assert_eq!(line["level"], "INFO");
    assert!(
        !log.contains("gateway starting"),
        "api_gateway::app logs at info, which RUST_LOG turned off:\n{log}"
    );

    // Without RUST_LOG, `log.level: info` applies to every module.
    let plain = Gateway::start(&body);
    wait_for("the start-up line", Duration::from_secs(10), || {
        plain.log().contains("gateway starting").then_some(())
    });
}

#[test]
fn sighup_says_which_changes_wait_for_a_restart() {
    let b = Backend::start("b");
    let gw = Gateway::start(&routes(&b.addr.to_string(), "/"));
    let header = common::gateway::header().replace("level: info", "level: debug");
    gw.write_config(&format!("{header}{}", routes(&b.addr.to_string(), "/")));
    gw.signal("HUP");
    wait_for("the warning", Duration::from_secs(10), || {
        gw.log().contains("log: changed in").then_some(())
    });
    let log = gw.log();
    assert!(
        log.contains("takes effect only on restart or upgrade"),
        "{log}"
    );
    assert!(
        !log.contains("listen: changed"),
        "the listen section did not change:\n{log}"
    );
}

#[test]
fn sighup_with_a_bad_file_keeps_the_running_config() {
    let b = Backend::start("b");
    let gw = Gateway::start(&routes(&b.addr.to_string(), "/old"));
    gw.reconfigure(
        "upstreams:\n  u: {backends: []}\nroutes:\n  - {name: r, path: /new, upstream: nope, timeout: 3 days}\n",
    );
    gw.signal("HUP");
    wait_for("the rejection in the log", Duration::from_secs(10), || {
        gw.log().contains("reload rejected").then_some(())
    });
    let log = gw.log();
    for problem in [
        "upstreams.u.backends: at least one backend is required",
        "routes[0].timeout: invalid duration",
    ] {
        assert!(log.contains(problem), "missing {problem:?} in log:\n{log}");
    }
    assert_eq!(get(&gw.url("/old")).status, 200);
    assert_eq!(get(&gw.url("/new")).status, 404);
    // A later good file is still taken.
    gw.reconfigure(&routes(&b.addr.to_string(), "/new"));
    gw.signal("HUP");
    wait_for("the good reload", Duration::from_secs(10), || {
        (get(&gw.url("/new")).status == 200).then_some(())
    });
}

#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let b = Backend::start("slow");
    // In-flight requests have `grace_period` to finish; tasks still running after it are dropped.
    let header = common::gateway::header().replace("grace_period: 1s", "grace_period: 3s");
    let mut gw = Gateway::start_raw(&format!("{header}{}", routes(&b.addr.to_string(), "/")));
    let url = gw.url("/?delay_ms=1500");
    let in_flight = std::thread::spawn(move || get(&url));
    wait_for(
        "the request to reach the backend",
        Duration::from_secs(10),
        || (b.received() == 1).then_some(()),
    );
    gw.signal("TERM");
    let r = in_flight.join().expect("client thread");
    assert_eq!(r.status, 200, "{}", r.body);
    let status = gw.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    assert!(
        TcpStream::connect(gw.proxy).is_err(),
        "listener still open after exit"
    );
}

#[test]
fn daemon_mode_writes_the_pid_file_and_serves() {
    let b = Backend::start("b");
    let mut gw = Gateway::spawn(
        &format!(
            "{}{}",
            common::gateway::header(),
            routes(&b.addr.to_string(), "/")
        ),
        &["-d"],
    );
    let status = gw.wait_exit(Duration::from_secs(20));
    assert!(
        status.success(),
        "foreground parent: {status:?}\n{}",
        gw.log()
    );
    let pid_file = gw.dir.path().join("gateway.pid");
    let pid: u32 = wait_for("the pid file", Duration::from_secs(20), || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    });
    let kill = |sig: &str| {
        Command::new("kill")
            .args(["-s", sig, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    };
    wait_for("the daemon to listen", Duration::from_secs(20), || {
        TcpStream::connect(gw.proxy).ok()
    });
    let r = get(&gw.url("/x"));
    assert!(kill("INT"), "daemon pid {pid} not running");
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for("the daemon to exit", Duration::from_secs(20), || {
        (!kill("0")).then_some(())
    });
}

#[test]
fn upgrade_hands_the_listener_over_without_refusals() {
    let b = Backend::start("b");
    let mut old = Gateway::start(&routes(&b.addr.to_string(), "/"));
    let (mut new, new_log) = old.spawn_sibling("upgraded.log", &["-u"]);
    // The new process listens on upgrade_sock; the old one sends its sockets there on SIGQUIT.
    let sock = old.dir.path().join("upgrade.sock");
    wait_for(
        "the new process to wait on upgrade_sock",
        Duration::from_secs(10),
        || sock.exists().then_some(()),
    );
    old.signal("QUIT");
    // No connection may be refused and every request must be answered. Pingora's old process
    // drops a connection it accepted but had not read yet when its shutdown begins; a client
    // then sends the idempotent request again, as HTTP clients do.
    let (mut served, mut resent) = (0, 0);
    let exited = loop {
        let (r, retried) = get_idempotent(&old.url("/during-upgrade"));
        assert_eq!(
            r.status, 200,
            "request {served} during the upgrade: {}",
            r.body
        );
        served += 1;
        resent += usize::from(retried);
        if let Some(status) = old.child.try_wait().expect("wait") {
            break status;
        }
        assert!(served < 5000, "old process never exited");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exited.success(), "{exited:?}");
    eprintln!("{served} requests during the upgrade, {resent} sent again after a close");
    assert_eq!(
        new.try_wait().expect("wait"),
        None,
        "new process died:\n{}",
        std::fs::read_to_string(&new_log).unwrap_or_default()
    );
    assert_eq!(get(&old.url("/after")).status, 200);
    let _ = new.kill();
    let _ = new.wait();
}

#[test]
fn a_busy_port_is_one_clear_error_and_a_failed_exit() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gw.yaml");
    std::fs::write(
        &config,
        common::gateway::header()
            .replace("{proxy}", &addr.to_string())
            .replace("{metrics}", &format!("127.0.0.1:{}", common::free_port()))
            .replace("{admin}", &format!("127.0.0.1:{}", common::free_port()))
            .replace("{dir}", &dir.path().display().to_string())
            + "upstreams:\n  u: {backends: [{addr: \"127.0.0.1:1\"}]}\nroutes:\n  - {name: r, path: /, upstream: u}\n",
    )
    .expect("config");
    let started = std::time::Instant::now();
    let out = std::process::Command::new(common::gateway::BIN)
        .arg("-c")
        .arg(&config)
        .output()
        .expect("run the gateway");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains(&format!("cannot listen on {addr} (listen.proxy)")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    drop(taken);
}

#[test]
fn the_foreground_process_writes_its_pid_file_for_signals() {
    let b = Backend::start("b");
    let gw = Gateway::start(&format!(
        "upstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: r, path: /, upstream: u}}\n",
        b.addr
    ));
    let pid = std::fs::read_to_string(gw.dir.path().join("gateway.pid")).expect("pid file");
    assert_eq!(pid.trim(), gw.child.id().to_string());
    // `kill -HUP $(cat pid_file)` reloads.
    let before = gw.log().matches("config reloaded").count();
    let status = Command::new("kill")
        .args(["-HUP", pid.trim()])
        .status()
        .expect("kill");
    assert!(status.success());
    wait_for("the reload", Duration::from_secs(10), || {
        (gw.log().matches("config reloaded").count() > before).then_some(())
    });
}
