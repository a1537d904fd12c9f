//! Serde types that mirror the YAML file one to one. Every struct rejects unknown keys.
//! Runtime types are built from these by `snapshot::compile` and the sections it calls (each
//! feature checks and builds its own); nothing here is used per request.

use super::units::{ByteSize, HumanDuration, PositiveDuration, PositiveSize, Rate};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::num::NonZeroU32;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub listen: ListenConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingConfig>,
    /// Where the rest of the config comes from, when not from this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdConfig>,
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    pub cache: Option<CacheConfig>,
    #[serde(default)]
    pub security: SecurityConfig,
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    #[serde(default)]
    pub groups: BTreeMap<String, GroupConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Middlewares for every route (groups and routes add theirs after these).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginConfig>,
}

/// One entry of a `plugins` list: a registered middleware and its settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    pub name: String,
    /// The middleware's own settings (checked by the middleware).
    #[serde(default, skip_serializing_if = "serde_yaml::Value::is_null")]
    pub settings: serde_yaml::Value,
    /// `false` takes out the entries of this name a wider level (top, group) gave the route.
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl PluginConfig {
    /// In place of an entry that did not parse (its problems are reported): no name, off.
    pub fn unparsed() -> PluginConfig {
        PluginConfig {
            name: String::new(),
            settings: serde_yaml::Value::Null,
            enabled: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Worker threads of the proxy service.
    pub threads: usize,
    pub pid_file: String,
    pub upgrade_sock: String,
    /// How long an old process keeps serving after an upgrade or SIGTERM.
    pub grace_period: HumanDuration,
    pub graceful_shutdown_timeout: HumanDuration,
    /// Idle upstream connections kept for reuse, across all threads and backends.
    pub upstream_keepalive_pool_size: usize,
    /// Tasks accepting on each listening socket.
    pub listener_tasks_per_fd: usize,
    /// Tasks move between worker threads (one shared runtime) rather than each thread running
    /// its own. Off by default: one runtime per thread proxied 12-22% more per core here.
    pub work_stealing: bool,
    /// How header names reach the backend and the client.
    pub header_case: HeaderCase,
}

/// `server.header_case`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderCase {
    /// In lower case, as HTTP/2 sends them. Names are case-insensitive (RFC 9110, 5.1); the
    /// proxy then keeps one map of headers per message instead of two.
    #[default]
    Lower,
    /// As the client and the backend spelled them, for peers that compare names by case.
    Preserve,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pid_file: "/tmp/gateway.pid".into(),
            upgrade_sock: "/tmp/gateway_upgrade.sock".into(),
            grace_period: HumanDuration(std::time::Duration::from_secs(5)),
            graceful_shutdown_timeout: HumanDuration(std::time::Duration::from_secs(10)),
            upstream_keepalive_pool_size: 1024,
            listener_tasks_per_fd: 1,
            work_stealing: false,
            header_case: HeaderCase::Lower,
        }
    }
}

/// `tracing`: OpenTelemetry spans exported over OTLP/HTTP (JSON).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// The collector's traces URL, e.g. `http://127.0.0.1:4318/v1/traces`.
    pub otlp_endpoint: String,
    /// Share of new traces (requests without a caller's context) that are recorded. Default 0.01.
    #[serde(default)]
    pub sample_ratio: Option<f64>,
    /// `service.name` of the spans. Default `api-gateway`.
    #[serde(default)]
    pub service_name: Option<String>,
    /// Accept `traceparent` from any client; by default only from `security.trusted_proxies`.
    #[serde(default)]
    pub trust_client_context: bool,
    /// Spans waiting for export at most; more are dropped and counted. Default 4096.
    #[serde(default)]
    pub queue_size: Option<usize>,
    /// Spans per export request at most. Default 512.
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// How often waiting spans are sent. Default 1s.
    #[serde(default)]
    pub batch_interval: Option<HumanDuration>,
    /// Each export request at most. Default 2s.
    #[serde(default)]
    pub export_timeout: Option<HumanDuration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    pub proxy: String,
    pub metrics: String,
    pub admin: String,
    /// HTTPS (and HTTP/2 over TLS) for the proxy, on its own address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_tls: Option<TlsListenConfig>,
    /// Plaintext HTTP/2 (prior knowledge, for internal clients) on `proxy` too.
    pub h2c: bool,
}

