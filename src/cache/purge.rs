//! Purge by request path: one URL (every caller's entry for it) or a path prefix on whole
//! segments (`/api/users` takes `/api/users`, `/api/users/7` and `/api/users?x`, not
//! `/api/usersx`), matched against the readable primary keys.

use super::key::url_key;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    /// A URL's primary key, `<key_prefix>:GET:<path>:<query>`.
    Url(String),
    /// `<key_prefix>:GET:<path prefix>`.
    Prefix(String),
}

impl Purge {
    /// One URL: the normalized path and the query as sent.
    pub fn url(key_prefix: &str, path: &str, query: Option<&str>) -> Purge {
        Purge::Url(url_key(key_prefix, path, query))
    }

    /// Everything under a normalized path prefix.
    pub fn prefix(key_prefix: &str, path: &str) -> Purge {
        let path = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        Purge::Prefix(format!("{key_prefix}:GET:{path}"))
    }

    /// Whether the entry stored under `primary` is purged.
    pub fn matches(&self, primary: &str) -> bool {
        match self {
            Purge::Url(key) => primary
                .strip_prefix(key.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('#')),
            Purge::Prefix(start) => primary.strip_prefix(start.as_str()).is_some_and(|rest| {
                start.ends_with('/') || rest.starts_with('/') || rest.starts_with(':')
            }),
        }
    }

    /// A Redis `SCAN MATCH` pattern covering every stored key this purge may match (stored keys
    /// are `<primary>#<hash>`); [`Purge::matches`] decides.
    pub fn scan_pattern(&self) -> String {
        let (text, tail) = match self {
            Purge::Url(key) => (key, "#*"),
            Purge::Prefix(start) => (start, "*"),
        };
        let mut out = String::with_capacity(text.len() + 8);
        for c in text.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push_str(tail);
        out
    }

    /// The message other instances get over pub/sub.
    pub fn to_message(&self) -> String {
        match self {
            Purge::Url(k) => format!("url {k}"),
            Purge::Prefix(p) => format!("prefix {p}"),
        }
    }

    pub fn from_message(msg: &str) -> Option<Purge> {
        let (kind, rest) = msg.split_once(' ')?;
        match kind {
            "url" => Some(Purge::Url(rest.to_owned())),
            "prefix" => Some(Purge::Prefix(rest.to_owned())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_takes_every_caller_and_nothing_else() {
        let p = Purge::url("gw", "/api/users", Some("page=2"));
        assert!(p.matches("gw:GET:/api/users:page=2"));
        assert!(p.matches("gw:GET:/api/users:page=2#u=alice;c=00"));
        assert!(!p.matches("gw:GET:/api/users:page=22"));
        assert!(!p.matches("gw:GET:/api/users:"));
        let bare = Purge::url("gw", "/api/users", None);
        assert!(bare.matches("gw:GET:/api/users:"));
        assert!(!bare.matches("gw:GET:/api/users:page=2"));
    }

    #[test]
    fn a_prefix_takes_whole_segments() {
        let p = Purge::prefix("gw", "/api/users/");
        for yes in [
            "gw:GET:/api/users:",
            "gw:GET:/api/users:x=1",
            "gw:GET:/api/users/7:",
            "gw:GET:/api/users/7:#c=1",
        ] {
            assert!(p.matches(yes), "{yes}");
        }
        assert!(!p.matches("gw:GET:/api/usersx:"));
        assert!(!p.matches("other:GET:/api/users:"));
        let root = Purge::prefix("gw", "/");
        assert!(root.matches("gw:GET:/anything:"));
    }

    #[test]
    fn patterns_escape_glob_characters_and_messages_round_trip() {
        let p = Purge::url("gw", "/a*b[1]", Some("q=?"));
        assert_eq!(p.scan_pattern(), r"gw:GET:/a\*b\[1\]:q=\?#*");
        assert_eq!(Purge::from_message(&p.to_message()), Some(p));
        assert_eq!(Purge::from_message("bogus"), None);
    }
}
