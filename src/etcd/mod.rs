//! The `etcd` section: the shared part of the config (routes, upstreams, auth, limits, cache,
//! security, middlewares) as one YAML document under the key `<prefix>config`, read at start,
//! watched while running ([`watch::EtcdWatcher`]) and written by `gateway config push`
//! (compare-and-swap on the key's revision). The local file keeps what the process needs to
//! start. Each applied document is also kept in a local copy ([`cache`]), so an instance can start
//! while etcd is unreachable.

pub mod cache;
pub mod command;
mod status;
pub mod watch;

pub use status::{describe_file, status, Status};

use crate::config::file::EtcdConfig;
use crate::config::ConfigErrors;
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, Txn, TxnOp};
use std::path::Path;
use std::time::Duration;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The config document as etcd holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub text: String,
    /// The key's `mod_revision`: the revision that wrote this text.
    pub revision: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd at {endpoints}: {source}")]
    Call {
        endpoints: String,
        source: etcd_client::Error,
    },
    #[error("etcd at {endpoints}: no answer within {timeout:?}")]
    Timeout {
        endpoints: String,
        timeout: Duration,
    },
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("the value of {0} is not UTF-8 text")]
    NotText(String),
}

/// The key of the config document.
pub fn document_key(cfg: &EtcdConfig) -> String {
    format!("{}config", cfg.prefix)
}

/// The timeout of connecting and of each call.
pub fn timeout(cfg: &EtcdConfig) -> Duration {
    cfg.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0)
}

/// Checks the section (for `-t` and every load).
pub fn check(cfg: &EtcdConfig, errors: &mut ConfigErrors) {
    if cfg.endpoints.is_empty() {
        errors.push(
            "etcd.endpoints",
            "set at least one endpoint (http://host:2379)",
        );
    }
    for (i, e) in cfg.endpoints.iter().enumerate() {
        if !e.starts_with("http://") && !e.starts_with("https://") {
            errors.push(
                format!("etcd.endpoints[{i}]"),
                format!("{e:?}: expected http://host:port or https://host:port"),
            );
        }
    }
    if cfg.prefix.is_empty() {
        errors.push("etcd.prefix", "must not be empty (for example /gateway/)");
    }
    if cfg.username.is_some() != cfg.password.is_some() {
        errors.push("etcd", "set both username and password, or neither");
    }
    if let Some(tls) = &cfg.tls {
        for (name, file) in [
            ("ca_file", &tls.ca_file),
            ("cert_file", &tls.cert_file),
            ("key_file", &tls.key_file),
        ] {
            if let Some(f) = file {
                if let Err(e) = std::fs::metadata(f) {
                    errors.push(format!("etcd.tls.{name}"), format!("cannot read {f}: {e}"));
                }
            }
        }
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            errors.push("etcd.tls", "set both cert_file and key_file, or neither");
        }
    }
}

/// The endpoints as logs and the admin API show them: without any credentials in the URLs.
pub fn shown_endpoints(cfg: &EtcdConfig) -> Vec<String> {
    cfg.endpoints
        .iter()
        .map(|e| crate::config::without_url_credentials(e))
        .collect()
}

/// Turns a client error into one naming the endpoints.
pub fn call_error(cfg: &EtcdConfig) -> impl Fn(etcd_client::Error) -> EtcdError {
    let endpoints = shown_endpoints(cfg).join(",");
    move |source| EtcdError::Call {
        endpoints: endpoints.clone(),
        source,
    }
}

/// `fut`, or [`EtcdError::Timeout`] after the section's timeout.
pub async fn bounded<T>(
    cfg: &EtcdConfig,
    fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, EtcdError> {
    let limit = timeout(cfg);
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result.map_err(call_error(cfg)),
        Err(_) => Err(EtcdError::Timeout {
            endpoints: shown_endpoints(cfg).join(","),
            timeout: limit,
        }),
    }
}

fn read(path: &str) -> Result<Vec<u8>, EtcdError> {
    std::fs::read(path).map_err(|source| EtcdError::File {
        path: path.to_owned(),
        source,
    })
}

