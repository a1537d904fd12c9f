//! `hmac_auth`: requests signed with a shared key. The client sends
//!
//! ```text
//! Authorization: HMAC-SHA256 keyId="<id>", nonce="<nonce>", signature="<base64>"
//! Date: <IMF-fixdate>            (or X-Date, which wins: browsers do not let scripts set Date)
//! Digest: SHA-256=<base64>       (required with a body; of the body as sent)
//! ```
//!
//! and signs, with HMAC-SHA256 under the key's secret, the lines
//! `METHOD \n path \n query \n date \n nonce \n digest` (path and query as sent, the query
//! without `?`, empty lines for what is absent). The date must be within `clock_skew` of the
//! gateway's clock, and a nonce is taken once per key within twice that window: in memory, or in
//! Redis (`nonce_store: redis`) so every instance on that Redis refuses a replay.

use crate::config::file::StoreKind;
use crate::config::units::PositiveDuration;
use crate::plugin::{
    BuildContext, BuildError, Denial, ErrorCode, Flow, Middleware, RequestView, SharedRedis,
};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Nonces remembered at most in memory; past it, signed requests are refused (503) until
/// older ones expire.
const MAX_NONCES: usize = 1_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    keys: Vec<KeyConfig>,
    /// Default 5m.
    #[serde(default)]
    clock_skew: Option<PositiveDuration>,
    /// `memory` (default) or `redis` (the `redis` section's).
    #[serde(default)]
    nonce_store: StoreKind,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyConfig {
    id: String,
    /// At least 32 bytes; put it in the environment (`${HMAC_KEY}`).
    secret: String,
    #[serde(default)]
    roles: Vec<String>,
}

struct Key {
    secret: Vec<u8>,
    roles: Vec<String>,
}

enum Nonces {
    Memory(Mutex<Seen>),
    Redis(SharedRedis),
}

#[derive(Default)]
struct Seen {
    until: HashMap<(String, String), Instant>,
    order: VecDeque<(Instant, (String, String))>,
}

pub struct HmacAuth {
    keys: HashMap<String, Key>,
    skew: Duration,
    nonces: Nonces,
}

/// Why a signed request was refused (logged at debug; the client gets one code).
#[derive(Debug)]
enum Refusal {
    Missing,
    Malformed,
    UnknownKey,
    Date,
    Digest,
    Signature,
    Replay,
    Store(String),
}

#[async_trait::async_trait]
impl Middleware for HmacAuth {
    type Settings = Settings;
    const LOGGING_PHASE: bool = false;

    fn build(s: Settings, ctx: &BuildContext) -> Result<Self, BuildError> {
        if s.keys.is_empty() {
            return Err(BuildError::at("keys", "must not be empty"));
        }
        let mut keys = HashMap::new();
        for (i, k) in s.keys.into_iter().enumerate() {
            if k.id.is_empty() || k.id.contains(['"', ',', '\\']) {
                return Err(BuildError::at(
                    format!("keys[{i}].id"),
                    "must be non-empty, without \" , \\",
                ));
            }
            if k.secret.len() < 32 {
                return Err(BuildError::at(
                    format!("keys[{i}].secret"),
                    "must be at least 32 bytes",
                ));
            }
            let key = Key {
                secret: k.secret.into_bytes(),
                roles: k.roles,
            };
            if keys.insert(k.id.clone(), key).is_some() {
                return Err(BuildError::at(
                    format!("keys[{i}].id"),
                    format!("duplicate id {:?}", k.id),
                ));
            }
        }
        let nonces = match s.nonce_store {
            StoreKind::Memory => Nonces::Memory(Mutex::default()),
            StoreKind::Redis => Nonces::Redis(
                ctx.redis()
                    .ok_or_else(|| BuildError::at("nonce_store", "needs a redis section"))?,
            ),
        };
        Ok(HmacAuth {
            keys,
            skew: s.clock_skew.map_or(Duration::from_secs(300), |d| d.0),
            nonces,
        })
    }

    fn needs_body(&self) -> bool {
        true
    }

    async fn request(&self, req: &mut RequestView<'_>) -> Flow {
        match self.verify(req).await {
            Ok(id) => {
                let roles = self.keys.get(&id).map_or(&[][..], |k| &k.roles);
                req.authenticate(&id, roles);
                Flow::Continue
            }
            Err(refusal) => {
                log::debug!("hmac_auth refused {}: {refusal:?}", req.vars.request_id());
                let code = match refusal {
                    Refusal::Missing => ErrorCode::Unauthorized,
                    Refusal::Store(e) => {
                        log::warn!("hmac_auth: the nonce store failed: {e}");
                        return Denial::retry_after(ErrorCode::StoreUnavailable, 1).into();
                    }
                    _ => ErrorCode::InvalidCredentials,
                };
                Denial::new(code)
                    .with(
                        http::header::WWW_AUTHENTICATE,
                        http::HeaderValue::from_static("HMAC-SHA256"),
                    )
                    .into()
            }
        }
    }
}

