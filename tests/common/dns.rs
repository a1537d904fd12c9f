//! A real DNS server (`dnsmasq`) on a free loopback port answering only the records it is given,
//! with a TTL of 1 s; killed on drop.

use super::{free_port, wait_for};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Dns {
    child: Option<Child>,
    pub addr: SocketAddr,
}

impl Dns {
    /// `records` are dnsmasq options: `--host-record=name,ip`, `--srv-host=_http._tcp.name,target,port,priority,weight`.
    pub fn start(records: &[String]) -> Dns {
        let mut dns = Dns {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
        };
        dns.spawn(records);
        dns
    }

    fn spawn(&mut self, records: &[String]) {
        let child = Command::new("dnsmasq")
            .args([
                "--no-daemon",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
            ])
            .args([
                "--conf-file=/dev/null",
                "--pid-file=",
                "--local-ttl=1",
                "--user=root",
            ])
            .arg("--listen-address=127.0.0.1")
            .arg(format!("--port={}", self.addr.port()))
            .args(records)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq must be installed (.ci/deps installs dnsmasq-base)");
        self.child = Some(child);
        let addr = self.addr;
        wait_for("dnsmasq to listen", Duration::from_secs(10), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                .ok()
                .map(|_| ())
        });
    }

    /// Stops answering (lookups time out or are refused).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Answers `records` from now on (a restart on the same port).
    pub fn serve(&mut self, records: &[String]) {
        self.stop();
        self.spawn(records);
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop();
    }
}
