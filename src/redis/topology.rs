//! Where Redis is: one server (`url`), a cluster (`cluster`: some of its nodes), or the primary
//! a set of sentinels names (`sentinel`). Opens the shared connection, pub/sub connections and
//! per-primary scans for each.

use super::conn::Conn;
use crate::config::file::SentinelConfig;
use arc_swap::ArcSwapOption;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, RedisResult};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub enum Topology {
    Single(Client),
    Cluster {
        client: Box<ClusterClient>,
        /// The configured nodes, for pub/sub.
        seeds: Vec<Client>,
    },
    Sentinel(Arc<Sentinels>),
}

/// The sentinels and what they said last.
pub struct Sentinels {
    cfg: SentinelConfig,
    nodes: Vec<Client>,
    /// The primary the shared connection goes to.
    pub master: Mutex<Option<(String, u16)>>,
    /// A task follows the sentinels' `+switch-master` announcements.
    watching: AtomicBool,
}

/// A node to scan: `None` is "the one server".
pub type Node = Option<(String, u16)>;

fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
}

impl Topology {
    pub fn single(url: &str) -> RedisResult<Topology> {
        Ok(Topology::Single(Client::open(url)?))
    }

    pub fn cluster(nodes: &[String], timeout: Duration) -> RedisResult<Topology> {
        let seeds = nodes
            .iter()
            .map(|n| Client::open(n.as_str()))
            .collect::<RedisResult<Vec<_>>>()?;
        // Redirections during a failover are retried within the call's timeout (the client's
        // default waits over a second before a retry).
        let max_wait = u64::try_from(timeout.as_millis() / 4)
            .unwrap_or(u64::MAX)
            .max(10);
        let client = ClusterClient::builder(nodes.to_vec())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(4)
            .min_retry_wait(5)
            .max_retry_wait(max_wait)
            .retry_wait_formula(10, 2)
            .build()?;
        Ok(Topology::Cluster {
            client: Box::new(client),
            seeds,
        })
    }

    pub fn sentinel(cfg: &SentinelConfig) -> RedisResult<Topology> {
        let nodes = cfg
            .nodes
            .iter()
            .map(|n| Client::open(n.as_str()))
            .collect::<RedisResult<Vec<_>>>()?;
        Ok(Topology::Sentinel(Arc::new(Sentinels {
            cfg: cfg.clone(),
            nodes,
            master: Mutex::new(None),
            watching: AtomicBool::new(false),
        })))
    }

    /// A new shared connection.
    pub async fn open(&self, timeout: Duration) -> RedisResult<Conn> {
        match self {
            Topology::Single(client) => {
                ConnectionManager::new_with_config(client.clone(), manager_config(timeout))
                    .await
                    .map(Conn::Single)
            }
            Topology::Cluster { client, .. } => {
                client.get_async_connection().await.map(Conn::Cluster)
            }
            Topology::Sentinel(s) => {
                let addr = s.ask(timeout).await?;
                let client = s.client_for(&addr)?;
                let conn =
                    ConnectionManager::new_with_config(client, manager_config(timeout)).await?;
                *s.lock() = Some(addr);
                Ok(Conn::Single(conn))
            }
        }
    }

    /// A connection of its own for pub/sub: to the server, the primary, or the first cluster node
    /// that answers (a cluster delivers every `PUBLISH` to every node).
    pub async fn pubsub(&self, timeout: Duration) -> RedisResult<redis::aio::PubSub> {
        match self {
            Topology::Single(client) => client.get_async_pubsub().await,
            Topology::Cluster { seeds, .. } => {
                let mut last = None;
                for client in seeds {
                    match tokio::time::timeout(timeout, client.get_async_pubsub()).await {
                        Ok(Ok(p)) => return Ok(p),
                        Ok(Err(e)) => last = Some(e),
                        Err(_) => {}
                    }
                }
                Err(last.unwrap_or_else(|| no_answer("no cluster node took the subscription")))
            }
            Topology::Sentinel(s) => {
                let addr = s.ask(timeout).await?;
                s.client_for(&addr)?.get_async_pubsub().await
            }
        }
    }

    /// The nodes a key scan must visit: every primary of a cluster, else the one server.
    pub async fn scan_nodes(&self, conn: &mut Conn) -> RedisResult<Vec<Node>> {
        let Conn::Cluster(cluster) = conn else {
            return Ok(vec![None]);
        };
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
        let nodes = cluster
            .route_command(redis::cmd("CLUSTER").arg("NODES").clone(), routing)
            .await?;
        let text: String = redis::from_redis_value(nodes)?;
        Ok(primaries(&text).into_iter().map(Some).collect())
    }