impl HmacAuth {
    /// The key id of a well-signed, fresh, first-seen request.
    async fn verify(&self, req: &RequestView<'_>) -> Result<String, Refusal> {
        let headers = &req.header.headers;
        let one = |name: &str| {
            let mut all = headers.get_all(name).iter();
            match (all.next(), all.next()) {
                (Some(v), None) => v.to_str().map(Some).map_err(|_| Refusal::Malformed),
                (None, _) => Ok(None),
                _ => Err(Refusal::Malformed),
            }
        };
        let auth = one("authorization")?.ok_or(Refusal::Missing)?;
        let params = auth.strip_prefix("HMAC-SHA256 ").ok_or(Refusal::Missing)?;
        let (id, nonce, signature) = parse_params(params).ok_or(Refusal::Malformed)?;
        let key = self.keys.get(id).ok_or(Refusal::UnknownKey)?;
        let date = match one("x-date")? {
            Some(d) => d,
            None => one("date")?.ok_or(Refusal::Date)?,
        };
        let sent = httpdate::parse_http_date(date).map_err(|_| Refusal::Date)?;
        let now = SystemTime::now();
        let off = now
            .duration_since(sent)
            .or_else(|e| Ok::<_, Refusal>(e.duration()))?;
        if off > self.skew {
            return Err(Refusal::Date);
        }
        let digest = one("digest")?;
        let body = req.body.map_or(&[][..], |b| &b[..]);
        match digest {
            Some(d) => {
                let (algorithm, value) = d.split_once('=').ok_or(Refusal::Digest)?;
                let expected =
                    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
                if !algorithm.eq_ignore_ascii_case("SHA-256") || value != expected {
                    return Err(Refusal::Digest);
                }
            }
            None if !body.is_empty() => return Err(Refusal::Digest),
            None => {}
        }
        let uri = &req.header.uri;
        let text = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            req.header.method,
            uri.path(),
            uri.query().unwrap_or(""),
            date,
            nonce,
            digest.unwrap_or("")
        );
        let given = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|_| Refusal::Malformed)?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&key.secret).map_err(|_| Refusal::Signature)?;
        mac.update(text.as_bytes());
        mac.verify_slice(&given).map_err(|_| Refusal::Signature)?;
        self.first_use(id, nonce).await?;
        Ok(id.to_owned())
    }

    /// Takes the nonce for this key, for twice the clock skew (a date may be that far either way).
    async fn first_use(&self, id: &str, nonce: &str) -> Result<(), Refusal> {
        let window = self.skew * 2;
        match &self.nonces {
            Nonces::Memory(seen) => {
                let mut seen = seen.lock().map_err(|_| Refusal::Store("poisoned".into()))?;
                let now = Instant::now();
                while let Some((until, _)) = seen.order.front() {
                    if *until > now {
                        break;
                    }
                    if let Some((_, key)) = seen.order.pop_front() {
                        if seen.until.get(&key).is_some_and(|u| *u <= now) {
                            seen.until.remove(&key);
                        }
                    }
                }
                let key = (id.to_owned(), nonce.to_owned());
                if seen.until.contains_key(&key) {
                    return Err(Refusal::Replay);
                }
                if seen.until.len() >= MAX_NONCES {
                    return Err(Refusal::Store("nonce table full".into()));
                }
                seen.until.insert(key.clone(), now + window);
                seen.order.push_back((now + window, key));
                Ok(())
            }
            Nonces::Redis(redis) => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(format!("hmac-nonce:{id}:{nonce}"))
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(window.as_millis() as u64);
                let set: Option<String> = redis
                    .query(&cmd)
                    .await
                    .map_err(|e| Refusal::Store(e.to_string()))?;
                set.map(|_| ()).ok_or(Refusal::Replay)
            }
        }
    }
}

/// `keyId="..", nonce="..", signature=".."` in any order, each once; the nonce 1-128 of
/// `A-Z a-z 0-9 - . _ ~`.
fn parse_params(text: &str) -> Option<(&str, &str, &str)> {
    let (mut id, mut nonce, mut signature) = (None, None, None);
    for part in text.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        let v = v.strip_prefix('"')?.strip_suffix('"')?;
        let slot = match k {
            "keyId" => &mut id,
            "nonce" => &mut nonce,
            "signature" => &mut signature,
            _ => return None,
        };
        if slot.replace(v).is_some() {
            return None;
        }
    }
    let nonce = nonce?;
    let ok = (1..=128).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    ok.then_some((id?, nonce, signature?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_parse_once_each_in_any_order() {
        assert_eq!(
            parse_params(r#"nonce="n-1", keyId="a", signature="c2ln""#),
            Some(("a", "n-1", "c2ln"))
        );
        assert_eq!(
            parse_params(r#"keyId="a", keyId="b", nonce="n", signature="s""#),
            None
        );
        assert_eq!(
            parse_params(r#"keyId="a", nonce="n n", signature="s""#),
            None
        );
        assert_eq!(parse_params(r#"keyId="a", nonce="n""#), None);
        assert_eq!(parse_params(r#"keyId=a, nonce="n", signature="s""#), None);
    }
}