/// `listen.proxy_tls`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListenConfig {
    pub addr: String,
    /// Chosen by the name the client asks for (SNI); the first one for other names.
    pub certificates: Vec<CertificateConfig>,
    /// Offer HTTP/2 by ALPN (`h2`, then `http/1.1`). Default true.
    #[serde(default = "yes")]
    pub http2: bool,
}

fn yes() -> bool {
    true
}

/// One certificate chain (PEM, leaf first) and its private key (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    pub cert: String,
    pub key: String,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            proxy: "0.0.0.0:8080".into(),
            metrics: "0.0.0.0:9090".into(),
            admin: "127.0.0.1:9080".into(),
            proxy_tls: None,
            h2c: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub level: LogLevel,
    pub format: LogFormat,
    pub access_log: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: LogLevel::Info,
            format: LogFormat::Json,
            access_log: true,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub dashboard_dir: Option<String>,
    pub prometheus_url: Option<String>,
}

/// `etcd`: the routes, upstreams and the other shared sections come from one YAML document in
/// etcd (the key `<prefix>config`), watched and applied as a SIGHUP would apply the file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// `http://host:2379` or `https://host:2379`, one per member.
    pub endpoints: Vec<String>,
    /// Keys start with this; the config document is `<prefix>config`.
    #[serde(default = "default_etcd_prefix")]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Certificates for `https://` endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<EtcdTlsConfig>,
    /// Connecting and each call (default 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<PositiveDuration>,
    /// The last document this instance applied, for starting while etcd is unreachable
    /// (default: beside the config file, its name with `.etcd-cache` added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_file: Option<String>,
}

fn default_etcd_prefix() -> String {
    "/gateway/".into()
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdTlsConfig {
    /// CA certificates (PEM) the servers' certificates are checked against.
    pub ca_file: Option<String>,
    /// Client certificate and key (PEM), when etcd asks for one.
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// One Redis (a primary).
    pub url: Option<String>,
    /// Redis Cluster: some of its nodes (`redis://host:port`, credentials as in `url`); the
    /// others are found from them.
    pub cluster: Vec<String>,
    /// Redis Sentinel: the primary of `master` as the sentinels name it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<SentinelConfig>,
    pub timeout: Option<PositiveDuration>,
}

/// `redis.sentinel`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SentinelConfig {
    /// The name the sentinels monitor the primary under.
    pub master: String,
    /// The sentinels (`redis://host:26379`).
    pub nodes: Vec<String>,
    /// The primary's credentials and database (the sentinels' own, if any, go in `nodes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    pub db: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Memory,
    Redis,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
    #[serde(default)]
    pub users: Vec<UserConfig>,
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    #[serde(default)]
    pub revocation_store: StoreKind,
    #[serde(default)]
    pub login_limit: Option<LoginLimitConfig>,
}

/// `auth.login_limit`: failed logins and refreshes allowed, as rates (`5/m`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoginLimitConfig {
    /// Failed logins per (username, client IP); a success clears them. Default `5/m`.
    #[serde(default)]
    pub per_user: Option<Rate>,
    /// Failed logins per client IP, whatever the username. Default `30/m`.
    #[serde(default)]
    pub per_ip: Option<Rate>,
    /// Refreshes per client IP. Default `60/m`.
    #[serde(default)]
    pub refresh_per_ip: Option<Rate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    ES256,
    ES384,
    EdDSA,
}

