//! A set of HTTP methods as a bitmask, with its `Allow` header text prepared at load time.

use http::Method;

const NAMES: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

/// The methods a route accepts. Only the nine standard methods can be listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MethodSet(u16);

impl MethodSet {
    /// Parses a method name (upper case, as in the file); `None` if it is not a standard method.
    pub fn bit(name: &str) -> Option<MethodSet> {
        NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| MethodSet(1 << i))
    }

    pub fn union(self, other: MethodSet) -> MethodSet {
        MethodSet(self.0 | other.0)
    }

    pub fn intersects(self, other: MethodSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when `method` is in the set. No allocation.
    pub fn contains(self, method: &Method) -> bool {
        let i = match *method {
            Method::GET => 0,
            Method::HEAD => 1,
            Method::POST => 2,
            Method::PUT => 3,
            Method::DELETE => 4,
            Method::PATCH => 5,
            Method::OPTIONS => 6,
            Method::CONNECT => 7,
            Method::TRACE => 8,
            _ => return false,
        };
        self.0 & (1 << i) != 0
    }

    /// The `Allow` header value, e.g. `GET, POST`.
    pub fn allow_header(self) -> String {
        NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_contains_and_allow() {
        let set = MethodSet::bit("GET")
            .expect("GET")
            .union(MethodSet::bit("POST").expect("POST"));
        assert!(set.contains(&Method::GET));
        assert!(set.contains(&Method::POST));
        assert!(!set.contains(&Method::DELETE));
        assert_eq!(set.allow_header(), "GET, POST");
        assert!(MethodSet::bit("get").is_none());
        assert!(MethodSet::bit("BREW").is_none());
    }
}
