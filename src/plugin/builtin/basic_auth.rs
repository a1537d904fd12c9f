//! `basic_auth`: HTTP Basic credentials checked against argon2id hashes, under the same login
//! limits as `/auth/login` (failures per user and address, per address, password checks at once).
//! A verified `Authorization` value is remembered for a few minutes (by its SHA-256), so a
//! client that sends it on every request pays for one password check, not one per request.

use crate::auth::login_limit::{LoginLimiter, LoginLimits, Refused};
use crate::auth::users::{User, Users};
use crate::config::file::UserConfig;
use crate::config::units::Rate;
use crate::config::ConfigErrors;
use crate::plugin::{BuildContext, BuildError, Denial, ErrorCode, Flow, Middleware, RequestView};
use base64::Engine;
use http::HeaderValue;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a verified `Authorization` value is taken without a new password check.
const REMEMBERED_FOR: Duration = Duration::from_secs(300);
/// Verified values remembered at most (the table is emptied when full).
const REMEMBERED_MAX: usize = 10_000;

/// SHA-256 of a verified `Authorization` value → its user and when it was verified.
type Verified = HashMap<[u8; 32], (Arc<User>, Instant)>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The realm of the `WWW-Authenticate` challenge. Default `api-gateway`.
    #[serde(default)]
    realm: Option<String>,
    /// Users as in `auth.users` (`gateway hash-password` makes the hashes).
    users: Vec<UserConfig>,
    /// As `auth.login_limit` (same defaults).
    #[serde(default)]
    login_limit: Option<Limits>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    #[serde(default)]
    per_user: Option<Rate>,
    #[serde(default)]
    per_ip: Option<Rate>,
}

pub struct BasicAuth {
    users: Users,
    challenge: HeaderValue,
    limiter: LoginLimiter,
    verified: RwLock<Verified>,
}

#[async_trait::async_trait]
impl Middleware for BasicAuth {
    type Settings = Settings;
    const LOGGING_PHASE: bool = false;

    fn build(s: Settings, _ctx: &BuildContext) -> Result<Self, BuildError> {
        if s.users.is_empty() {
            return Err(BuildError::at("users", "must not be empty"));
        }
        // The checks of `auth.users`: unique names, safe in headers, argon2id hashes.
        let mut problems = ConfigErrors::default();
        let users = crate::auth::check_users("users", &s.users, &mut problems);
        if let Some(p) = problems.iter().next() {
            return Err(BuildError::at(p.path.clone(), p.message.clone()));
        }
        let unusable = |u: &UserConfig| u.username.is_empty() || u.username.contains(':');
        if let Some(i) = s.users.iter().position(unusable) {
            let at = format!("users[{i}].username");
            return Err(BuildError::at(
                at,
                "must be non-empty, without ':' (Basic splits there)",
            ));
        }
        let realm = s.realm.unwrap_or_else(|| "api-gateway".to_owned());
        if realm.contains(['"', '\\']) {
            return Err(BuildError::at("realm", "must not contain \" or \\"));
        }
        let challenge =
            HeaderValue::try_from(format!("Basic realm=\"{realm}\", charset=\"UTF-8\""))
                .map_err(|_| BuildError::at("realm", "not a header value"))?;
        let limits = s.login_limit.unwrap_or_default();
        let defaults = LoginLimits::default();
        Ok(BasicAuth {
            users,
            challenge,
            limiter: LoginLimiter::new(LoginLimits {
                per_user: limits.per_user.unwrap_or(defaults.per_user),
                per_ip: limits.per_ip.unwrap_or(defaults.per_ip),
                refresh_per_ip: defaults.refresh_per_ip,
            }),
            verified: RwLock::default(),
        })
    }

    async fn request(&self, req: &mut RequestView<'_>) -> Flow {
        let mut values = req
            .header
            .headers
            .get_all(http::header::AUTHORIZATION)
            .iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return self.deny(ErrorCode::Unauthorized);
        };
        let Some((username, password)) = credentials(value.as_bytes()) else {
            return self.deny(ErrorCode::Unauthorized);
        };
        let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        let user = match self.remembered(&digest) {
            Some(user) => user,
            None => match self.check(&username, password, req.vars.client_ip()).await {
                Ok(user) => {
                    self.remember(digest, &user);
                    user
                }
                Err(flow) => return flow,
            },
        };
        req.authenticate(&user.username, &user.roles);
        Flow::Continue
    }
}

impl BasicAuth {
    fn deny(&self, code: ErrorCode) -> Flow {
        Denial::new(code)
            .with(http::header::WWW_AUTHENTICATE, self.challenge.clone())
            .into()
    }

    fn remembered(&self, digest: &[u8; 32]) -> Option<Arc<User>> {
        let table = self.verified.read().ok()?;
        let (user, at) = table.get(digest)?;
        (at.elapsed() < REMEMBERED_FOR).then(|| Arc::clone(user))
    }

    fn remember(&self, digest: [u8; 32], user: &Arc<User>) {
        if let Ok(mut table) = self.verified.write() {
            if table.len() >= REMEMBERED_MAX {
                table.clear();
            }
            table.insert(digest, (Arc::clone(user), Instant::now()));
        }
    }

    /// The password check under the login limits.
    async fn check(
        &self,
        username: &str,
        password: String,
        ip: Option<std::net::IpAddr>,
    ) -> Result<Arc<User>, Flow> {
        let refused = |r: Refused| -> Flow {
            match r {
                Refused::Limited(secs) => Denial::retry_after(ErrorCode::RateLimited, secs).into(),
                Refused::Busy => Denial::retry_after(ErrorCode::StoreUnavailable, 1).into(),
            }
        };
        self.limiter.begin(username, ip).map_err(refused)?;
        let permit = match self.limiter.hashing_slot().await {
            Ok(p) => p,
            Err(r) => {
                self.limiter.abandoned(username, ip);
                return Err(refused(r));
            }
        };
        let users = self.users.clone();
        let name = username.to_owned();
        let checked = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            users.check(&name, &password)
        })
        .await;
        match checked {
            Ok(Some(user)) => {
                self.limiter.succeeded(username, ip);
                Ok(Arc::new(user))
            }
            Ok(None) => Err(self.deny(ErrorCode::InvalidCredentials)),
            Err(_) => {
                self.limiter.abandoned(username, ip);
                Err(ErrorCode::Internal.into())
            }
        }
    }
}

/// `Basic <base64(user:password)>` (scheme in any case) into its parts.
fn credentials(value: &[u8]) -> Option<(String, String)> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim_ascii())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_parse_in_any_scheme_case() {
        let v = format!(
            "bAsIc {}",
            base64::engine::general_purpose::STANDARD.encode("al:ice:pw")
        );
        assert_eq!(
            credentials(v.as_bytes()),
            Some(("al".into(), "ice:pw".into()))
        );
        assert_eq!(credentials(b"Bearer abc"), None);
        assert_eq!(credentials(b"Basic !!!"), None);
        assert_eq!(credentials(b"Basic"), None);
    }
}
