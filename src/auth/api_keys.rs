//! `X-API-Key` authentication against SHA-256 hashes, compared in constant time.

use super::claims::Caller;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone)]
struct ApiKey {
    hash: [u8; 32],
    /// The identity the key stands for, made once.
    caller: Arc<Caller>,
}

#[derive(Debug, Default, Clone)]
pub struct ApiKeys(Vec<ApiKey>);

impl ApiKeys {
    /// The keys of the file, each with its SHA-256 decoded and its identity checked by
    /// `auth::build`.
    pub fn new(list: Vec<([u8; 32], Caller)>) -> ApiKeys {
        ApiKeys(
            list.into_iter()
                .map(|(hash, caller)| ApiKey {
                    hash,
                    caller: Arc::new(caller),
                })
                .collect(),
        )
    }

    /// The key's identity when `key` matches one. Every configured hash is compared, in
    /// constant time, so the answer time does not tell which one came close.
    pub fn check(&self, key: &[u8]) -> Option<&Arc<Caller>> {
        let digest: [u8; 32] = Sha256::digest(key).into();
        let mut found = None;
        for k in &self.0 {
            if bool::from(k.hash.ct_eq(&digest)) {
                found = Some(&k.caller);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::ApiKeyConfig;

    #[test]
    fn matches_by_hash_only() {
        let hash: [u8; 32] = Sha256::digest(b"k-123").into();
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        let cfg = ApiKeyConfig {
            name: "ci".into(),
            key_hash: format!("sha256:{hex}"),
            roles: vec!["user".into()],
        };
        let caller = Caller::new(cfg.name.clone(), cfg.roles.clone()).expect("valid");
        let keys = ApiKeys::new(vec![(hash, caller)]);
        assert_eq!(keys.check(b"k-123").map(|c| c.subject.as_str()), Some("ci"));
        assert!(keys.check(b"k-124").is_none());
        assert!(
            keys.check(hex.as_bytes()).is_none(),
            "the hash itself is not a key"
        );
    }
}
