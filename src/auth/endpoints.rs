//! `POST /auth/login`, `/auth/refresh`, `/auth/logout`: plain functions from the request's
//! method, body, client address and bearer token to an answer. The proxy reads the body and
//! writes what they return; nothing here touches a socket.

use super::login_limit::Refused;
use super::revocation::{now, Kind};
use super::users::User;
use super::{Auth, AuthEvent, Denied, Family};
use crate::outcome::{Denial, ErrorCode, Flow, Reply};
use serde::Deserialize;
use std::net::IpAddr;
use std::sync::Arc;

/// Largest JSON body the endpoints read; the proxy stops reading past it.
pub const MAX_BODY: usize = 16 * 1024;

/// One of the token endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Login,
    Refresh,
    Logout,
}

impl Endpoint {
    /// The endpoint served at `path`, if any.
    pub fn at(path: &str) -> Option<Endpoint> {
        match path {
            "/auth/login" => Some(Endpoint::Login),
            "/auth/refresh" => Some(Endpoint::Refresh),
            "/auth/logout" => Some(Endpoint::Logout),
            _ => None,
        }
    }
}

/// What the endpoint gets from the request.
pub struct Call<'a> {
    pub method: &'a http::Method,
    /// The body, or `None` when it was longer than [`MAX_BODY`].
    pub body: Option<&'a [u8]>,
    pub client_ip: Option<IpAddr>,
    /// The token of `Authorization: Bearer`, when sent.
    pub bearer: Option<&'a str>,
}

/// The answer, and the authentication outcome to count (none for a malformed call).
pub struct Handled {
    pub flow: Flow,
    pub event: Option<AuthEvent>,
}

impl Handled {
    pub fn deny(code: ErrorCode, event: Option<AuthEvent>) -> Handled {
        Handled {
            flow: code.into(),
            event,
        }
    }

    fn refused(denied: Denied) -> Handled {
        Handled::deny(denied.code(), Some(AuthEvent::failure(denied.reason())))
    }

    fn limited(refused: Refused) -> Handled {
        match refused {
            Refused::Limited(secs) => Handled {
                flow: Denial::retry_after(ErrorCode::RateLimited, secs).into(),
                event: Some(AuthEvent::failure("rate_limited")),
            },
            Refused::Busy => Handled {
                flow: Denial::retry_after(ErrorCode::StoreUnavailable, 1).into(),
                event: Some(AuthEvent::failure("busy")),
            },
        }
    }

    fn unavailable() -> Handled {
        Handled {
            flow: Denial::retry_after(ErrorCode::StoreUnavailable, 1).into(),
            event: Some(AuthEvent::failure("store_unavailable")),
        }
    }
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct Refresh {
    refresh_token: String,
}

#[derive(Deserialize, Default)]
struct Logout {
    #[serde(default)]
    refresh_token: Option<String>,
}

/// Serves one call of `endpoint`.
pub async fn handle(auth: &Arc<Auth>, endpoint: Endpoint, call: Call<'_>) -> Handled {
    if call.method != http::Method::POST {
        return Handled {
            flow: Denial::new(ErrorCode::MethodNotAllowed)
                .with(http::header::ALLOW, http::HeaderValue::from_static("POST"))
                .into(),
            event: None,
        };
    }
    let Some(body) = call.body else {
        return Handled::deny(ErrorCode::PayloadTooLarge, None);
    };
    match endpoint {
        Endpoint::Login => login(auth, body, call.client_ip).await,
        Endpoint::Refresh => refresh(auth, body, call.client_ip).await,
        Endpoint::Logout => logout(auth, body, call.bearer).await,
    }
}

async fn login(auth: &Arc<Auth>, body: &[u8], client_ip: Option<IpAddr>) -> Handled {
    let Ok(req) = serde_json::from_slice::<Login>(body) else {
        return Handled::deny(
            ErrorCode::BadRequest,
            Some(AuthEvent::failure("bad_request")),
        );
    };
    let limiter = &auth.login_limiter;
    if let Err(r) = limiter.begin(&req.username, client_ip) {
        return Handled::limited(r);
    }
    let permit = match limiter.hashing_slot().await {
        Ok(p) => p,
        Err(r) => {
            limiter.abandoned(&req.username, client_ip);
            return Handled::limited(r);
        }
    };
    let users = auth.users.clone();
    let Login { username, password } = req;
    let name = username.clone();
    let user = tokio::task::spawn_blocking(move || {
        let _slot = permit;
        users.check(&name, &password)
    })
    .await
    .ok()
    .flatten();
    let Some(user) = user else {
        return Handled::deny(
            ErrorCode::InvalidCredentials,
            Some(AuthEvent::failure("invalid_credentials")),
        );
    };
    limiter.succeeded(&username, client_ip);
    issue(auth, &user, &Family::start(), "login")
}

async fn refresh(auth: &Arc<Auth>, body: &[u8], client_ip: Option<IpAddr>) -> Handled {
    if let Err(r) = auth.login_limiter.refresh(client_ip) {
        return Handled::limited(r);
    }
    let Ok(req) = serde_json::from_slice::<Refresh>(body) else {
        return Handled::deny(
            ErrorCode::BadRequest,
            Some(AuthEvent::failure("bad_request")),
        );
    };
    let (claims, user, family) = match auth.check_refresh(&req.refresh_token) {
        Ok(checked) => checked,
        Err(d) => return Handled::refused(d),
    };
    match auth
        .revocations
        .consume_refresh(&claims.jti, claims.exp)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            // A rotated refresh token came back: whoever holds the family is not to be trusted.
            let until = now() + auth.refresh_ttl.as_secs();
            if let Err(e) = auth
                .revocations
                .revoke(Kind::Family, &claims.fam, until)
                .await
            {
                log::error!("refresh reuse detected but the family could not be revoked: {e}");
                return Handled::unavailable();
            }
            log::warn!(
                "refresh token reuse for subject {:?}: token family revoked",
                claims.sub
            );
            return Handled::deny(
                ErrorCode::InvalidToken,
                Some(AuthEvent::failure("reuse_detected")),
            );
        }
        Err(e) => {
            log::warn!("refresh refused: {e}");
            return Handled::unavailable();
        }
    }
    issue(auth, user, &family, "refresh")
}

