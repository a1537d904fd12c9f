//! Authentication: JWT bearer tokens (`jwt`), API keys (`api_keys`), built-in users with
//! login / refresh / logout (`users`, `endpoints`), revocation (`revocation`).

pub mod api_keys;
pub mod claims;
pub mod endpoints;
pub mod jwks;
pub mod jwt;
pub mod login_limit;
pub mod revocation;
pub mod sync;
pub mod token_cache;
pub mod users;

use crate::config::file::{FileConfig, StoreKind};
use api_keys::ApiKeys;
use claims::{Caller, Claims, ACCESS, REFRESH};
use jwt::{JwtSigner, JwtVerifier, TokenError};
use login_limit::LoginLimiter;
use pingora::http::RequestHeader;
use revocation::{now, Revocations};
use std::sync::Arc;
use std::time::Duration;
use token_cache::{TokenCache, Verified};
use users::Users;

const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(7 * 86_400);
const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);

/// Why a request was not authenticated; each maps to one answer and one metric reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Missing,
    InvalidToken,
    Expired,
    Revoked,
    RefreshAsAccess,
    InvalidApiKey,
}

impl Denied {
    pub fn reason(self) -> &'static str {
        match self {
            Denied::Missing => "missing",
            Denied::InvalidToken => "invalid_token",
            Denied::Expired => "expired",
            Denied::Revoked => "revoked",
            Denied::RefreshAsAccess => "refresh_as_access",
            Denied::InvalidApiKey => "invalid_api_key",
        }
    }
}

/// Access and refresh token of one login or refresh.
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
    pub expires_in: u64,
}

/// The compiled `auth` section.
pub struct Auth {
    verifier: Option<JwtVerifier>,
    signer: Option<JwtSigner>,
    issuer: Option<String>,
    audience: Option<String>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub users: Users,
    api_keys: ApiKeys,
    /// Kept across reloads while the store settings stay the same.
    pub revocations: Arc<Revocations>,
    /// Kept across reloads.
    pub login_limiter: Arc<LoginLimiter>,
    /// Emptied by every reload (keys or claims rules may have changed).
    verified: TokenCache,
    leeway: u64,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("issues_tokens", &self.signer.is_some())
            .field("revocations", &self.revocations.settings)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Builds the section; problems are `(path under auth, message)`.
    pub fn build(
        file: &FileConfig,
        previous: Option<&Auth>,
    ) -> Result<Option<Auth>, Vec<(String, String)>> {
        let Some(cfg) = &file.auth else {
            return Ok(None);
        };
        let mut problems = Vec::new();
        let jwks = cfg
            .jwt
            .as_ref()
            .and_then(|j| j.jwks_url.as_deref())
            .map(jwks::for_url);
        let verifier = cfg.jwt.as_ref().and_then(|j| {
            JwtVerifier::build(j, jwks)
                .map_err(|e| problems.push(("jwt".into(), e)))
                .ok()
        });
        let signer = cfg.jwt.as_ref().and_then(|j| {
            JwtSigner::build(j)
                .map_err(|e| problems.push(("jwt.private_key_file".into(), e)))
                .ok()
                .flatten()
        });
        let users = Users::build(&cfg.users).unwrap_or_else(|p| {
            problems.extend(p);
            Users::default()
        });
        if !users.is_empty() && signer.is_none() {
            problems.push((
                "users".into(),
                "login needs jwt with a secret or private_key_file".into(),
            ));
        }
        let settings = match (cfg.revocation_store, &file.redis) {
            (StoreKind::Redis, Some(r)) => {
                let timeout = r.timeout.map_or(DEFAULT_REDIS_TIMEOUT, |t| t.0);
                r.url.as_deref().map(|url| (url, timeout))
            }
            _ => None,
        };
        let revocations = match (previous, settings) {
            (Some(p), None) if !p.revocations.is_shared() => Ok(Arc::clone(&p.revocations)),
            (_, None) => Ok(Arc::new(Revocations::memory())),
            (Some(p), Some((url, t))) if p.revocations.settings == format!("redis {url} {t:?}") => {
                Ok(Arc::clone(&p.revocations))
            }
            (_, Some((url, t))) => Revocations::redis(url, t).map(Arc::new),
        };
        let revocations = revocations.unwrap_or_else(|e| {
            problems.push(("revocation_store".into(), e));
            Arc::new(Revocations::memory())
        });
        if !problems.is_empty() {
            return Err(problems);
        }
        let jwt = cfg.jwt.as_ref();
        Ok(Some(Auth {
            verifier,
            signer,
            issuer: jwt.and_then(|j| j.issuer.clone()),
            audience: jwt.and_then(|j| j.audience.clone()),
            access_ttl: jwt
                .and_then(|j| j.access_ttl)
                .map_or(DEFAULT_ACCESS_TTL, |d| d.0),
            refresh_ttl: jwt
                .and_then(|j| j.refresh_ttl)
                .map_or(DEFAULT_REFRESH_TTL, |d| d.0),
            users,
            api_keys: ApiKeys::build(&cfg.api_keys),
            revocations,
            login_limiter: previous.map_or_else(Default::default, |p| Arc::clone(&p.login_limiter)),
            verified: TokenCache::default(),
            leeway: jwt.and_then(|j| j.leeway).map_or(30, |d| d.0.as_secs()),
        }))
    }