impl JwtAlgorithm {
    /// True for the HMAC family, which takes a shared `secret`.
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    pub algorithm: JwtAlgorithm,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default)]
    pub private_key_file: Option<String>,
    #[serde(default)]
    pub public_key_file: Option<String>,
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub access_ttl: Option<PositiveDuration>,
    #[serde(default)]
    pub refresh_ttl: Option<PositiveDuration>,
    /// Absolute lifetime of a login: refreshing never extends it (default 30d).
    #[serde(default)]
    pub session_ttl: Option<PositiveDuration>,
    #[serde(default)]
    pub leeway: Option<HumanDuration>,
    /// Verified tokens remembered so a repeated one skips the signature check (0 = none).
    #[serde(default)]
    pub verified_cache: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub username: String,
    pub password_hash: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    pub name: String,
    pub key_hash: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitAlgorithm {
    TokenBucket,
    SlidingWindow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStoreError {
    Allow,
    Deny,
}

/// Used globally, per group and per route; a lower level overrides field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub store: Option<StoreKind>,
    #[serde(default)]
    pub algorithm: Option<RateLimitAlgorithm>,
    #[serde(default)]
    pub rate: Option<Rate>,
    #[serde(default)]
    pub burst: Option<u64>,
    #[serde(default)]
    pub key: Option<Vec<String>>,
    #[serde(default)]
    pub on_store_error: Option<OnStoreError>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(default)]
    pub store: StoreKind,
    #[serde(default)]
    pub memory_size: Option<ByteSize>,
    #[serde(default)]
    pub key_prefix: Option<String>,
    #[serde(default)]
    pub default_ttl: Option<PositiveDuration>,
    #[serde(default)]
    pub max_object_size: Option<PositiveSize>,
    #[serde(default)]
    pub lock_timeout: Option<PositiveDuration>,
    #[serde(default)]
    pub stale_while_revalidate: Option<HumanDuration>,
    #[serde(default)]
    pub stale_if_error: Option<HumanDuration>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    #[serde(default)]
    pub headers: Option<SecurityHeadersConfig>,
    #[serde(default)]
    pub cors: Option<CorsConfig>,
    #[serde(default)]
    pub max_body_size: Option<PositiveSize>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub ip_allow: Vec<String>,
    #[serde(default)]
    pub ip_deny: Vec<String>,
    /// The whole request head must arrive within this, from its first byte (default 10s; 0s: off).
    #[serde(default)]
    pub request_head_timeout: Option<HumanDuration>,
    /// Connections one client address may hold open at once, on all listeners together
    /// (default 1024).
    #[serde(default)]
    pub max_connections_per_ip: Option<NonZeroU32>,
    /// Connections the process holds open at once (default and ceiling: what the
    /// file-descriptor limit leaves room for).
    #[serde(default)]
    pub max_connections: Option<NonZeroU32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityHeadersConfig {
    #[serde(default)]
    pub strict_transport_security: Option<String>,
    #[serde(default)]
    pub content_security_policy: Option<String>,
    #[serde(default)]
    pub x_frame_options: Option<String>,
    #[serde(default)]
    pub x_content_type_options: Option<String>,
    #[serde(default)]
    pub referrer_policy: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    #[serde(default)]
    pub allow_origins: Vec<String>,
    #[serde(default)]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    #[serde(default)]
    pub max_age: Option<HumanDuration>,
}

/// `upstreams.<name>.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    H2,
    H2c,
}

/// `upstreams.<name>.strategy`: one of the five built-in names, or a strategy a program
/// registered (checked against the registry when the config compiles).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(from = "String", into = "String")]
pub enum Strategy {
    #[default]
    RoundRobin,
    WeightedRound,
    LeastConn,
    IpHash,
    Random,
    Custom(String),
}

impl Strategy {
    pub const BUILT_IN: [&'static str; 5] = [
        "round_robin",
        "weighted_round",
        "least_conn",
        "ip_hash",
        "random",
    ];

    pub fn name(&self) -> &str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::WeightedRound => "weighted_round",
            Strategy::LeastConn => "least_conn",
            Strategy::IpHash => "ip_hash",
            Strategy::Random => "random",
            Strategy::Custom(name) => name,
        }
    }
}

impl From<String> for Strategy {
    fn from(name: String) -> Strategy {
        match name.as_str() {
            "round_robin" => Strategy::RoundRobin,
            "weighted_round" => Strategy::WeightedRound,
            "least_conn" => Strategy::LeastConn,
            "ip_hash" => Strategy::IpHash,
            "random" => Strategy::Random,
            _ => Strategy::Custom(name),
        }
    }
}

