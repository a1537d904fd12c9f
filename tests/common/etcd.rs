//! A real `etcd` child (one member) on free loopback ports with its data in a temp dir, killed
//! on drop; `etcdctl` as an independent client.

use super::{free_port, wait_for};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Etcd {
    child: Option<Child>,
    pub client: SocketAddr,
    peer: SocketAddr,
    dir: tempfile::TempDir,
    /// `(ca, cert, key)`: clients on https with certificates, checked against the CA.
    tls: Option<[String; 3]>,
    /// `user:password` for `etcdctl`, once authentication is on.
    user: Option<String>,
}

impl Etcd {
    pub fn start() -> Etcd {
        Etcd::start_with(None)
    }

    /// Clients on https with a certificate from the CA (`ca`, `cert`, `key` PEM files: the
    /// same certificate serves the member and `etcdctl`).
    pub fn start_tls(ca: &str, cert: &str, key: &str) -> Etcd {
        Etcd::start_with(Some([ca.to_owned(), cert.to_owned(), key.to_owned()]))
    }

    fn start_with(tls: Option<[String; 3]>) -> Etcd {
        let mut etcd = Etcd {
            child: None,
            client: SocketAddr::from(([127, 0, 0, 1], free_port())),
            peer: SocketAddr::from(([127, 0, 0, 1], free_port())),
            dir: tempfile::tempdir().expect("temp dir"),
            tls,
            user: None,
        };
        etcd.spawn();
        etcd
    }

    /// Turns authentication on: `root` (password `root-pass`) for `etcdctl`, and `user` with
    /// `password` reading and writing keys under `prefix`.
    pub fn enable_auth(&mut self, user: &str, password: &str, prefix: &str) {
        let steps: [&[&str]; 6] = [
            &["user", "add", "root:root-pass"],
            &["role", "add", "gateway"],
            &[
                "role",
                "grant-permission",
                "gateway",
                "--prefix=true",
                "readwrite",
                prefix,
            ],
            &["user", "add", &format!("{user}:{password}")],
            &["user", "grant-role", user, "gateway"],
            &["auth", "enable"],
        ];
        for step in steps {
            self.ctl(step).expect("etcdctl auth set-up");
        }
        self.user = Some("root:root-pass".into());
    }

    fn spawn(&mut self) {
        let client = self.endpoint();
        let peer = format!("http://{}", self.peer);
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).expect("etcd log");
        let mut cmd = Command::new("etcd");
        if let Some([ca, cert, key]) = &self.tls {
            cmd.args([
                "--cert-file",
                cert,
                "--key-file",
                key,
                "--trusted-ca-file",
                ca,
            ])
            .arg("--client-cert-auth");
        }
        let child = cmd
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--name", "test"])
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd must be installed (.ci/deps installs etcd-server)");
        self.child = Some(child);
        wait_for("etcd to answer", Duration::from_secs(20), || {
            self.ctl(&["endpoint", "health"]).ok().map(|_| ())
        });
    }

    /// `http://127.0.0.1:port` (`https://` with TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.client)
    }

    /// Runs `etcdctl` against this member: its stdout, or its stderr as the error.
    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3").args([
            "--endpoints",
            &self.endpoint(),
            "--command-timeout",
            "2s",
        ]);
        if let Some([ca, cert, key]) = &self.tls {
            cmd.args(["--cacert", ca, "--cert", cert, "--key", key]);
        }
        if let Some(user) = &self.user {
            cmd.args(["--user", user]);
        }
        let out = cmd.args(args).output().expect("etcdctl must be installed");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn put(&self, key: &str, value: &str) {
        self.ctl(&["put", key, value]).expect("etcdctl put");
    }

    /// The value at `key`, if any.
    pub fn get(&self, key: &str) -> Option<String> {
        let out = self
            .ctl(&["get", key, "--print-value-only"])
            .expect("etcdctl get");
        (!out.is_empty()).then(|| out.strip_suffix('\n').unwrap_or(&out).to_owned())
    }

    /// Stops the member (its data stays for [`Etcd::restart`]).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the member again on the same ports and data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}
