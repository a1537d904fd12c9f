//! Config problems, each with the path of the offending value.

use std::fmt;

/// One problem in the config, e.g. `routes[2].upstream: unknown upstream "billing"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    /// A problem at `path`. The message is scrubbed of secrets: the credentials of any URL in
    /// it, and every quoted value when the problem is about a secret (it goes to the log, to
    /// `gateway -t` and to the admin API's reload answer).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        let path = path.into();
        let message = scrub(&path, &message.into());
        Self { path, message }
    }
}

/// Config keys whose values are secret.
const SECRET_KEYS: [&str; 4] = ["secret", "password_hash", "key_hash", "password"];

/// Shown in place of a secret.
const HIDDEN: &str = "[redacted]";

fn scrub(path: &str, message: &str) -> String {
    let mut out = without_url_credentials(message);
    let leaf = path.rsplit(['.', ']']).next().unwrap_or(path);
    let about_secret = SECRET_KEYS.contains(&leaf)
        || SECRET_KEYS
            .iter()
            .any(|k| message.contains(&format!("{k}:")) || message.contains(&format!("`{k}`")));
    if about_secret {
        out = without_quoted(&out);
    }
    out
}

/// `scheme://user:password@host` → `scheme://[redacted]@host`, wherever it appears.
pub fn without_url_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let authority_end = after
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '`' | '\'') || c.is_whitespace())
            .unwrap_or(after.len());
        match after[..authority_end].rfind('@') {
            Some(user_end) => {
                out.push_str(HIDDEN);
                rest = &after[user_end..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// Every `...` and "..." span replaced.
fn without_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = &rest[open..=open];
        let Some(len) = rest[open + 1..].find(quote) else {
            break;
        };
        out.push_str(&rest[..=open]);
        out.push_str(HIDDEN);
        out.push_str(quote);
        rest = &rest[open + len + 2..];
    }
    out.push_str(rest);
    out
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one config; never empty when returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Records a problem: where it is, and what is wrong (any error or message).
    pub fn push(&mut self, path: impl Into<String>, problem: impl fmt::Display) {
        self.0.push(ConfigError::new(path, problem.to_string()));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ConfigError;

    #[test]
    fn problems_never_carry_secrets() {
        let e = ConfigError::new(
            "redis.url",
            "invalid URL \"redis://:hunter2@127.0.0.1:6379/x\": bad database",
        );
        assert_eq!(
            e.message,
            "invalid URL \"redis://[redacted]@127.0.0.1:6379/x\": bad database"
        );
        let e = ConfigError::new(
            "auth.jwt.secret",
            "invalid type: boolean `true`, expected a string",
        );
        assert_eq!(
            e.message,
            "invalid type: boolean `[redacted]`, expected a string"
        );
        let e = ConfigError::new(
            "(yaml)",
            "auth.jwt.secret: invalid type: integer `1234567`, expected a string at line 2",
        );
        assert!(!e.message.contains("1234567"), "{}", e.message);
        // Other problems keep their values.
        let e = ConfigError::new("routes[0].upstream", "unknown upstream \"billing\"");
        assert_eq!(e.message, "unknown upstream \"billing\"");
        let e = ConfigError::new("admin.prometheus_url", "http://host:9090/x is fine");
        assert_eq!(e.message, "http://host:9090/x is fine");
    }
}
