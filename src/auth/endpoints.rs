//! `POST /auth/login`, `/auth/refresh`, `/auth/logout` on the proxy listener.

use super::revocation::{now, Kind};
use super::{bearer, random_id, Auth, Denied};
use crate::metrics;
use crate::proxy::respond::{self, ErrorCode};
use crate::proxy::RequestCtx;
use bytes::{Bytes, BytesMut};
use pingora::prelude::*;
use pingora::proxy::Session;
use serde::Deserialize;
use std::sync::Arc;

/// Largest JSON body the endpoints read.
const MAX_BODY: usize = 16 * 1024;

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

/// Serves `/auth/<name>`; `Ok(false)` when the path is not one of ours.
pub async fn handle(session: &mut Session, ctx: &mut RequestCtx, auth: &Arc<Auth>) -> Result<bool> {
    let name = match session.req_header().uri.path() {
        "/auth/login" => "login",
        "/auth/refresh" => "refresh",
        "/auth/logout" => "logout",
        _ => return Ok(false),
    };
    if session.req_header().method != http::Method::POST {
        respond::error(
            session,
            ctx,
            ErrorCode::MethodNotAllowed,
            &[("allow", "POST")],
        )
        .await?;
        return Ok(true);
    }
    let Some(body) = read_body(session).await? else {
        respond::error(session, ctx, ErrorCode::PayloadTooLarge, &[]).await?;
        return Ok(true);
    };
    match name {
        "login" => login(session, ctx, auth, &body).await?,
        "refresh" => refresh(session, ctx, auth, &body).await?,
        _ => logout(session, ctx, auth, &body).await?,
    }
    Ok(true)
}

async fn read_body(session: &mut Session) -> Result<Option<Bytes>> {
    let mut body = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

async fn login(
    session: &mut Session,
    ctx: &mut RequestCtx,
    auth: &Arc<Auth>,
    body: &[u8],
) -> Result<()> {
    let Ok(req) = serde_json::from_slice::<Login>(body) else {
        metrics::auth("failure", "bad_request");
        return respond::error(session, ctx, ErrorCode::BadRequest, &[]).await;
    };
    if let Err(retry_after) = auth.login_limiter.attempt(&req.username, ctx.client_ip) {
        metrics::auth("failure", "rate_limited");
        let retry_after = retry_after.to_string();
        return respond::error(
            session,
            ctx,
            ErrorCode::RateLimited,
            &[("retry-after", &retry_after)],
        )
        .await;
    }
    let users = auth.users.clone();
    let user = tokio::task::spawn_blocking(move || users.check(&req.username, &req.password))
        .await
        .ok()
        .flatten();
    let Some(user) = user else {
        metrics::auth("failure", "invalid_credentials");
        return respond::error(session, ctx, ErrorCode::InvalidCredentials, &[]).await;
    };
    issue(
        session,
        ctx,
        auth,
        &user.username,
        &user.roles,
        &random_id(),
        "login",
    )
    .await
}

async fn refresh(
    session: &mut Session,
    ctx: &mut RequestCtx,
    auth: &Arc<Auth>,
    body: &[u8],
) -> Result<()> {
    let Ok(req) = serde_json::from_slice::<Refresh>(body) else {
        metrics::auth("failure", "bad_request");
        return respond::error(session, ctx, ErrorCode::BadRequest, &[]).await;
    };
    let claims = match auth.verify(&req.refresh_token) {
        Ok(c) if c.is_refresh() && !c.jti.is_empty() && !c.fam.is_empty() => c,
        Ok(_) => return deny(session, ctx, Denied::InvalidToken).await,
        Err(d) => return deny(session, ctx, d).await,
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
                return unavailable(session, ctx).await;
            }
            log::warn!(
                "refresh token reuse for subject {:?}: token family revoked",
                claims.sub
            );
            metrics::auth("failure", "reuse_detected");
            return respond::error(session, ctx, ErrorCode::InvalidToken, &[]).await;
        }
        Err(e) => {
            log::warn!("refresh refused: {e}");
            return unavailable(session, ctx).await;
        }
    }
    issue(
        session,
        ctx,
        auth,
        &claims.sub,
        &claims.roles,
        &claims.fam,
        "refresh",
    )
    .await
}

async fn logout(
    session: &mut Session,
    ctx: &mut RequestCtx,
    auth: &Arc<Auth>,
    body: &[u8],
) -> Result<()> {
    let access = match bearer(session.req_header()).map(|t| auth.verify(t)) {
        Some(Ok(c)) if !c.is_refresh() => c,
        Some(Ok(_)) => return deny(session, ctx, Denied::RefreshAsAccess).await,
        Some(Err(d)) => return deny(session, ctx, d).await,
        None => return deny(session, ctx, Denied::Missing).await,
    };
    let extra = if body.is_empty() {
        Logout::default()
    } else {
        match serde_json::from_slice::<Logout>(body) {
            Ok(l) => l,
            Err(_) => return respond::error(session, ctx, ErrorCode::BadRequest, &[]).await,
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
            return unavailable(session, ctx).await;
        }
    }
    metrics::auth("success", "logout");
    ctx.verdict = crate::proxy::ctx::Verdict::Local;
    respond::json(session, ctx, 204, Bytes::new(), &[]).await
}

async fn issue(
    session: &mut Session,
    ctx: &mut RequestCtx,
    auth: &Auth,
    sub: &str,
    roles: &[String],
    fam: &str,
    reason: &str,
) -> Result<()> {
    let pair = match auth.issue(sub, roles, fam) {
        Ok(p) => p,
        Err(e) => {
            log::error!("token signing failed: {e}");
            return respond::error(session, ctx, ErrorCode::Internal, &[]).await;
        }
    };
    metrics::auth("success", reason);
    let body = serde_json::json!({
        "access_token": pair.access,
        "refresh_token": pair.refresh,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
    });
    ctx.verdict = crate::proxy::ctx::Verdict::Local;
    respond::json(session, ctx, 200, Bytes::from(body.to_string()), &[]).await
}

/// A 401 for a refused token, counted.
pub async fn deny(session: &mut Session, ctx: &mut RequestCtx, denied: Denied) -> Result<()> {
    metrics::auth("failure", denied.reason());
    let code = match denied {
        Denied::Missing => ErrorCode::Unauthorized,
        Denied::Expired => ErrorCode::TokenExpired,
        Denied::InvalidApiKey => ErrorCode::InvalidCredentials,
        Denied::InvalidToken | Denied::Revoked | Denied::RefreshAsAccess => ErrorCode::InvalidToken,
    };
    respond::error(session, ctx, code, &[]).await
}

async fn unavailable(session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
    metrics::auth("failure", "store_unavailable");
    respond::error(
        session,
        ctx,
        ErrorCode::StoreUnavailable,
        &[("retry-after", "1")],
    )
    .await
}
