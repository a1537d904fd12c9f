//! Authentication: JWT bearer tokens (`jwt`), API keys (`api_keys`), built-in users with
//! login / refresh / logout (`users`, `endpoints`), revocation (`revocation`).

mod api_keys;
mod background;
mod build;
mod claims;
mod crypto;
pub mod endpoints;
mod error;
mod jwks;
mod jwt;
pub mod login_limit;
mod policy;
mod revocation;
mod token_cache;
pub mod users;

pub use background::{JwksRefresher, RevocationSync};
pub use build::{build, check_users, warnings};
pub use claims::Caller;
pub use crypto::install as install_jwt_crypto;
pub use policy::AuthPolicy;

use crate::outcome::ErrorCode;
use api_keys::ApiKeys;
use claims::{Audience, Claims, ACCESS, REFRESH};
use error::SignError;
use jwks::Jwks;
use jwt::{JwtSigner, JwtVerifier, TokenError};
use login_limit::LoginLimiter;
use pingora::http::RequestHeader;
use revocation::{now, Revocations};
use std::sync::Arc;
use std::time::Duration;
use token_cache::{TokenCache, Verified};
use users::{User, Users};

/// Why a request was not authenticated; each maps to one answer and one metric reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Missing,
    InvalidToken,
    Expired,
    Revoked,
    RefreshAsAccess,
    InvalidApiKey,
    /// The user was removed or has a new password since the token was issued.
    UserChanged,
    /// The login is older than `session_ttl`.
    SessionExpired,
}

impl Denied {
    /// The contract's error for this refusal.
    pub fn code(self) -> ErrorCode {
        match self {
            Denied::Missing => ErrorCode::Unauthorized,
            Denied::Expired | Denied::SessionExpired => ErrorCode::TokenExpired,
            Denied::InvalidApiKey => ErrorCode::InvalidCredentials,
            Denied::InvalidToken
            | Denied::Revoked
            | Denied::RefreshAsAccess
            | Denied::UserChanged => ErrorCode::InvalidToken,
        }
    }

    /// The `reason` label of `auth_requests_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Denied::Missing => "missing",
            Denied::InvalidToken => "invalid_token",
            Denied::Expired => "expired",
            Denied::Revoked => "revoked",
            Denied::RefreshAsAccess => "refresh_as_access",
            Denied::InvalidApiKey => "invalid_api_key",
            Denied::UserChanged => "user_changed",
            Denied::SessionExpired => "session_expired",
        }
    }
}

/// The tokens of one login, across refreshes.
pub struct Family {
    pub id: String,
    /// The login, unix seconds.
    pub started: u64,
}

impl Family {
    /// The family a login starts now.
    pub fn start() -> Family {
        Family {
            id: random_id(),
            started: now(),
        }
    }

    /// The family a refresh token belongs to (its login time: `fat`, or `iat` if absent).
    fn of(claims: &Claims) -> Family {
        Family {
            id: claims.fam.clone(),
            started: claims.fat.unwrap_or(claims.iat),
        }
    }
}

/// Access and refresh token of one login or refresh.
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
    pub expires_in: u64,
}

/// An authentication outcome, counted in `auth_requests_total` by the proxy's `logging`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthEvent {
    /// `success` or `failure`.
    pub result: &'static str,
    /// A fixed word: `token`, `api_key`, `login`, `expired`, `forbidden`, ...
    pub reason: &'static str,
}

impl AuthEvent {
    pub fn success(reason: &'static str) -> AuthEvent {
        AuthEvent {
            result: "success",
            reason,
        }
    }

    pub fn failure(reason: &'static str) -> AuthEvent {
        AuthEvent {
            result: "failure",
            reason,
        }
    }
}

