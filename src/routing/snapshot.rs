//! The live, immutable configuration a request runs against.

use super::route::Route;
use super::table::RouteTable;
use crate::auth::Auth;
use crate::balance::Upstream;
use crate::config::FileConfig;
use crate::security::{Cors, SecurityHeaders};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Routes, upstreams and settings compiled from one file. Swapped whole on reload, so a request
/// never sees half of an update.
#[derive(Debug)]
pub struct Snapshot {
    pub table: RouteTable,
    /// Routes in file order.
    pub routes: Vec<Arc<Route>>,
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    pub trusted_proxies: Vec<IpNet>,
    /// Global hardening headers, for answers given before a route is known.
    pub headers: Arc<SecurityHeaders>,
    pub cors: Option<Cors>,
    /// The `auth` section, when present.
    pub auth: Option<Arc<Auth>>,
    /// Largest request body accepted, in bytes.
    pub max_body_size: Option<u64>,
    /// The file this snapshot was compiled from.
    pub file: Arc<FileConfig>,
}

impl Snapshot {
    /// True when `ip` may set `X-Forwarded-*` headers for the clients behind it.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}