    /// One `SCAN` page on `node`: the next cursor and the keys.
    pub async fn scan_page(
        conn: &mut Conn,
        node: &Node,
        cursor: u64,
        pattern: &str,
        count: usize,
    ) -> RedisResult<(u64, Vec<String>)> {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count);
        match (conn, node) {
            (Conn::Cluster(cluster), Some((host, port))) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                });
                let value = cluster.route_command(scan, routing).await?;
                Ok(redis::from_redis_value(value)?)
            }
            (conn, _) => scan.query_async(conn).await,
        }
    }

    /// With sentinels, starts (once) the task that drops `conn` when they announce a new
    /// primary, so the next call opens a connection to it. It ends with the handle.
    pub fn follow_failovers(&self, conn: &Arc<ArcSwapOption<Conn>>) {
        let Topology::Sentinel(s) = self else {
            return;
        };
        if s.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(Arc::clone(s).follow(Arc::downgrade(conn)));
    }

    /// After a failure: whether the sentinels now name another primary (the shared connection
    /// must then be opened again). Always false for the other topologies.
    pub async fn primary_moved(&self, timeout: Duration) -> bool {
        let Topology::Sentinel(s) = self else {
            return false;
        };
        match s.ask(timeout).await {
            Ok(addr) => s.lock().as_ref() != Some(&addr),
            Err(_) => false,
        }
    }
}

fn no_answer(what: &'static str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, what))
}

/// `host:port` of every primary in `CLUSTER NODES` output.
fn primaries(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let addr = fields.nth(1)?;
            let flags = fields.next()?;
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                return None;
            }
            let addr = addr.split('@').next()?;
            let (host, port) = addr.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

impl Sentinels {
    /// Listens to the sentinels (one at a time, the next when one fails) for `+switch-master`
    /// of our primary, until `conn`'s handle is gone.
    async fn follow(self: Arc<Self>, conn: Weak<ArcSwapOption<Conn>>) {
        let mut turn = 0usize;
        while conn.strong_count() > 0 {
            let node = &self.nodes[turn % self.nodes.len().max(1)];
            turn += 1;
            let Ok(mut pubsub) = node.get_async_pubsub().await else {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            };
            if pubsub.subscribe("+switch-master").await.is_err() {
                continue;
            }
            let mut messages = pubsub.on_message();
            loop {
                let next = tokio::time::timeout(Duration::from_secs(1), messages.next()).await;
                let Some(conn) = conn.upgrade() else { return };
                match next {
                    Err(_) => continue,
                    Ok(None) => break,
                    Ok(Some(msg)) => {
                        let text: String = msg.get_payload().unwrap_or_default();
                        // `<name> <old ip> <old port> <new ip> <new port>`
                        let f: Vec<&str> = text.split_whitespace().collect();
                        if f.len() == 5 && f[0] == self.cfg.master {
                            let new = (f[3].to_owned(), f[4].parse().unwrap_or(0));
                            if self.lock().as_ref() != Some(&new) {
                                log::warn!(
                                    "redis: the sentinels name a new primary for {}: {}:{}; reconnecting",
                                    self.cfg.master,
                                    new.0,
                                    new.1
                                );
                                conn.store(None);
                            }
                        }
                    }
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(String, u16)>> {
        self.master.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The primary's address, from the first sentinel that knows it.
    async fn ask(&self, timeout: Duration) -> RedisResult<(String, u16)> {
        let mut last = None;
        for node in &self.nodes {
            let asked = async {
                let mut conn = node.get_multiplexed_async_connection().await?;
                let answer: Option<(String, u16)> = redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&self.cfg.master)
                    .query_async(&mut conn)
                    .await?;
                answer.ok_or_else(|| no_answer("the sentinel does not know this master"))
            };
            match tokio::time::timeout(timeout, asked).await {
                Ok(Ok(addr)) => return Ok(addr),
                Ok(Err(e)) => last = Some(e),
                Err(_) => last = Some(no_answer("a sentinel did not answer in time")),
            }
        }
        Err(last.unwrap_or_else(|| no_answer("no sentinel")))
    }

    fn client_for(&self, (host, port): &(String, u16)) -> RedisResult<Client> {
        let mut redis = RedisConnectionInfo::default().set_db(self.cfg.db);
        if let Some(user) = &self.cfg.username {
            redis = redis.set_username(user);
        }
        if let Some(password) = &self.cfg.password {
            redis = redis.set_password(password);
        }
        let info = ConnectionAddr::Tcp(host.clone(), *port)
            .into_connection_info()?
            .set_redis_settings(redis);
        Client::open(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_are_read_from_cluster_nodes() {
        let text = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@40003 master - 0 1426238318243 3 connected 10923-16383
6ec2 127.0.0.1:30005@40005 master,fail - 0 1426238316232 5 connected
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
";
        assert_eq!(
            primaries(text),
            [
                ("127.0.0.1".to_owned(), 30002),
                ("127.0.0.1".to_owned(), 30003),
                ("127.0.0.1".to_owned(), 30001)
            ]
        );
    }
}
