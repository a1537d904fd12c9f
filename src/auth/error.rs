//! The auth section's errors: problems in the config, and failures to issue tokens.

use crate::config::file::JwtAlgorithm;

/// A problem in the `auth` section.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("required for {0:?}")]
    SecretRequired(JwtAlgorithm),
    #[error("not used with {0:?}: use key files")]
    SecretWithKeyFiles(JwtAlgorithm),
    #[error("{0:?} needs public_key_file or jwks_url")]
    NoPublicKey(JwtAlgorithm),
    #[error("duplicate user {0:?}")]
    DuplicateUser(String),
    #[error("expected an argon2id hash ($argon2id$...), never a plain password")]
    NotArgon2id,
    #[error("not a valid hash: {0}")]
    BadPasswordHash(String),
    #[error("duplicate key name {0:?}")]
    DuplicateKey(String),
    #[error("expected sha256:<64 lowercase hex digits>")]
    BadKeyHash,
    #[error("login needs jwt with a secret or private_key_file")]
    LoginWithoutSigner,
    #[error("cannot read {path}: {source}")]
    ReadKey {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    BadKey {
        path: String,
        source: jsonwebtoken::errors::Error,
    },
    #[error("{0}")]
    BadJwksUrl(String),
    #[error("this is the demo secret published in conf/gateway.yaml: set GATEWAY_JWT_SECRET (or run with --demo)")]
    DemoSecret,
    #[error("the window must be at least 1s")]
    ShortWindow,
    #[error("name and roles are sent in X-User-Id / X-User-Roles: no control characters")]
    NotHeaderSafe,
}

/// Tokens could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("this gateway does not issue tokens")]
    NoSigner,
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}
