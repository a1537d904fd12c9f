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
