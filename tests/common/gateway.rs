//! The real `gateway` binary on a temp config with fresh ports.

use super::{free_port, wait_for};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_gateway");

pub struct Gateway {
    pub child: Child,
    pub proxy: SocketAddr,
    pub metrics: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    log: PathBuf,
}

impl Gateway {
    /// Starts a gateway whose config is `body` (upstreams, routes, ...) after a generated
    /// `server:` / `listen:` / `log:` header, and waits until it answers.
    pub fn start(body: &str) -> Gateway {
        Gateway::start_raw(&format!("{}{body}", header()))
    }

    /// Starts a gateway on exactly `yaml`, after replacing `{proxy}`, `{metrics}`, `{admin}`
    /// with fresh loopback addresses and `{dir}` with its temp dir.
    pub fn start_raw(yaml: &str) -> Gateway {
        let gw = Gateway::spawn(yaml, &[]);
        gw.wait_ready();
        gw
    }

    /// Like `start`, with extra environment variables for the process.
    pub fn start_with_env(body: &str, env: &[(&str, &str)]) -> Gateway {
        let gw = Gateway::spawn_with_env(&format!("{}{body}", header()), &[], env);
        gw.wait_ready();
        gw
    }

    /// Like `start`, with another build of the gateway (an example that adds middlewares).
    pub fn start_bin(bin: &Path, body: &str) -> Gateway {
        let gw = Gateway::spawn_from(bin, &format!("{}{body}", header()), &[], &[]);
        gw.wait_ready();
        gw
    }

    /// Spawns without waiting; `args` come after `-c <config>`.
    pub fn spawn(yaml: &str, args: &[&str]) -> Gateway {
        Gateway::spawn_with_env(yaml, args, &[])
    }

    fn spawn_with_env(yaml: &str, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        Gateway::spawn_from(Path::new(BIN), yaml, args, env)
    }

    fn spawn_from(bin: &Path, yaml: &str, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let proxy = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let yaml = fill(yaml, dir.path(), [proxy, metrics, admin]);
        let config = dir.path().join("gateway.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let (child, log) = run(bin, &config, dir.path(), "gateway.log", args, env);
        Gateway {
            child,
            proxy,
            metrics,
            admin,
            dir,
            config,
            log,
        }
    }

    /// Starts another process on this gateway's config file (e.g. with `-u`), logging to
    /// `log_name` in the same temp dir. The returned child is killed by the caller.
    pub fn spawn_sibling(&self, log_name: &str, args: &[&str]) -> (Child, PathBuf) {
        run(
            Path::new(BIN),
            &self.config,
            self.dir.path(),
            log_name,
            args,
            &[],
        )
    }

    /// Waits until the proxy, metrics and admin listeners all accept connections (each is
    /// its own pingora service and may come up later than the others), failing fast if the
    /// process exits.
    pub fn wait_ready(&self) {
        let child_id = self.child.id();
        for addr in [self.proxy, self.metrics, self.admin] {
            wait_for("gateway to listen", Duration::from_secs(30), || {
                if !process_alive(child_id) {
                    panic!("gateway exited during start-up:\n{}", self.log());
                }
                TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                    .ok()
                    .map(|_| ())
            });
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    /// A URL on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Waits until the admin listener accepts connections.
    pub fn wait_admin(&self) {
        wait_for("the admin listener", Duration::from_secs(10), || {
            TcpStream::connect(self.admin).ok()
        });
    }

    /// The value of the first metrics line starting with `series` (name and labels as printed).
    pub fn metric(&self, series: &str) -> Option<f64> {
        self.scrape()
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    /// The metrics listener's `/metrics` text.
    pub fn scrape(&self) -> String {
        let r = super::get(&format!("http://{}/metrics", self.metrics));
        assert_eq!(r.status, 200, "metrics: {}", r.body);
        r.body
    }

    /// The log lines that are JSON objects with `"target":"access"`.
    pub fn access_lines(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "access")
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal by name (`HUP`, `TERM`, ...).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -s {name} failed");
    }

    /// Rewrites the config file (placeholders filled as at start).
    pub fn write_config(&self, yaml: &str) {
        let yaml = fill(
            yaml,
            self.dir.path(),
            [self.proxy, self.metrics, self.admin],
        );
        std::fs::write(&self.config, yaml).expect("rewrite config");
    }

    /// Rewrites the config with the standard header and `body`, as `start` does.
    pub fn reconfigure(&self, body: &str) {
        self.write_config(&format!("{}{body}", header()));
    }

    /// Waits for the process to exit and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        wait_for("gateway to exit", timeout, || {
            self.child.try_wait().ok().flatten()
        })
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(
    bin: &Path,
    config: &Path,
    dir: &Path,
    log_name: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, PathBuf) {
    let log = dir.join(log_name);
    let stderr = std::fs::File::create(&log).expect("log file");
    let child = Command::new(bin)
        .arg("-c")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn gateway");
    (child, log)
}

/// `gateway -t` on `yaml` (written to a temp file): the exit code and what it wrote on stderr.
pub fn check_config(yaml: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, yaml).expect("write config");
    let out = Command::new(BIN)
        .arg("-t")
        .arg("-c")
        .arg(&path)
        .output()
        .expect("gateway -t");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What `gateway -t` says of `yaml`, which it must refuse (exit 1).
pub fn refused(yaml: &str) -> String {
    let (code, err) = check_config(yaml);
    assert_eq!(code, Some(1), "{err}");
    err
}

/// An `upstreams` section with one upstream `u` on `backend`.
pub fn one_upstream(backend: &super::Backend) -> String {
    format!(
        "upstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\n",
        backend.addr
    )
}

/// Settings every test gateway gets unless it writes its own.
pub fn header() -> String {
    "server:\n  threads: 1\n  pid_file: {dir}/gateway.pid\n  upgrade_sock: {dir}/upgrade.sock\n  grace_period: 1s\n  graceful_shutdown_timeout: 2s\nlisten: {proxy: \"{proxy}\", metrics: \"{metrics}\", admin: \"{admin}\"}\nlog: {level: info, format: json, access_log: true}\n".to_owned()
}

/// Fills the placeholders; the same gateway always gets the same listener addresses.
fn fill(yaml: &str, dir: &Path, [proxy, metrics, admin]: [SocketAddr; 3]) -> String {
    yaml.replace("{proxy}", &proxy.to_string())
        .replace("{proxy_port}", &proxy.port().to_string())
        .replace("{admin_port}", &admin.port().to_string())
        .replace("{metrics}", &metrics.to_string())
        .replace("{admin}", &admin.to_string())
        .replace("{dir}", &dir.display().to_string())
}

fn process_alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped) still has /proc/<pid>; its state is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
        .unwrap_or(false)
}
