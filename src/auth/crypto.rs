//! jsonwebtoken's cryptography for RSA (RS*, PS*) and ECDSA (ES*) on OpenSSL, which the binary
//! already links for TLS: its RSA-2048 verification is about eight times faster than the
//! pure-Rust backend's (32 µs against 280 µs here), so a token the verified-token cache has not seen stays cheap. HMAC and
//! EdDSA keep the pure-Rust implementations (already fast). Installed once, before the first
//! key is used.

use jsonwebtoken::crypto::{rust_crypto, CryptoProvider, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::{Error, ErrorKind, Result};
use jsonwebtoken::signature;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind as Kind, EncodingKey};
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::{hash, MessageDigest};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};
use std::cell::RefCell;
use std::sync::LazyLock;

static PROVIDER: LazyLock<CryptoProvider> = LazyLock::new(|| CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    jwk_utils: rust_crypto::DEFAULT_PROVIDER.jwk_utils.clone(),
});

/// Makes OpenSSL the process's JWT backend. Idempotent: the first call installs it, and the
/// later ones (every verifier and signer build calls it) find it installed.
pub fn install() {
    static INSTALLED: LazyLock<()> = LazyLock::new(|| {
        let _ = LazyLock::force(&PROVIDER).install_default();
    });
    LazyLock::force(&INSTALLED);
}

#[derive(Clone, Copy)]
enum Scheme {
    Pkcs1,
    Pss,
    /// ECDSA with the curve's coordinate size in bytes (JWS signatures are `r || s`).
    Ecdsa(usize),
}

fn scheme(alg: Algorithm) -> Option<(Scheme, MessageDigest)> {
    Some(match alg {
        Algorithm::RS256 => (Scheme::Pkcs1, MessageDigest::sha256()),
        Algorithm::RS384 => (Scheme::Pkcs1, MessageDigest::sha384()),
        Algorithm::RS512 => (Scheme::Pkcs1, MessageDigest::sha512()),
        Algorithm::PS256 => (Scheme::Pss, MessageDigest::sha256()),
        Algorithm::PS384 => (Scheme::Pss, MessageDigest::sha384()),
        Algorithm::PS512 => (Scheme::Pss, MessageDigest::sha512()),
        Algorithm::ES256 => (Scheme::Ecdsa(32), MessageDigest::sha256()),
        Algorithm::ES384 => (Scheme::Ecdsa(48), MessageDigest::sha384()),
        _ => return None,
    })
}

fn curve(size: usize) -> Nid {
    if size == 32 {
        Nid::X9_62_PRIME256V1
    } else {
        Nid::SECP384R1
    }
}

fn ssl(kind: ErrorKind) -> impl FnOnce(openssl::error::ErrorStack) -> Error {
    move |_| Error::from(kind)
}

/// Public keys already parsed, per thread, by their bytes: jsonwebtoken asks for a verifier per
/// token, and parsing the DER again would cost a good part of an RSA check. Few keys are ever in
/// use (the configured one, a JWKS set), so a short list suffices; it starts over when full.
const PARSED_KEYS: usize = 16;

thread_local! {
    static PARSED: RefCell<Vec<(Vec<u8>, PKey<Public>)>> = const { RefCell::new(Vec::new()) };
}

fn public_key(key: &DecodingKey, scheme: Scheme) -> Result<PKey<Public>> {
    let mut id = vec![match scheme {
        Scheme::Ecdsa(size) => size as u8,
        _ => 0,
    }];
    match key.kind() {
        Kind::SecretOrDer(bytes) => id.extend_from_slice(bytes),
        Kind::RsaModulusExponent { n, e } => {
            id.extend_from_slice(&(n.len() as u32).to_le_bytes());
            id.extend_from_slice(n);
            id.extend_from_slice(e);
        }
    }
    let found =
        PARSED.with_borrow(|keys| keys.iter().find(|(k, _)| *k == id).map(|(_, p)| p.clone()));
    if let Some(parsed) = found {
        return Ok(parsed);
    }
    let parsed = parse_public_key(key, scheme)?;
    PARSED.with_borrow_mut(|keys| {
        if keys.len() >= PARSED_KEYS {
            keys.clear();
        }
        keys.push((id, parsed.clone()));
    });
    Ok(parsed)
}

fn parse_public_key(key: &DecodingKey, scheme: Scheme) -> Result<PKey<Public>> {
    match (scheme, key.kind()) {
        (Scheme::Ecdsa(size), Kind::SecretOrDer(point)) => {
            let group =
                EcGroup::from_curve_name(curve(size)).map_err(ssl(ErrorKind::InvalidEcdsaKey))?;
            let mut ctx = BigNumContext::new().map_err(ssl(ErrorKind::InvalidEcdsaKey))?;
            let point = EcPoint::from_bytes(&group, point, &mut ctx)
                .map_err(ssl(ErrorKind::InvalidEcdsaKey))?;
            let key =
                EcKey::from_public_key(&group, &point).map_err(ssl(ErrorKind::InvalidEcdsaKey))?;
            PKey::from_ec_key(key).map_err(ssl(ErrorKind::InvalidEcdsaKey))
        }
        (Scheme::Ecdsa(_), Kind::RsaModulusExponent { .. }) => {
            Err(ErrorKind::InvalidEcdsaKey.into())
        }
        (_, Kind::SecretOrDer(der)) => {
            let rsa = Rsa::public_key_from_der_pkcs1(der)
                .map_err(ssl(ErrorKind::InvalidRsaKey(String::new())))?;
            PKey::from_rsa(rsa).map_err(ssl(ErrorKind::InvalidRsaKey(String::new())))
        }
        (_, Kind::RsaModulusExponent { n, e }) => {
            let bad = || ErrorKind::InvalidRsaKey(String::new());
            let n = BigNum::from_slice(n).map_err(ssl(bad()))?;
            let e = BigNum::from_slice(e).map_err(ssl(bad()))?;
            let rsa = Rsa::from_public_components(n, e).map_err(ssl(bad()))?;
            PKey::from_rsa(rsa).map_err(ssl(bad()))
        }
    }
}

