//! `GET /api/config`: the running config with every secret, hash and key replaced, and the
//! credentials of any URL (`redis://:password@host`) removed.

use crate::config::FileConfig;
use serde_json::Value;

pub const REDACTED: &str = "[redacted]";

/// Keys whose values are secret wherever they appear.
const SECRET_KEYS: [&str; 5] = ["secret", "password_hash", "key_hash", "password", "key"];

pub fn redacted(file: &FileConfig) -> Value {
    let mut value = serde_json::to_value(file).unwrap_or(Value::Null);
    walk(&mut value);
    value
}

fn walk(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if SECRET_KEYS.contains(&k.as_str()) && v.is_string() {
                    *v = Value::String(REDACTED.to_owned());
                } else {
                    walk(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(walk),
        Value::String(s) => {
            if let Some(clean) = without_credentials(s) {
                *s = clean;
            }
        }
        _ => {}
    }
}

/// `scheme://user:pass@host/path?query` → `scheme://[redacted]@host/path?[redacted]`: the
/// credentials and the query (where tokens travel) go; `None` when there is neither.
fn without_credentials(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = authority.rfind('@').map(|at| &authority[at + 1..]);
    let path = tail.split(['?', '#']).next().unwrap_or("");
    let query = tail.len() > path.len();
    if host.is_none() && !query {
        return None;
    }
    let mut out = format!("{scheme}://");
    if let Some(host) = host {
        out.push_str(REDACTED);
        out.push('@');
        out.push_str(host);
    } else {
        out.push_str(authority);
    }
    out.push_str(path);
    if query {
        out.push('?');
        out.push_str(REDACTED);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    #[test]
    fn every_secret_kind_is_replaced() {
        let text = r#"
redis: {url: "redis://:hunter2@127.0.0.1:6379/0"}
admin: {prometheus_url: "http://ops:s3cret@127.0.0.1:9091"}
auth:
  jwt: {algorithm: HS256, secret: "0123456789abcdef0123456789abcdef", jwks_url: "https://idp.example/keys?api_key=jw7s3cret"}
  users: [{username: admin, password_hash: "$argon2id$v=19$m=19456,t=2,p=1$abc$def", roles: [admin]}]
  api_keys: [{name: ci, key_hash: "sha256:0000000000000000000000000000000000000000000000000000000000000000"}]
upstreams: {u: {backends: [{addr: 127.0.0.1:1}]}}
routes: [{name: r, path: /, upstream: u}]
"#;
        let parsed = parse_str(text, |_| None);
        let out = redacted(&parsed.file).to_string();
        for secret in [
            "hunter2",
            "s3cret",
            "ops:",
            "0123456789abcdef",
            "argon2id",
            "sha256:",
        ] {
            assert!(!out.contains(secret), "{secret} leaked: {out}");
        }
        assert!(out.contains("redis://[redacted]@127.0.0.1:6379/0"), "{out}");
        assert!(
            out.contains("https://idp.example/keys"),
            "URLs without credentials stay"
        );
        assert!(out.contains("\"username\":\"admin\""), "names stay");
    }
}
