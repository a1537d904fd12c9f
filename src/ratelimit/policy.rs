//! One `rate_limit` block (global, group or route) checked and parsed once, and the merge of
//! the three levels into a route's policy.

use crate::config::file::{OnStoreError, RateLimitAlgorithm, RateLimitConfig, StoreKind};
use crate::config::units::Rate;
use crate::config::ConfigErrors;

/// A problem in a `rate_limit` block.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error("must be at least 1")]
    ZeroBurst,
    #[error("redis store needs the redis section")]
    NoRedis,
    #[error("unknown key part {0:?}: expected client_ip, user, path, route or header:<Name>")]
    KeyPart(String),
}

/// What a limit key is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    ClientIp,
    User,
    Path,
    Route,
    Header(http::HeaderName),
}

impl KeyPart {
    /// Its config name.
    pub fn name(&self) -> String {
        match self {
            KeyPart::ClientIp => "client_ip".into(),
            KeyPart::User => "user".into(),
            KeyPart::Path => "path".into(),
            KeyPart::Route => "route".into(),
            KeyPart::Header(h) => format!("header:{h}"),
        }
    }

    /// A key part by its config name (`client_ip`, `user`, `path`, `route`, `header:<Name>`).
    pub fn parse(text: &str) -> Option<KeyPart> {
        Some(match text {
            "client_ip" => KeyPart::ClientIp,
            "user" => KeyPart::User,
            "path" => KeyPart::Path,
            "route" => KeyPart::Route,
            other => KeyPart::Header(
                http::HeaderName::from_bytes(other.strip_prefix("header:")?.as_bytes()).ok()?,
            ),
        })
    }
}

/// One level's settings; `None` fields are taken from the level above.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Level {
    pub enabled: Option<bool>,
    pub store: Option<StoreKind>,
    pub algorithm: Option<RateLimitAlgorithm>,
    pub rate: Option<Rate>,
    pub burst: Option<u64>,
    pub key: Option<Vec<KeyPart>>,
    pub on_store_error: Option<OnStoreError>,
}

impl Level {
    /// Checks the block at `path` and parses it; `has_redis` tells whether the file has a
    /// `redis` section. Problems are pushed; the parts that parsed are kept.
    pub fn parse(
        path: &str,
        cfg: &RateLimitConfig,
        has_redis: bool,
        errors: &mut ConfigErrors,
    ) -> Level {
        if cfg.burst == Some(0) {
            errors.push(format!("{path}.burst"), RateLimitError::ZeroBurst);
        }
        if cfg.store == Some(StoreKind::Redis) && !has_redis {
            errors.push(format!("{path}.store"), RateLimitError::NoRedis);
        }
        let key = cfg.key.as_ref().map(|names| {
            let mut parts = Vec::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                match KeyPart::parse(name) {
                    Some(p) => parts.push(p),
                    None => errors.push(
                        format!("{path}.key[{i}]"),
                        RateLimitError::KeyPart(name.clone()),
                    ),
                }
            }
            parts
        });
        Level {
            enabled: cfg.enabled,
            store: cfg.store,
            algorithm: cfg.algorithm,
            rate: cfg.rate,
            burst: cfg.burst,
            key,
            on_store_error: cfg.on_store_error,
        }
    }

    /// Global, then group, then route: each level overrides the fields it sets. `None` when no
    /// level has a block or the result is disabled.
    pub fn merge(levels: [Option<&Level>; 3]) -> Option<Level> {
        if levels.iter().all(Option::is_none) {
            return None;
        }
        let mut out = Level::default();
        for l in levels.into_iter().flatten() {
            out.enabled = l.enabled.or(out.enabled);
            out.store = l.store.or(out.store);
            out.algorithm = l.algorithm.or(out.algorithm);
            out.rate = l.rate.or(out.rate);
            out.burst = l.burst.or(out.burst);
            out.key = l.key.clone().or(out.key);
            out.on_store_error = l.on_store_error.or(out.on_store_error);
        }
        (out.enabled != Some(false)).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn level(yaml: &str) -> Level {
        let cfg: RateLimitConfig = serde_yaml::from_str(yaml).expect("block");
        let mut errors = ConfigErrors::default();
        let l = Level::parse("rl", &cfg, true, &mut errors);
        assert!(errors.is_empty(), "{errors}");
        l
    }

    #[test]
    fn levels_override_field_by_field() {
        let global = level("{rate: 100/s, burst: 200, key: [client_ip]}");
        let group = level("{rate: 10/s}");
        let route = level("{burst: 5, key: [user, 'header:X-Tenant']}");
        let merged = Level::merge([Some(&global), Some(&group), Some(&route)]).expect("on");
        assert_eq!(
            merged.rate,
            Some(Rate {
                count: 10,
                per: Duration::from_secs(1)
            })
        );
        assert_eq!(merged.burst, Some(5));
        assert_eq!(
            merged.key,
            Some(vec![
                KeyPart::User,
                KeyPart::Header(http::HeaderName::from_static("x-tenant"))
            ])
        );

        let off = level("{enabled: false}");
        assert!(Level::merge([Some(&global), Some(&off), None]).is_none());
        let back_on = level("{enabled: true}");
        assert!(Level::merge([Some(&global), Some(&off), Some(&back_on)]).is_some());
        assert!(Level::merge([None, None, None]).is_none());
        assert!(Level::merge([None, None, Some(&route)]).is_some());
    }

    #[test]
    fn every_bad_field_is_reported() {
        let cfg: RateLimitConfig = serde_yaml::from_str(
            "{burst: 0, store: redis, key: [client_ip, cookie, 'header:a b']}",
        )
        .expect("block");
        let mut errors = ConfigErrors::default();
        let l = Level::parse("routes[3].rate_limit", &cfg, false, &mut errors);
        let text = errors.to_string();
        for needle in [
            "routes[3].rate_limit.burst: must be at least 1",
            "routes[3].rate_limit.store: redis store needs the redis section",
            "routes[3].rate_limit.key[1]: unknown key part \"cookie\"",
            "routes[3].rate_limit.key[2]: unknown key part",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert_eq!(l.key, Some(vec![KeyPart::ClientIp]));
    }
}