/// Connects with the section's credentials and certificates. A watch started on a member cut
/// off from its cluster's leader is cancelled (`require_leader`), so it moves to another member.
pub async fn connect(cfg: &EtcdConfig) -> Result<Client, EtcdError> {
    let limit = timeout(cfg);
    let mut options = ConnectOptions::new()
        .with_connect_timeout(limit)
        .with_keep_alive(Duration::from_secs(10), limit)
        .with_require_leader(true);
    if let (Some(user), Some(password)) = (&cfg.username, &cfg.password) {
        options = options.with_user(user, password);
    }
    if let Some(tls) = &cfg.tls {
        let mut otls = etcd_client::OpenSslClientConfig::default();
        if let Some(ca) = &tls.ca_file {
            otls = otls.ca_cert_pem(&read(ca)?);
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            otls = otls.client_cert_pem_and_key(&read(cert)?, &read(key)?);
        }
        options = options.with_openssl_tls(otls);
    }
    bounded(cfg, Client::connect(&cfg.endpoints, Some(options))).await
}

/// The document at `key` (`None` when the key does not exist) and the store's revision at the
/// time of the read (a watch from the next one misses nothing).
pub async fn fetch(
    cfg: &EtcdConfig,
    client: &mut Client,
) -> Result<(Option<Document>, i64), EtcdError> {
    let key = document_key(cfg);
    let answer = bounded(cfg, client.get(key.as_str(), None)).await?;
    let revision = answer.header().map_or(0, |h| h.revision());
    let Some(kv) = answer.kvs().first() else {
        return Ok((None, revision));
    };
    let text = kv
        .value_str()
        .map_err(|_| EtcdError::NotText(key.clone()))?;
    let document = Document {
        text: text.to_owned(),
        revision: kv.mod_revision(),
    };
    Ok((Some(document), revision))
}

/// Connects and reads the document once (start-up, `-t`).
pub async fn fetch_once(cfg: &EtcdConfig) -> Result<Option<Document>, EtcdError> {
    let mut client = connect(cfg).await?;
    fetch(cfg, &mut client).await.map(|(doc, _)| doc)
}

/// What `config push` expects to replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The key does not exist yet.
    Absent,
    /// The key was last written at this revision.
    Revision(i64),
    /// Whatever is there (`--force`).
    Anything,
}

/// The outcome of a push.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Written at this revision.
    Written(i64),
    /// Not written: the key is at another revision (0: absent) than expected.
    Conflict(i64),
}

/// Writes `text` as the document if the key is as `expect` says, in one transaction.
pub async fn push(cfg: &EtcdConfig, text: &str, expect: Expect) -> Result<Pushed, EtcdError> {
    let mut client = connect(cfg).await?;
    let key = document_key(cfg);
    let put = TxnOp::put(key.as_str(), text, None);
    let read = TxnOp::get(key.as_str(), None);
    // A key that does not exist compares as revision 0.
    let txn = match expect {
        Expect::Absent => {
            Txn::new().when([Compare::mod_revision(key.as_str(), CompareOp::Equal, 0)])
        }
        Expect::Revision(r) => {
            Txn::new().when([Compare::mod_revision(key.as_str(), CompareOp::Equal, r)])
        }
        Expect::Anything => Txn::new(),
    };
    let answer = bounded(cfg, client.txn(txn.and_then([put]).or_else([read]))).await?;
    if answer.succeeded() {
        return Ok(Pushed::Written(answer.header().map_or(0, |h| h.revision())));
    }
    let current = answer
        .op_responses()
        .into_iter()
        .find_map(|op| match op {
            etcd_client::TxnOpResponse::Get(get) => {
                Some(get.kvs().first().map_or(0, |kv| kv.mod_revision()))
            }
            _ => None,
        })
        .unwrap_or(0);
    Ok(Pushed::Conflict(current))
}

/// The local copy's path: `cache_file`, or beside the config file with `.etcd-cache` added.
pub fn cache_path(cfg: &EtcdConfig, config_path: &Path) -> std::path::PathBuf {
    match &cfg.cache_file {
        Some(f) => f.into(),
        None => {
            let mut name = config_path.as_os_str().to_owned();
            name.push(".etcd-cache");
            name.into()
        }
    }
}
