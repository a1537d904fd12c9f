//! Token verification and signing with `jsonwebtoken`. Only the configured algorithm is
//! accepted (no `none`, no HS/RS confusion); `exp`, `nbf` (with leeway), `iss` and `aud` are
//! checked; oversized tokens are refused before any parsing.

use super::claims::Claims;
use super::jwks::Jwks;
use crate::config::file::{JwtAlgorithm, JwtConfig};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use std::sync::Arc;

/// Longest token looked at.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Expired,
    Invalid,
}

pub enum Keys {
    Static(DecodingKey),
    Jwks(Arc<Jwks>),
}

pub struct JwtVerifier {
    keys: Keys,
    validation: Validation,
}

pub struct JwtSigner {
    key: EncodingKey,
    header: Header,
}

pub fn algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::HS384 => Algorithm::HS384,
        JwtAlgorithm::HS512 => Algorithm::HS512,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

fn read_pem(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))
}

impl JwtVerifier {
    /// Builds the verifier; `jwks` is the key set when `jwks_url` is configured.
    pub fn build(cfg: &JwtConfig, jwks: Option<Arc<Jwks>>) -> Result<JwtVerifier, String> {
        let alg = algorithm(cfg.algorithm);
        let keys = match (jwks, cfg.algorithm.is_hmac()) {
            (Some(set), _) => Keys::Jwks(set),
            (None, true) => Keys::Static(DecodingKey::from_secret(
                cfg.secret.as_deref().unwrap_or_default().as_bytes(),
            )),
            (None, false) => {
                let path = cfg
                    .public_key_file
                    .as_deref()
                    .ok_or("public_key_file is required")?;
                let pem = read_pem(path)?;
                let key = match cfg.algorithm {
                    JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                    JwtAlgorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                    _ => DecodingKey::from_rsa_pem(&pem),
                };
                Keys::Static(key.map_err(|e| format!("{path}: {e}"))?)
            }
        };
        let mut validation = Validation::new(alg);
        validation.leeway = cfg.leeway.map_or(30, |d| d.0.as_secs());
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &cfg.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &cfg.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Ok(JwtVerifier { keys, validation })
    }

    /// Verifies `token` and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let result = match &self.keys {
            Keys::Static(key) => jsonwebtoken::decode::<Claims>(token, key, &self.validation),
            Keys::Jwks(set) => {
                let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
                let key = set.key(header.kid.as_deref()).ok_or(TokenError::Invalid)?;
                jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            }
        };
        match result {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(TokenError::Expired),
            Err(_) => Err(TokenError::Invalid),
        }
    }
}

impl JwtSigner {
    /// The signer for issued tokens; `None` in verify-only (JWKS) mode or without a private key.
    pub fn build(cfg: &JwtConfig) -> Result<Option<JwtSigner>, String> {
        if cfg.jwks_url.is_some() {
            return Ok(None);
        }
        let key = if cfg.algorithm.is_hmac() {
            EncodingKey::from_secret(cfg.secret.as_deref().unwrap_or_default().as_bytes())
        } else {
            let Some(path) = cfg.private_key_file.as_deref() else {
                return Ok(None);
            };
            let pem = read_pem(path)?;
            let key = match cfg.algorithm {
                JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => EncodingKey::from_ec_pem(&pem),
                JwtAlgorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                _ => EncodingKey::from_rsa_pem(&pem),
            };
            key.map_err(|e| format!("{path}: {e}"))?
        };
        Ok(Some(JwtSigner {
            key,
            header: Header::new(algorithm(cfg.algorithm)),
        }))
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, String> {
        jsonwebtoken::encode(&self.header, claims, &self.key).map_err(|e| e.to_string())
    }
}
