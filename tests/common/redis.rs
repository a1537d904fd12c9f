//! A real `redis-server` child on a free loopback port, persistence off, killed on drop.

use super::{free_port, wait_for};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Redis {
    child: Child,
    pub addr: SocketAddr,
}

fn spawn(port: u16) -> Child {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (.ci/run installs it)")
}

impl Redis {
    pub fn start() -> Redis {
        let port = free_port();
        let redis = Redis {
            child: spawn(port),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        redis.wait_ready();
        redis
    }

    fn wait_ready(&self) {
        wait_for(
            "redis-server to answer PING",
            Duration::from_secs(10),
            || self.ping().then_some(()),
        );
    }

    /// Stops the server and starts an empty one on the same port (a restart without
    /// persistence: every key is gone).
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(self.addr.port());
        self.wait_ready();
    }

    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    pub fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0; 16];
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }

    /// Lua scripts run so far (`EVALSHA` and `EVAL` in `INFO commandstats`).
    pub fn script_calls(&self) -> u64 {
        let mut s = TcpStream::connect(self.addr).expect("connect to redis");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(b"INFO commandstats\r\n").expect("write");
        let mut reply = Vec::new();
        let mut buf = [0; 4096];
        // A bulk string: `$<len>\r\n<len bytes>\r\n`.
        loop {
            let n = s.read(&mut buf).expect("read");
            assert!(n > 0, "redis closed the connection");
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            if let Some((len, rest)) = text.strip_prefix('$').and_then(|t| t.split_once("\r\n")) {
                if len.parse::<usize>().is_ok_and(|len| rest.len() >= len) {
                    break;
                }
            }
        }
        String::from_utf8_lossy(&reply)
            .lines()
            .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
            .filter_map(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Thaws a paused server.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -s {name} redis-server");
    }

    /// Kills the server (the tests of "Redis went away").
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
