//! A real Prometheus (apt `prometheus`) as a child process on a free loopback port.

use super::{free_port, get, wait_for};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Prometheus {
    child: Child,
    _dir: tempfile::TempDir,
    pub url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Prometheus scraping `target` every second.
pub fn prometheus(target: std::net::SocketAddr) -> Prometheus {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("prometheus.yml");
    std::fs::write(
        &conf,
        format!("global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: gateway\n    static_configs: [{{targets: [\"{target}\"]}}]\n"),
    )
    .expect("write prometheus.yml");
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", conf.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("run prometheus (apt-get install prometheus)");
    let url = format!("http://127.0.0.1:{port}");
    wait_for("prometheus to be ready", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        (get(&format!("{url}/-/ready")).status == 200).then_some(())
    });
    Prometheus {
        child,
        _dir: dir,
        url,
    }
}