    /// True when the gateway can issue tokens (`/auth/*` is served).
    pub fn issues_tokens(&self) -> bool {
        self.signer.is_some()
    }

    /// Authenticates a request by `X-API-Key` or `Authorization: Bearer`.
    pub fn authenticate(&self, req: &RequestHeader) -> Result<(Arc<Caller>, &'static str), Denied> {
        if let Some(key) = req.headers.get("x-api-key") {
            let caller = self
                .api_keys
                .check(key.as_bytes())
                .ok_or(Denied::InvalidApiKey)?;
            return Ok((Arc::clone(caller), "api_key"));
        }
        let token = bearer(req).ok_or(Denied::Missing)?;
        if token.len() > jwt::MAX_TOKEN_LEN {
            return Err(Denied::InvalidToken);
        }
        let t = now();
        if let Some(v) = self.verified.get(token, t) {
            if self.revocations.is_revoked(&v.jti, &v.fam) {
                return Err(Denied::Revoked);
            }
            return Ok((v.caller, "token"));
        }
        let claims = self.verify(token)?;
        if claims.is_refresh() {
            return Err(Denied::RefreshAsAccess);
        }
        let verified = Verified {
            valid_until: claims.exp.saturating_add(self.leeway),
            jti: claims.jti.into(),
            fam: claims.fam.into(),
            caller: Arc::new(Caller::new(claims.sub, claims.roles)),
        };
        let caller = Arc::clone(&verified.caller);
        self.verified.insert(token, verified, t);
        Ok((caller, "token"))
    }

    /// Verifies any token of ours or the identity provider's, revocation included.
    pub fn verify(&self, token: &str) -> Result<Claims, Denied> {
        let verifier = self.verifier.as_ref().ok_or(Denied::InvalidToken)?;
        let claims = verifier.verify(token).map_err(|e| match e {
            TokenError::Expired => Denied::Expired,
            TokenError::Invalid => Denied::InvalidToken,
        })?;
        if self.revocations.is_revoked(&claims.jti, &claims.fam) {
            return Err(Denied::Revoked);
        }
        Ok(claims)
    }

    /// Issues an access and a refresh token for `sub` in token family `fam`.
    pub fn issue(&self, sub: &str, roles: &[String], fam: &str) -> Result<TokenPair, String> {
        let signer = self
            .signer
            .as_ref()
            .ok_or("this gateway does not issue tokens")?;
        let iat = now();
        let claims = |typ: &str, ttl: Duration| Claims {
            sub: sub.to_owned(),
            roles: roles.to_vec(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: iat + ttl.as_secs(),
            iat,
            nbf: Some(iat),
            jti: random_id(),
            typ: Some(typ.to_owned()),
            fam: fam.to_owned(),
        };
        Ok(TokenPair {
            access: signer.sign(&claims(ACCESS, self.access_ttl))?,
            refresh: signer.sign(&claims(REFRESH, self.refresh_ttl))?,
            expires_in: self.access_ttl.as_secs(),
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(req: &RequestHeader) -> Option<&str> {
    let value = req
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// 128 random bits as hex, for `jti` and `fam`.
pub fn random_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}
