//! Verify-only mode: the public keys of an identity provider, fetched from `jwks_url` (HTTP or
//! HTTPS, through pingora's own connector) and refreshed in the background. Keys are looked up
//! by `kid`; a token without `kid` is checked against the only key when there is exactly one.

use arc_swap::ArcSwap;
use async_trait::async_trait;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::DecodingKey;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::upstreams::peer::HttpPeer;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often the key set is fetched again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// Retry delay while the key set could not be fetched.
const RETRY_EVERY: Duration = Duration::from_secs(2);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BODY: usize = 1 << 20;

pub struct Jwks {
    pub url: String,
    keys: ArcSwap<HashMap<String, Arc<DecodingKey>>>,
}

impl Jwks {
    pub fn new(url: &str) -> Jwks {
        Jwks {
            url: url.to_owned(),
            keys: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    /// The key for `kid` (or the only key when the token names none).
    pub fn key(&self, kid: Option<&str>) -> Option<Arc<DecodingKey>> {
        let keys = self.keys.load();
        match kid {
            Some(kid) => keys.get(kid).cloned(),
            None if keys.len() == 1 => keys.values().next().cloned(),
            None => None,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fetches the set and replaces the keys; the old keys stay on any failure.
    pub async fn refresh(&self) -> Result<usize, String> {
        let body = fetch(&self.url).await?;
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| format!("not a JWK set: {e}"))?;
        let mut keys = HashMap::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let kid = jwk.common.key_id.clone().unwrap_or_else(|| format!("#{i}"));
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, Arc::new(key));
                }
                Err(e) => log::warn!("jwks {}: key {kid} skipped: {e}", self.url),
            }
        }
        if keys.is_empty() {
            return Err("the set has no usable key".into());
        }
        let n = keys.len();
        self.keys.store(Arc::new(keys));
        Ok(n)
    }
}

/// GET `url` and return the body of a 2xx answer.
async fn fetch(url: &str) -> Result<Vec<u8>, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    let tls = uri.scheme_str() == Some("https");
    let host = uri.host().ok_or("URL has no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("no address for {host}"))?;
    let mut peer = HttpPeer::new(addr, tls, host.clone());
    peer.options.connection_timeout = Some(FETCH_TIMEOUT);
    peer.options.read_timeout = Some(FETCH_TIMEOUT);
    let connector = Connector::new(None);
    let (mut session, _) = connector
        .get_http_session(&peer)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = RequestHeader::build("GET", path.as_bytes(), None).map_err(|e| e.to_string())?;
    req.insert_header("host", host.as_str())
        .map_err(|e| e.to_string())?;
    req.insert_header("accept", "application/json")
        .map_err(|e| e.to_string())?;
    session
        .write_request_header(Box::new(req))
        .await
        .map_err(|e| e.to_string())?;
    session
        .finish_request_body()
        .await
        .map_err(|e| e.to_string())?;
    session
        .read_response_header()
        .await
        .map_err(|e| e.to_string())?;
    let status = session.response_header().map_or(0, |h| h.status.as_u16());
    let mut body = Vec::new();
    while let Some(chunk) = session
        .read_response_body()
        .await
        .map_err(|e| e.to_string())?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY {
            return Err("answer larger than 1 MiB".into());
        }
    }
    if !(200..300).contains(&status) {
        return Err(format!("status {status}"));
    }
    Ok(body)
}

/// Every key set named by a config this process loaded, by URL. A reload that keeps the URL
/// keeps the keys already fetched.
static REGISTRY: std::sync::LazyLock<std::sync::Mutex<HashMap<String, Arc<Jwks>>>> =
    std::sync::LazyLock::new(Default::default);

/// The key set for `url`, shared with every earlier config that named it.
pub fn for_url(url: &str) -> Arc<Jwks> {
    let Ok(mut registry) = REGISTRY.lock() else {
        return Arc::new(Jwks::new(url));
    };
    Arc::clone(
        registry
            .entry(url.to_owned())
            .or_insert_with(|| Arc::new(Jwks::new(url))),
    )
}

fn registered() -> Vec<Arc<Jwks>> {
    REGISTRY
        .lock()
        .map(|r| r.values().cloned().collect())
        .unwrap_or_default()
}

/// Keeps every registered key set fresh: at once, then every `REFRESH_EVERY` (every few
/// seconds while a fetch fails or a set is still empty).
pub struct JwksRefresher;

#[async_trait]
impl BackgroundService for JwksRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut due: HashMap<String, tokio::time::Instant> = HashMap::new();
        loop {
            let now = tokio::time::Instant::now();
            for set in registered() {
                if due.get(&set.url).is_some_and(|at| *at > now) {
                    continue;
                }
                let wait = match set.refresh().await {
                    Ok(n) => {
                        log::info!("jwks {}: {n} keys loaded", set.url);
                        REFRESH_EVERY
                    }
                    Err(e) => {
                        log::warn!(
                            "jwks {}: refresh failed, keeping {} keys: {e}",
                            set.url,
                            set.len()
                        );
                        RETRY_EVERY
                    }
                };
                due.insert(set.url.clone(), tokio::time::Instant::now() + wait);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => break,
            }
        }
    }
}
