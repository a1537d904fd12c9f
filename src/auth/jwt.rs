//! Token verification and signing with `jsonwebtoken`. Only the configured algorithm is
//! accepted (no `none`, no HS/RS confusion); `exp`, `nbf` (with leeway), `iss` and `aud` are
//! checked; oversized tokens are refused before any parsing.

use super::claims::Claims;
use super::error::AuthError;
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

enum Keys {
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

fn read_pem(path: &str) -> Result<Vec<u8>, AuthError> {
    std::fs::read(path).map_err(|source| AuthError::ReadKey {
        path: path.to_owned(),
        source,
    })
}

fn bad_key(path: &str) -> impl FnOnce(jsonwebtoken::errors::Error) -> AuthError + '_ {
    move |source| AuthError::BadKey {
        path: path.to_owned(),
        source,
    }
}

impl JwtVerifier {
    /// Builds the verifier; `jwks` is the key set when `jwks_url` is configured.
    pub fn build(cfg: &JwtConfig, jwks: Option<Arc<Jwks>>) -> Result<JwtVerifier, AuthError> {
        super::crypto::install();
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
                    .ok_or(AuthError::NoPublicKey(cfg.algorithm))?;
                let pem = read_pem(path)?;
                let key = match cfg.algorithm {
                    JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                    JwtAlgorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                    _ => DecodingKey::from_rsa_pem(&pem),
                };
                Keys::Static(key.map_err(bad_key(path))?)
            }
        };
        let mut validation = Validation::new(alg);
        validation.leeway = cfg.leeway.map_or(30, |d| d.0.as_secs());
        validation.validate_nbf = true;
        // A configured issuer or audience must be present, not only right when present.
        let mut required = vec!["exp", "sub"];
        required.extend(cfg.issuer.as_ref().map(|_| "iss"));
        required.extend(cfg.audience.as_ref().map(|_| "aud"));
        validation.set_required_spec_claims(&required);
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

    /// The key set, in verify-only (JWKS) mode.
    pub fn jwks(&self) -> Option<&Arc<Jwks>> {
        match &self.keys {
            Keys::Jwks(set) => Some(set),
            Keys::Static(_) => None,
        }
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
    pub fn build(cfg: &JwtConfig) -> Result<Option<JwtSigner>, AuthError> {
        super::crypto::install();
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
            key.map_err(bad_key(path))?
        };
        Ok(Some(JwtSigner {
            key,
            header: Header::new(algorithm(cfg.algorithm)),
        }))
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&self.header, claims, &self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey};
    use serde_json::json;

    const SECRET: &[u8] = b"test-secret-0123456789abcdef0123";

    fn verifier() -> JwtVerifier {
        let cfg: JwtConfig = serde_yaml::from_str(
            "{algorithm: HS256, secret: test-secret-0123456789abcdef0123, issuer: gw, audience: api, leeway: 5s}",
        )
        .expect("jwt section");
        JwtVerifier::build(&cfg, None).expect("verifier")
    }

    fn token(alg: Algorithm, key: &[u8], claims: serde_json::Value) -> String {
        encode(&Header::new(alg), &claims, &EncodingKey::from_secret(key)).expect("encode")
    }

    fn claims() -> serde_json::Value {
        let now = super::super::revocation::now();
        json!({"sub": "ann", "roles": ["user"], "iss": "gw", "aud": "api", "exp": now + 60, "iat": now, "jti": "j1", "fam": "f1", "typ": "access"})
    }

    fn with(mut c: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
        c[key] = value;
        c
    }

    fn without(mut c: serde_json::Value, key: &str) -> serde_json::Value {
        c.as_object_mut().expect("object").remove(key);
        c
    }

    #[test]
    fn accepts_a_good_token() {
        let claims = verifier()
            .verify(&token(Algorithm::HS256, SECRET, claims()))
            .expect("valid");
        assert_eq!(claims.sub, "ann");
        assert_eq!(claims.roles, ["user"]);
    }

    #[test]
    fn rejects_every_kind_of_bad_token() {
        let v = verifier();
        let now = super::super::revocation::now();
        let cases = [
            (
                "wrong key",
                token(
                    Algorithm::HS256,
                    b"another-secret-0123456789abcdef",
                    claims(),
                ),
            ),
            ("other HMAC alg", token(Algorithm::HS512, SECRET, claims())),
            (
                "wrong issuer",
                token(
                    Algorithm::HS256,
                    SECRET,
                    with(claims(), "iss", json!("evil")),
                ),
            ),
            (
                "wrong audience",
                token(
                    Algorithm::HS256,
                    SECRET,
                    with(claims(), "aud", json!("web")),
                ),
            ),
            (
                "no exp",
                token(Algorithm::HS256, SECRET, without(claims(), "exp")),
            ),
            (
                "no sub",
                token(Algorithm::HS256, SECRET, without(claims(), "sub")),
            ),
            (
                "not yet valid",
                token(
                    Algorithm::HS256,
                    SECRET,
                    with(claims(), "nbf", json!(now + 600)),
                ),
            ),
            ("garbage", "a.b.c".to_owned()),
            ("empty", String::new()),
            ("oversized", "a".repeat(MAX_TOKEN_LEN + 1)),
        ];
        for (what, t) in &cases {
            assert_eq!(v.verify(t).err(), Some(TokenError::Invalid), "{what}");
        }
        // alg=none: header {"alg":"none"}, the claims, and no signature.
        let b64 = |s: &str| {
            use std::fmt::Write;
            const T: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let bytes = s.as_bytes();
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let n = chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b))
                    << (8 * (3 - chunk.len()));
                for i in 0..=chunk.len() {
                    let _ = out.write_char(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                }
            }
            out
        };
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&claims().to_string())
        );
        assert_eq!(v.verify(&none).err(), Some(TokenError::Invalid), "alg none");
    }

    #[test]
    fn an_audience_list_containing_ours_is_accepted() {
        let t = token(
            Algorithm::HS256,
            SECRET,
            with(claims(), "aud", json!(["web", "api"])),
        );
        assert!(verifier().verify(&t).is_ok());
    }

    #[test]
    fn expiry_is_its_own_answer_and_honours_the_leeway() {
        let v = verifier();
        let now = super::super::revocation::now();
        let long_gone = token(
            Algorithm::HS256,
            SECRET,
            with(claims(), "exp", json!(now - 60)),
        );
        assert_eq!(v.verify(&long_gone).err(), Some(TokenError::Expired));
        let within_leeway = token(
            Algorithm::HS256,
            SECRET,
            with(claims(), "exp", json!(now - 2)),
        );
        assert!(v.verify(&within_leeway).is_ok(), "5 s leeway");
    }
}
