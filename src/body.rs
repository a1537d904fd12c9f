//! Reading a whole request body, up to a limit, for the endpoints the gateway answers itself.

use bytes::{Bytes, BytesMut};
use pingora::protocols::http::ServerSession;
use pingora::Result;

/// The body, or `Ok(None)` once it grows past `limit` (the rest is left unread).
pub async fn read_limited(session: &mut ServerSession, limit: usize) -> Result<Option<Bytes>> {
    let mut body = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}
