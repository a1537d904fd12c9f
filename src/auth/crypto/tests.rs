//! Each OpenSSL signature is checked by the pure-Rust implementation and the other way round,
//! so the two backends agree on every algorithm the provider takes over.

use super::*;
use openssl::ec::EcKey;

struct Pair {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

fn rsa_pair() -> Pair {
    let key = PKey::from_rsa(Rsa::generate(2048).expect("generate")).expect("pkey");
    Pair {
        encoding: EncodingKey::from_rsa_pem(&key.private_key_to_pem_pkcs8().expect("pem"))
            .expect("encoding"),
        decoding: DecodingKey::from_rsa_pem(&key.public_key_to_pem().expect("pem"))
            .expect("decoding"),
    }
}

fn ec_pair(nid: Nid) -> Pair {
    let group = EcGroup::from_curve_name(nid).expect("group");
    let key = PKey::from_ec_key(EcKey::generate(&group).expect("generate")).expect("pkey");
    Pair {
        encoding: EncodingKey::from_ec_pem(&key.private_key_to_pem_pkcs8().expect("pem"))
            .expect("encoding"),
        decoding: DecodingKey::from_ec_pem(&key.public_key_to_pem().expect("pem"))
            .expect("decoding"),
    }
}

const MESSAGE: &[u8] = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";

fn cross_check(alg: Algorithm, pair: &Pair) {
    let ours = new_signer(&alg, &pair.encoding)
        .expect("signer")
        .try_sign(MESSAGE)
        .expect("sign");
    let theirs = (rust_crypto::DEFAULT_PROVIDER.signer_factory)(&alg, &pair.encoding)
        .expect("signer")
        .try_sign(MESSAGE)
        .expect("sign");
    let verify_ours = new_verifier(&alg, &pair.decoding).expect("verifier");
    let verify_theirs =
        (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(&alg, &pair.decoding).expect("verifier");
    for sig in [&ours, &theirs] {
        assert!(
            verify_ours.verify(MESSAGE, sig).is_ok(),
            "{alg:?}: ours refuses a good signature"
        );
        assert!(
            verify_theirs.verify(MESSAGE, sig).is_ok(),
            "{alg:?}: pure Rust refuses ours"
        );
        assert!(
            verify_ours.verify(b"another message", sig).is_err(),
            "{alg:?}: other message"
        );
        let mut flipped = sig.clone();
        flipped[5] ^= 1;
        assert!(
            verify_ours.verify(MESSAGE, &flipped).is_err(),
            "{alg:?}: flipped bit accepted"
        );
        assert!(
            verify_ours.verify(MESSAGE, &sig[1..].to_vec()).is_err(),
            "{alg:?}: short signature"
        );
        assert!(
            verify_ours.verify(MESSAGE, &Vec::new()).is_err(),
            "{alg:?}: empty signature"
        );
    }
}

#[test]
fn rsa_pkcs1_and_pss_agree_with_the_pure_rust_backend() {
    let pair = rsa_pair();
    for alg in [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ] {
        cross_check(alg, &pair);
    }
}

#[test]
fn an_rsa_signature_without_its_leading_zero_byte_is_refused() {
    let pair = rsa_pair();
    let signer = new_signer(&Algorithm::PS256, &pair.encoding).expect("signer");
    let verifier = new_verifier(&Algorithm::PS256, &pair.decoding).expect("verifier");
    // PSS signatures are salted: about one in 256 starts with a zero byte.
    let sig = (0..5000)
        .map(|_| signer.try_sign(MESSAGE).expect("sign"))
        .find(|s| s[0] == 0)
        .expect("a signature with a leading zero byte");
    assert!(verifier.verify(MESSAGE, &sig).is_ok());
    assert!(verifier.verify(MESSAGE, &sig[1..].to_vec()).is_err());
}

#[test]
fn ecdsa_agrees_with_the_pure_rust_backend() {
    cross_check(Algorithm::ES256, &ec_pair(Nid::X9_62_PRIME256V1));
    cross_check(Algorithm::ES384, &ec_pair(Nid::SECP384R1));
}

#[test]
fn a_key_of_the_wrong_kind_or_curve_is_refused() {
    let p256 = ec_pair(Nid::X9_62_PRIME256V1);
    let rsa = rsa_pair();
    assert!(new_verifier(&Algorithm::ES384, &p256.decoding).is_err());
    assert!(new_verifier(&Algorithm::RS256, &p256.decoding).is_err());
    assert!(new_verifier(&Algorithm::ES256, &rsa.decoding).is_err());
    let sig = new_signer(&Algorithm::ES256, &p256.encoding)
        .expect("signer")
        .try_sign(MESSAGE)
        .expect("sign");
    let other = ec_pair(Nid::X9_62_PRIME256V1);
    let verifier = new_verifier(&Algorithm::ES256, &other.decoding).expect("verifier");
    assert!(
        verifier.verify(MESSAGE, &sig).is_err(),
        "another key's signature accepted"
    );
}

#[test]
fn rsa_keys_from_jwk_components_verify() {
    let rsa = Rsa::generate(2048).expect("generate");
    let decoding = DecodingKey::from_rsa_raw_components(&rsa.n().to_vec(), &rsa.e().to_vec());
    let pkey = PKey::from_rsa(rsa).expect("pkey");
    let encoding = EncodingKey::from_rsa_pem(&pkey.private_key_to_pem_pkcs8().expect("pem"))
        .expect("encoding");
    let sig = new_signer(&Algorithm::RS256, &encoding)
        .expect("signer")
        .try_sign(MESSAGE)
        .expect("sign");
    assert!(new_verifier(&Algorithm::RS256, &decoding)
        .expect("verifier")
        .verify(MESSAGE, &sig)
        .is_ok());
}

#[test]
fn hmac_stays_with_the_pure_rust_backend_and_verifies() {
    let encoding = EncodingKey::from_secret(b"secret");
    let decoding = DecodingKey::from_secret(b"secret");
    let sig = new_signer(&Algorithm::HS256, &encoding)
        .expect("signer")
        .try_sign(MESSAGE)
        .expect("sign");
    assert!(new_verifier(&Algorithm::HS256, &decoding)
        .expect("verifier")
        .verify(MESSAGE, &sig)
        .is_ok());
    let wrong = DecodingKey::from_secret(b"other");
    assert!(new_verifier(&Algorithm::HS256, &wrong)
        .expect("verifier")
        .verify(MESSAGE, &sig)
        .is_err());
}