impl From<Strategy> for String {
    fn from(s: Strategy) -> String {
        s.name().to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    pub addr: String,
    #[serde(default = "one")]
    pub weight: usize,
    /// A label for people (the dashboard, the admin API); metrics name backends by address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckKind {
    Http,
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    pub kind: HealthCheckKind,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub interval: Option<PositiveDuration>,
    #[serde(default)]
    pub timeout: Option<PositiveDuration>,
    #[serde(default)]
    pub healthy_threshold: Option<usize>,
    #[serde(default)]
    pub unhealthy_threshold: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    #[serde(default)]
    pub strategy: Strategy,
    /// Fixed members (or none, with `discovery`).
    #[serde(default)]
    pub backends: Vec<BackendConfig>,
    /// Members found at run time, in DNS or etcd, instead of `backends`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoveryConfig>,
    #[serde(default)]
    pub health_check: Option<HealthCheckConfig>,
    #[serde(default)]
    pub connect_timeout: Option<PositiveDuration>,
    #[serde(default)]
    pub read_timeout: Option<PositiveDuration>,
    #[serde(default)]
    pub retries: Option<usize>,
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub sni: Option<String>,
    /// PEM file of the CA certificates trusted for the backends' TLS certificates, instead of
    /// the system's store (a private CA).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// How requests are sent to the backends: `http1` (default), `h2` (HTTP/2 over TLS) or
    /// `h2c` (HTTP/2 in plaintext, prior knowledge).
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// Passive health: eject a backend after consecutive failed requests.
    #[serde(default)]
    pub outlier: Option<OutlierConfig>,
    /// A cap on concurrent requests, and a breaker that opens on a failure burst.
    #[serde(default)]
    pub circuit_breaker: Option<BreakerConfig>,
    /// How many retries the upstream takes, as a share of its requests.
    #[serde(default)]
    pub retry_budget: Option<RetryBudgetConfig>,
}

/// `upstreams.<name>.discovery`: one of `dns` or `etcd`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsDiscoveryConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdDiscoveryConfig>,
}

/// Members from DNS: the A/AAAA records of `name` (`host:port`), or the SRV records of `srv`
/// (`_http._tcp.host`, ports and weights from the records).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsDiscoveryConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srv: Option<String>,
    /// `ip:port` of the servers to ask; default: the system's (`/etc/resolv.conf`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The shortest wait between lookups, whatever the TTL (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_interval: Option<PositiveDuration>,
    /// The longest, whatever the TTL (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_interval: Option<PositiveDuration>,
}

/// Members registered in etcd under `prefix` (on the `etcd` section's connection), one key each,
/// usually with a lease.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdDiscoveryConfig {
    pub prefix: String,
}

/// `upstreams.<name>.retry_budget`: retries in the last 10 s stay below `min_per_second` × 10
/// plus `percent` of the requests in those 10 s that could be retried.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudgetConfig {
    /// Default 20.
    #[serde(default)]
    pub percent: Option<u8>,
    /// Default 5.
    #[serde(default)]
    pub min_per_second: Option<u32>,
}

/// One entry of `retry.on`: a status (`503`) or a word (`connect`, `timeout`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RetryOn {
    Status(u16),
    Word(String),
}

/// One entry of a route's `upstreams`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedUpstream {
    pub name: String,
    /// Share of the route's clients, relative to the other entries; 0 takes only overrides.
    pub weight: u32,
}

/// A route's `split`: which key keeps a client on one side, and who may choose a side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// `client_ip` (default), `user`, `header:<name>`, `cookie:<name>` or `none` (per request).
    #[serde(default)]
    pub sticky: Option<String>,
    /// A request header whose value (`always`, `never` or an upstream's name) picks the side.
    #[serde(default)]
    pub override_header: Option<String>,
    /// The same, from a cookie.
    #[serde(default)]
    pub override_cookie: Option<String>,
}

/// A route's `retry`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Tries in all, the first included. Default 2.
    #[serde(default)]
    pub attempts: Option<usize>,
    /// What is retried: `connect`, `timeout`, and 5xx statuses. Default `[connect, 502, 503, 504]`.
    #[serde(default)]
    pub on: Option<Vec<RetryOn>>,
    /// The read timeout of each try (the route's `timeout` otherwise).
    #[serde(default)]
    pub per_try_timeout: Option<HumanDuration>,
    /// The wait before the first retry, doubled for each next one, ±50% jitter. Default 25ms.
    #[serde(default)]
    pub backoff: Option<HumanDuration>,
}