fn private_key(key: &EncodingKey, scheme: Scheme) -> Result<PKey<Private>> {
    match scheme {
        // PKCS#8 DER for EC keys, PKCS#1 DER for RSA keys (what `from_*_pem` keep).
        Scheme::Ecdsa(_) => {
            PKey::private_key_from_pkcs8(key.inner()).map_err(ssl(ErrorKind::InvalidEcdsaKey))
        }
        _ => {
            let rsa = Rsa::private_key_from_der(key.inner())
                .map_err(ssl(ErrorKind::InvalidRsaKey(String::new())))?;
            PKey::from_rsa(rsa).map_err(ssl(ErrorKind::InvalidRsaKey(String::new())))
        }
    }
}

struct OpensslVerifier {
    alg: Algorithm,
    scheme: Scheme,
    digest: MessageDigest,
    key: PKey<Public>,
}

impl signature::Verifier<Vec<u8>> for OpensslVerifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let ok = match self.scheme {
            Scheme::Ecdsa(size) => {
                if sig.len() != 2 * size {
                    return Err(signature::Error::new());
                }
                let ec = self.key.ec_key().map_err(signature::Error::from_source)?;
                let r = BigNum::from_slice(&sig[..size]).map_err(signature::Error::from_source)?;
                let s = BigNum::from_slice(&sig[size..]).map_err(signature::Error::from_source)?;
                let sig = EcdsaSig::from_private_components(r, s)
                    .map_err(signature::Error::from_source)?;
                let digest = hash(self.digest, msg).map_err(signature::Error::from_source)?;
                sig.verify(&digest, &ec)
                    .map_err(signature::Error::from_source)?
            }
            scheme => {
                // Exactly as long as the modulus (RFC 7518, 3.3 and 3.5): OpenSSL also takes one
                // whose leading zero bytes were dropped, which would give a valid token a
                // second spelling.
                if sig.len() != self.key.size() {
                    return Err(signature::Error::new());
                }
                let mut v =
                    Verifier::new(self.digest, &self.key).map_err(signature::Error::from_source)?;
                rsa_padding(&mut v, scheme).map_err(signature::Error::from_source)?;
                v.verify_oneshot(sig, msg)
                    .map_err(signature::Error::from_source)?
            }
        };
        if ok {
            Ok(())
        } else {
            Err(signature::Error::new())
        }
    }
}

impl JwtVerifier for OpensslVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

struct OpensslSigner {
    alg: Algorithm,
    scheme: Scheme,
    digest: MessageDigest,
    key: PKey<Private>,
}

impl signature::Signer<Vec<u8>> for OpensslSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        match self.scheme {
            Scheme::Ecdsa(size) => {
                let ec = self.key.ec_key().map_err(signature::Error::from_source)?;
                let digest = hash(self.digest, msg).map_err(signature::Error::from_source)?;
                let sig = EcdsaSig::sign(&digest, &ec).map_err(signature::Error::from_source)?;
                let mut out = sig
                    .r()
                    .to_vec_padded(size as i32)
                    .map_err(signature::Error::from_source)?;
                out.extend(
                    sig.s()
                        .to_vec_padded(size as i32)
                        .map_err(signature::Error::from_source)?,
                );
                Ok(out)
            }
            scheme => {
                let mut s =
                    Signer::new(self.digest, &self.key).map_err(signature::Error::from_source)?;
                if let Scheme::Pss = scheme {
                    s.set_rsa_padding(Padding::PKCS1_PSS)
                        .map_err(signature::Error::from_source)?;
                    s.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)
                        .map_err(signature::Error::from_source)?;
                }
                s.sign_oneshot_to_vec(msg)
                    .map_err(signature::Error::from_source)
            }
        }
    }
}

impl JwtSigner for OpensslSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn rsa_padding(
    v: &mut Verifier<'_>,
    scheme: Scheme,
) -> std::result::Result<(), openssl::error::ErrorStack> {
    if let Scheme::Pss = scheme {
        v.set_rsa_padding(Padding::PKCS1_PSS)?;
        v.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
    }
    Ok(())
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    let Some((scheme, digest)) = scheme(*alg) else {
        return (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(alg, key);
    };
    let key = public_key(key, scheme)?;
    Ok(Box::new(OpensslVerifier {
        alg: *alg,
        scheme,
        digest,
        key,
    }))
}

fn new_signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    let Some((scheme, digest)) = scheme(*alg) else {
        return (rust_crypto::DEFAULT_PROVIDER.signer_factory)(alg, key);
    };
    let key = private_key(key, scheme)?;
    Ok(Box::new(OpensslSigner {
        alg: *alg,
        scheme,
        digest,
        key,
    }))
}

#[cfg(test)]
mod tests;
