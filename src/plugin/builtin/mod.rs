//! The gateway's own middlewares, written on the public API like any program's.

mod basic_auth;
mod compress;
mod fixed;
mod forward_auth;
mod headers;
mod hmac_auth;
mod mirror;
mod redirect;
mod rewrite;

use super::Registry;
use http::HeaderName;

/// A header about one connection or the message's framing, which a message built anew (a copy,
/// an answer passed on) must not carry over: the gateway frames what it sends itself.
fn framing(name: &HeaderName) -> bool {
    use http::header::*;
    [
        CONNECTION,
        TRANSFER_ENCODING,
        CONTENT_LENGTH,
        UPGRADE,
        TE,
        TRAILER,
    ]
    .contains(name)
        || name.as_str() == "keep-alive"
}

/// Registers every built-in middleware under its config name.
pub fn register(registry: &mut Registry) {
    registry
        .middleware::<headers::RequestHeaders>("request_headers")
        .middleware::<headers::ResponseHeaders>("response_headers")
        .middleware::<rewrite::PathRewrite>("path_rewrite")
        .middleware::<redirect::Redirect>("redirect")
        .middleware::<fixed::FixedResponse>("fixed_response")
        .middleware::<compress::Compression>("compression")
        .middleware::<basic_auth::BasicAuth>("basic_auth")
        .middleware::<forward_auth::ForwardAuth>("forward_auth")
        .middleware::<hmac_auth::HmacAuth>("hmac_auth")
        .middleware::<mirror::Mirror>("request_mirror");
}
