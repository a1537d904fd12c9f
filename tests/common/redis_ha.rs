//! Real highly available Redis set-ups on free loopback ports, killed on drop: a cluster of three
//! primaries with one replica each (`redis-server --cluster-enabled yes`, `redis-cli --cluster
//! create`), and a primary with a replica watched by three sentinels (Debian's `redis-sentinel`).
//! `redis-cli` is the independent client.

use super::{free_port, wait_for};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn cli(port: u16, args: &[&str]) -> Result<String, String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli must be installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && !text.starts_with("ERR") && !text.starts_with("Could not connect") {
        Ok(text)
    } else {
        Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

fn server(dir: &std::path::Path, port: u16, extra: &[&str]) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--repl-diskless-sync-delay",
            "0",
        ])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed")
}

fn wait_ping(port: u16) {
    wait_for("redis to answer", Duration::from_secs(10), || {
        cli(port, &["PING"])
            .ok()
            .filter(|t| t.contains("PONG"))
            .map(|_| ())
    });
}

/// Waits until the replica on `port` has its primary's data and follows it.
fn wait_in_sync(port: u16) {
    wait_for("the replica to be in sync", Duration::from_secs(20), || {
        cli(port, &["INFO", "replication"])
            .ok()
            .filter(|t| t.contains("master_link_status:up"))
            .map(|_| ())
    });
}

/// Kills every child on drop.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct Cluster {
    pub ports: Vec<u16>,
    _children: Children,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Three primaries and three replicas, slots assigned, every node agreeing.
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
        let mut children = Vec::new();
        for p in &ports {
            let conf = format!("nodes-{p}.conf");
            children.push(server(
                dir.path(),
                *p,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &conf,
                    "--cluster-node-timeout",
                    "2000",
                ],
            ));
        }
        let children = Children(children);
        for p in &ports {
            wait_ping(*p);
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Cluster {
            ports,
            _children: children,
            _dir: dir,
        };
        cluster.wait_settled();
        cluster
    }

    /// Every node says the cluster is ok and knows three primaries with a replica each.
    fn wait_settled(&self) {
        wait_for("the cluster to settle", Duration::from_secs(30), || {
            self.ports
                .iter()
                .all(|p| {
                    let ok =
                        cli(*p, &["CLUSTER", "INFO"]).is_ok_and(|t| t.contains("cluster_state:ok"));
                    let nodes = cli(*p, &["CLUSTER", "NODES"]).unwrap_or_default();
                    let primaries = nodes.lines().filter(|l| l.contains("master")).count();
                    let replicas = nodes.lines().filter(|l| l.contains("slave")).count();
                    ok && primaries == 3 && replicas == 3
                })
                .then_some(())
        });
    }

    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .take(3)
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// The keys matching `pattern`, on any node.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .ports
            .iter()
            .flat_map(|p| {
                cli(*p, &["--scan", "--pattern", pattern])
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// `(primary, replica)` ports of the shard that owns `key`.
    pub fn shard_of(&self, key: &str) -> (u16, u16) {
        let slot: u16 = cli(self.ports[0], &["CLUSTER", "KEYSLOT", key])
            .expect("keyslot")
            .trim()
            .parse()
            .expect("slot number");
        let nodes = cli(self.ports[0], &["CLUSTER", "NODES"]).expect("cluster nodes");
        let port_of = |addr: &str| -> u16 {
            addr.split('@')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .expect("node port")
        };
        let mut primary = None;
        for line in nodes.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if !f[2].contains("master") {
                continue;
            }
            let owns = f[8..].iter().any(|range| {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                let (a, b): (u16, u16) = (a.parse().unwrap_or(1), b.parse().unwrap_or(0));
                (a..=b).contains(&slot)
            });
            if owns {
                primary = Some((f[0].to_owned(), port_of(f[1])));
            }
        }
        let (id, primary) = primary.expect("a primary owns the slot");
        let replica = nodes
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f[2].contains("slave") && f[3] == id)
            .map(|f| port_of(f[1]))
            .expect("the primary has a replica");
        (primary, replica)
    }

    /// A coordinated failover of the shard owning `key`: its replica takes over.
    pub fn fail_over(&self, key: &str) -> u16 {
        let (_, replica) = self.shard_of(key);
        // A replica still syncing (just demoted by an earlier failover) cannot take over.
        wait_in_sync(replica);
        cli(replica, &["CLUSTER", "FAILOVER"]).expect("cluster failover");
        wait_for(
            "the replica to become primary",
            Duration::from_secs(20),
            || {
                cli(replica, &["ROLE"])
                    .ok()
                    .filter(|t| t.starts_with("master"))
                    .map(|_| ())
            },
        );
        self.wait_settled();
        replica
    }
}

pub struct Sentinel {
    pub primary: u16,
    pub replica: u16,
    pub sentinels: Vec<u16>,
    _children: Children,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    /// A primary, its replica, and three sentinels watching them as `mymaster`.
    pub fn start() -> Sentinel {
        let dir = tempfile::tempdir().expect("temp dir");
        let (primary, replica) = (free_port(), free_port());
        let mut children = vec![server(dir.path(), primary, &[])];
        wait_ping(primary);
        children.push(server(
            dir.path(),
            replica,
            &["--replicaof", "127.0.0.1", &primary.to_string()],
        ));
        wait_ping(replica);
        let sentinels: Vec<u16> = (0..3).map(|_| free_port()).collect();
        for s in &sentinels {
            let conf = dir.path().join(format!("sentinel-{s}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {s}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {primary} 2\nsentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\nsentinel parallel-syncs mymaster 1\n",
                    dir.path().display()
                ),
            )
            .expect("sentinel config");
            children.push(
                Command::new("redis-sentinel")
                    .arg(&conf)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("redis-sentinel must be installed (.ci/deps installs it)"),
            );
        }
        let set = Sentinel {
            primary,
            replica,
            sentinels,
            _children: Children(children),
            _dir: dir,
        };
        wait_in_sync(set.replica);
        // Ready once every sentinel knows the replica and the other sentinels.
        wait_for(
            "the sentinels to know the set-up",
            Duration::from_secs(30),
            || {
                set.sentinels
                    .iter()
                    .all(|s| {
                        let replicas =
                            cli(*s, &["SENTINEL", "REPLICAS", "mymaster"]).unwrap_or_default();
                        let peers =
                            cli(*s, &["SENTINEL", "SENTINELS", "mymaster"]).unwrap_or_default();
                        replicas.contains(&set.replica.to_string())
                            && peers.matches("127.0.0.1").count() >= 2
                    })
                    .then_some(())
            },
        );
        set
    }

    pub fn urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// The primary the sentinels name now.
    pub fn current_primary(&self) -> Option<u16> {
        let out = cli(
            self.sentinels[0],
            &["SENTINEL", "get-master-addr-by-name", "mymaster"],
        )
        .ok()?;
        out.lines().nth(1)?.trim().parse().ok()
    }

    /// The primary crashes (killed): the sentinels notice within a second, and promote the
    /// replica.
    pub fn kill_primary(&mut self) {
        let primary = &mut self._children.0[0];
        let _ = primary.kill();
        let _ = primary.wait();
        wait_for(
            "the sentinels to name the replica",
            Duration::from_secs(30),
            || {
                (self.current_primary() == Some(self.replica)
                    && cli(self.replica, &["ROLE"]).is_ok_and(|t| t.starts_with("master")))
                .then_some(())
            },
        );
    }
}