/// The compiled `auth` section.
pub struct Auth {
    verifier: Option<JwtVerifier>,
    signer: Option<JwtSigner>,
    issuer: Option<String>,
    audience: Option<String>,
    access_ttl: Duration,
    refresh_ttl: Duration,
    /// A login's absolute lifetime, however often its tokens are refreshed.
    session_ttl: Duration,
    users: Users,
    api_keys: ApiKeys,
    /// Kept across reloads while the store settings stay the same.
    revocations: Arc<Revocations>,
    /// Kept across reloads.
    login_limiter: Arc<LoginLimiter>,
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
    /// The key set this section verifies with, in verify-only (JWKS) mode.
    pub fn jwks(&self) -> Option<&Arc<Jwks>> {
        self.verifier.as_ref().and_then(JwtVerifier::jwks)
    }

    /// The revocation store, for the background sync.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// True when the gateway can issue tokens (`/auth/*` is served).
    pub fn issues_tokens(&self) -> bool {
        self.signer.is_some()
    }

    /// Authenticates a request by `X-API-Key` or `Authorization: Bearer`.
    pub fn authenticate(&self, req: &RequestHeader) -> Result<(Arc<Caller>, &'static str), Denied> {
        if let Some(key) = req.headers.get(X_API_KEY) {
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
        let keys = self.jwks().map_or(0, |j| j.generation());
        if let Some(v) = self.verified.get(token, t).filter(|v| v.keys == keys) {
            if self
                .revocations
                .revokes(&v.jti, &v.fam, &v.caller.subject, v.user_issued_at)
            {
                return Err(Denied::Revoked);
            }
            return Ok((v.caller, "token"));
        }
        let claims = self.verify(token)?;
        if claims.is_refresh() {
            return Err(Denied::RefreshAsAccess);
        }
        let user_issued_at = claims.uep.is_some().then_some(claims.iat);
        let caller = Caller::new(claims.sub, claims.roles).ok_or(Denied::InvalidToken)?;
        let verified = Verified {
            user_issued_at,
            valid_until: claims.exp.saturating_add(self.leeway),
            jti: claims.jti.into(),
            fam: claims.fam.into(),
            caller: Arc::new(caller),
            keys,
        };
        let caller = Arc::clone(&verified.caller);
        self.verified.insert(token, verified, t);
        Ok((caller, "token"))
    }

    /// Once this section replaced `previous`: the tokens of every user it removed are revoked
    /// (a user added back later, even with the same password hash, starts without them).
    pub fn revoke_removed_users(&self, previous: &Auth) {
        let exp = revocation::now()
            + self
                .session_ttl
                .max(self.refresh_ttl)
                .max(previous.session_ttl)
                .as_secs();
        for name in previous.users.names() {
            if self.users.get(name).is_none() {
                self.revocations.revoke_user(name, exp);
            }
        }
    }

    /// Verifies any token of ours or the identity provider's, revocation included.
    pub fn verify(&self, token: &str) -> Result<Claims, Denied> {
        let verifier = self.verifier.as_ref().ok_or(Denied::InvalidToken)?;
        let claims = verifier.verify(token).map_err(|e| match e {
            TokenError::Expired => Denied::Expired,
            TokenError::Invalid => Denied::InvalidToken,
        })?;
        // Tokens of ours carry the user's epoch: a removed user or a new password ends them.
        // (The verified-token cache is emptied by every reload, so this runs again after any
        // change of users.) Tokens without one were minted elsewhere with the same key.
        if let Some(epoch) = &claims.uep {
            let current = self.users.get(&claims.sub).map(|u| u.epoch.as_str());
            if current != Some(epoch.as_str()) {
                return Err(Denied::UserChanged);
            }
        }
        let user_iat = claims.uep.is_some().then_some(claims.iat);
        if self
            .revocations
            .revokes(&claims.jti, &claims.fam, &claims.sub, user_iat)
        {
            return Err(Denied::Revoked);
        }
        Ok(claims)
    }

    /// Checks a refresh token for rotation: ours, a refresh token, its user still configured
    /// (whose current roles the new tokens get), its login within `session_ttl`.
    pub fn check_refresh(&self, token: &str) -> Result<(Claims, &User, Family), Denied> {
        let claims = self.verify(token)?;
        // A refresh token is always one of ours: typed, in a family, under a user's epoch.
        if !claims.is_refresh() || claims.jti.is_empty() || claims.fam.is_empty() {
            return Err(Denied::InvalidToken);
        }
        if claims.uep.is_none() {
            return Err(Denied::UserChanged);
        }
        let user = self.users.get(&claims.sub).ok_or(Denied::UserChanged)?;
        let family = Family::of(&claims);
        if now() >= family.started.saturating_add(self.session_ttl.as_secs()) {
            return Err(Denied::SessionExpired);
        }
        Ok((claims, user, family))
    }

    /// Issues an access and a refresh token for `user` in a token family. Neither outlives the
    /// family's absolute lifetime (`session_ttl` from the login).
    pub fn issue(&self, user: &User, family: &Family) -> Result<TokenPair, SignError> {
        let signer = self.signer.as_ref().ok_or(SignError::NoSigner)?;
        let iat = now();
        let end = family.started.saturating_add(self.session_ttl.as_secs());
        let claims = |typ: &str, ttl: Duration| Claims {
            sub: user.username.clone(),
            roles: user.roles.clone(),
            iss: self.issuer.clone(),
            aud: self.audience.clone().map(Audience::One),
            exp: (iat + ttl.as_secs()).min(end),
            iat,
            nbf: Some(iat),
            jti: random_id(),
            typ: Some(typ.to_owned()),
            fam: family.id.clone(),
            uep: Some(user.epoch.clone()),
            fat: Some(family.started),
        };
        Ok(TokenPair {
            access: signer.sign(&claims(ACCESS, self.access_ttl))?,
            refresh: signer.sign(&claims(REFRESH, self.refresh_ttl))?,
            expires_in: self.access_ttl.as_secs(),
        })
    }
}

/// The API key header, parsed once.
pub const X_API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(req: &RequestHeader) -> Option<&str> {
    // As bytes up to the token: a token is hundreds of bytes, checked once, as UTF-8 (a
    // character a token cannot hold then fails its verification).
    let value = req.headers.get(http::header::AUTHORIZATION)?.as_bytes();
    let space = value.iter().position(|&b| b == b' ')?;
    if !value[..space].eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    std::str::from_utf8(value[space + 1..].trim_ascii()).ok()
}

/// 128 random bits as hex, for `jti` and `fam`.
pub fn random_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

#[cfg(test)]
mod tests {
    use super::bearer;
    use pingora::http::RequestHeader;

    fn with_authorization(value: &[u8]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).expect("request");
        let value = http::HeaderValue::from_bytes(value).expect("value");
        req.insert_header(http::header::AUTHORIZATION, value)
            .expect("header");
        req
    }

    #[test]
    fn the_bearer_token_is_taken_from_its_scheme_only() {
        let token = |v: &[u8]| bearer(&with_authorization(v)).map(str::to_owned);
        assert_eq!(token(b"Bearer abc.def.ghi").as_deref(), Some("abc.def.ghi"));
        assert_eq!(token(b"bEaReR  abc ").as_deref(), Some("abc"));
        assert_eq!(token(b"Basic YWxpY2U6c2VjcmV0"), None);
        assert_eq!(token(b"Bearerabc"), None);
        assert_eq!(token(b"Bearer"), None);
        // Bytes that are not UTF-8 are no token; UTF-8 is passed on, to fail verification.
        assert_eq!(token(b"Bearer \xff\xfe"), None);
        assert_eq!(
            token("Bearer caf\u{e9}".as_bytes()).as_deref(),
            Some("caf\u{e9}")
        );
        assert_eq!(
            bearer(&RequestHeader::build("GET", b"/", None).expect("request")),
            None
        );
    }
}