/// `upstreams.<name>.circuit_breaker`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Requests in flight to the upstream at most; past it, 503 at once. Default: no cap.
    #[serde(default)]
    pub max_requests: Option<usize>,
    /// Connects under way to the upstream's backends at most (a backend that stopped accepting
    /// makes them pile up until `connect_timeout`); past it, 503 at once. Default: no cap.
    #[serde(default)]
    pub max_pending_connects: Option<usize>,
    /// The breaker opens when this share (percent) of the requests in `window` failed. Default 50.
    #[serde(default)]
    pub failure_percent: Option<u8>,
    /// Default 10s.
    #[serde(default)]
    pub window: Option<PositiveDuration>,
    /// Fewer requests in the window never open it. Default 20.
    #[serde(default)]
    pub min_requests: Option<u32>,
    /// How long it stays open before trial requests. Default 5s.
    #[serde(default)]
    pub open_for: Option<PositiveDuration>,
    /// Trial requests in the half-open state; all must succeed to close. Default 3.
    #[serde(default)]
    pub half_open_requests: Option<u32>,
}

/// `upstreams.<name>.outlier`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierConfig {
    /// Failed requests in a row (5xx, refused or broken connections, timeouts). Default 5.
    #[serde(default)]
    pub consecutive_errors: Option<u32>,
    /// The first ejection's length; the n-th lasts n times as long. Default 30s.
    #[serde(default)]
    pub base_ejection: Option<PositiveDuration>,
    /// The longest ejection. Default 300s.
    #[serde(default)]
    pub max_ejection: Option<PositiveDuration>,
    /// The share of the upstream's backends that may be out at once. Default 50.
    #[serde(default)]
    pub max_ejection_percent: Option<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthPolicyConfig {
    #[serde(default)]
    pub required: Option<bool>,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub auth: Option<AuthPolicyConfig>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// CIDRs allowed for the group's routes (replaces the global list when set).
    #[serde(default)]
    pub ip_allow: Vec<String>,
    /// CIDRs denied for the group's routes (added to the global list).
    #[serde(default)]
    pub ip_deny: Vec<String>,
    /// Requests over plain HTTP get a 308 to the same URL on `listen.proxy_tls`.
    #[serde(default)]
    pub https_redirect: bool,
    /// Middlewares for the group's routes, after the top-level ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginConfig>,
}

/// A route's `security_headers`: `false` sends none, a mapping overrides single headers (an empty
/// string removes that one).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RouteSecurityHeaders {
    Enabled(bool),
    Override(SecurityHeadersConfig),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCacheConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub ttl: Option<PositiveDuration>,
    /// Also cache answers to requests with credentials, one entry per caller.
    #[serde(default)]
    pub authenticated: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    #[serde(default)]
    pub group: Option<String>,
    pub path: String,
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// The one upstream, or (with `upstreams`) none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Several upstreams sharing the traffic by weight (canary releases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstreams: Option<Vec<WeightedUpstream>>,
    /// How `upstreams` assigns clients; defaults apply without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Box<SplitConfig>>,
    #[serde(default)]
    pub strip_prefix: bool,
    /// Match the path without regard to ASCII case (for backends that ignore case).
    #[serde(default)]
    pub case_insensitive: bool,
    /// Accept `;` in paths (matrix parameters); otherwise such requests get 400.
    #[serde(default)]
    pub allow_semicolon: bool,
    #[serde(default)]
    pub auth: Option<AuthPolicyConfig>,
    #[serde(default)]
    pub rate_limit: Option<Box<RateLimitConfig>>,
    #[serde(default)]
    pub cache: Option<RouteCacheConfig>,
    #[serde(default)]
    pub timeout: Option<PositiveDuration>,
    #[serde(default)]
    pub retry: Option<Box<RetryConfig>>,
    /// Overrides the group's `https_redirect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<bool>,
    /// WebSocket handshakes allowed (`true`, or the tunnel's settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<WebSocketConfig>,
    #[serde(default)]
    pub ip_allow: Vec<String>,
    #[serde(default)]
    pub ip_deny: Vec<String>,
    #[serde(default)]
    pub security_headers: Option<Box<RouteSecurityHeaders>>,
    /// Middlewares for this route, after the top-level and group ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginConfig>,
}

/// A route's `websocket`: `true` / `false`, or the tunnel's settings (which enable it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum WebSocketConfig {
    Enabled(bool),
    Options(WebSocketOptions),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketOptions {
    /// A tunnel with no byte either way for this long is closed. Default 60s.
    #[serde(default)]
    pub idle_timeout: Option<HumanDuration>,
}