async fn logout(auth: &Arc<Auth>, body: &[u8], bearer: Option<&str>) -> Handled {
    let access = match bearer.map(|t| auth.verify(t)) {
        // A token without an id could not be revoked: say so rather than pretend.
        Some(Ok(c)) if !c.is_refresh() && (c.jti.is_empty() || c.fam.is_empty()) => {
            return Handled::deny(
                ErrorCode::BadRequest,
                Some(AuthEvent::failure("not_revocable")),
            )
        }
        Some(Ok(c)) if !c.is_refresh() => c,
        Some(Ok(_)) => return Handled::refused(Denied::RefreshAsAccess),
        Some(Err(d)) => return Handled::refused(d),
        None => return Handled::refused(Denied::Missing),
    };
    let extra = if body.is_empty() {
        Logout::default()
    } else {
        match serde_json::from_slice::<Logout>(body) {
            Ok(l) => l,
            Err(_) => return Handled::deny(ErrorCode::BadRequest, None),
        }
    };
    let until = now() + auth.refresh_ttl.as_secs();
    let mut revoke = vec![
        (Kind::Token, access.jti.clone(), access.exp),
        (Kind::Family, access.fam.clone(), until),
    ];
    if let Some(Ok(r)) = extra.refresh_token.as_deref().map(|t| auth.verify(t)) {
        revoke.push((Kind::Token, r.jti, r.exp));
        revoke.push((Kind::Family, r.fam, until));
    }
    for (kind, id, exp) in revoke.into_iter().filter(|(_, id, _)| !id.is_empty()) {
        if let Err(e) = auth.revocations.revoke(kind, &id, exp).await {
            log::warn!("logout refused: {e}");
            return Handled::unavailable();
        }
    }
    Handled {
        flow: Flow::Reply(Reply::json(204, bytes::Bytes::new())),
        event: Some(AuthEvent::success("logout")),
    }
}

fn issue(auth: &Auth, user: &User, family: &Family, reason: &'static str) -> Handled {
    let pair = match auth.issue(user, family) {
        Ok(p) => p,
        Err(e) => {
            log::error!("token signing failed: {e}");
            return Handled::deny(ErrorCode::Internal, None);
        }
    };
    let body = serde_json::json!({
        "access_token": pair.access,
        "refresh_token": pair.refresh,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
    });
    Handled {
        flow: Flow::Reply(Reply::json(200, body.to_string())),
        event: Some(AuthEvent::success(reason)),
    }
}

#[cfg(test)]
mod tests;
