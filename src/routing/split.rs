//! Traffic splitting: a route naming several upstreams with weights sends each client to one of
//! them, always the same one for the same sticky key (client address, user, a header or a
//! cookie), unless an override header or cookie names a side. A route with one upstream is a
//! split of one arm and costs nothing per request.

use crate::balance::Upstream;
use crate::config::file::{SplitConfig, WeightedUpstream};
use crate::config::ConfigErrors;
use http::HeaderName;
use pingora::http::RequestHeader;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

/// A problem in a route's `upstreams` or `split`.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("give either upstream or upstreams, not both")]
    Both,
    #[error("missing: name an upstream (or list several under upstreams)")]
    Neither,
    #[error("unknown upstream {0:?}")]
    UnknownUpstream(String),
    #[error("must list at least one upstream")]
    Empty,
    #[error("{0:?} is listed twice")]
    Twice(String),
    #[error("weights add up to 0: give at least one a positive weight")]
    NoWeight,
    #[error("weights add up to more than 1000000")]
    TooHeavy,
    #[error("{0:?}: expected client_ip, user, header:<Name>, cookie:<name> or none")]
    Sticky(String),
    #[error("{0:?} is not a valid header name")]
    Header(String),
    #[error("{0:?} is not a valid cookie name")]
    Cookie(String),
    #[error("only applies to a route with upstreams")]
    Unsplit,
}

/// The key that keeps one client on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sticky {
    ClientIp,
    /// The authenticated subject (the client address for anonymous requests).
    User,
    /// A request header's value (the client address when it is absent).
    Header(HeaderName),
    /// A cookie's value (the client address when it is absent).
    Cookie(Box<str>),
    /// No stickiness: each request drawn by weight.
    None,
}

impl Sticky {
    fn parse(text: &str) -> Option<Sticky> {
        Some(match text {
            "client_ip" => Sticky::ClientIp,
            "user" => Sticky::User,
            "none" => Sticky::None,
            other => {
                if let Some(name) = other.strip_prefix("header:") {
                    Sticky::Header(HeaderName::from_bytes(name.as_bytes()).ok()?)
                } else {
                    let name = other.strip_prefix("cookie:")?;
                    if !is_cookie_name(name) {
                        return None;
                    }
                    Sticky::Cookie(name.into())
                }
            }
        })
    }
}

/// One upstream of a route and the share of the hash space it takes.
#[derive(Debug)]
struct Arm {
    upstream: Arc<Upstream>,
    weight: u32,
    /// Points below this (and at or above the previous arm's) land here; out of 2^64.
    until: u128,
}

/// Who the request is, for picking its side.
pub struct Client<'a> {
    pub header: &'a RequestHeader,
    pub ip: Option<IpAddr>,
    pub user: Option<&'a str>,
}

/// The upstreams of a route.
#[derive(Debug)]
pub struct Split {
    /// Never empty.
    arms: Box<[Arm]>,
    /// The first arm's upstream, for an arm out of range.
    first: Arc<Upstream>,
    sticky: Sticky,
    override_header: Option<HeaderName>,
    override_cookie: Option<Box<str>>,
    /// The arm `always` picks: the lightest (the last of equals).
    canary: usize,
    /// The arm `never` picks: the heaviest (the first of equals).
    primary: usize,
}

impl Split {
    /// The route's `upstream` or `upstreams` with its `split`, checked; `None` after an error
    /// (reported under `path`) or when a named upstream is missing because its own section
    /// failed (reported there).
    pub fn build(
        path: &str,
        one: Option<&String>,
        several: Option<&Vec<WeightedUpstream>>,
        split: Option<&SplitConfig>,
        known: &BTreeMap<String, Arc<Upstream>>,
        declared: &BTreeSet<String>,
        errors: &mut ConfigErrors,
    ) -> Option<Split> {
        let before = errors.len();
        let lookup = |at: String, name: &String, errors: &mut ConfigErrors| {
            let found = known.get(name).cloned();
            if found.is_none() && !declared.contains(name) {
                errors.push(at, SplitError::UnknownUpstream(name.clone()));
            }
            found
        };
        let entries: Vec<(Option<Arc<Upstream>>, u32)> = match (one, several) {
            (Some(_), Some(_)) => {
                errors.push(format!("{path}.upstreams"), SplitError::Both);
                return None;
            }
            (None, None) => {
                errors.push(format!("{path}.upstream"), SplitError::Neither);
                return None;
            }
            (Some(name), None) => {
                if split.is_some() {
                    errors.push(format!("{path}.split"), SplitError::Unsplit);
                }
                vec![(lookup(format!("{path}.upstream"), name, errors), 1)]
            }
            (None, Some(list)) => {
                if list.is_empty() {
                    errors.push(format!("{path}.upstreams"), SplitError::Empty);
                }
                let mut seen = HashSet::new();
                let mut entries = Vec::with_capacity(list.len());
                for (j, w) in list.iter().enumerate() {
                    let at = format!("{path}.upstreams[{j}].name");
                    if !seen.insert(w.name.as_str()) {
                        errors.push(at, SplitError::Twice(w.name.clone()));
                        continue;
                    }
                    entries.push((lookup(at, &w.name, errors), w.weight));
                }
                let total: u64 = list.iter().map(|w| u64::from(w.weight)).sum();
                if !list.is_empty() && total == 0 {
                    errors.push(format!("{path}.upstreams"), SplitError::NoWeight);
                } else if total > 1_000_000 {
                    errors.push(format!("{path}.upstreams"), SplitError::TooHeavy);
                }
                entries
            }
        };
        let options = split.cloned().unwrap_or_default();
        let sticky = match options.sticky.as_deref() {
            None => Some(Sticky::ClientIp),
            Some(text) => Sticky::parse(text).or_else(|| {
                errors.push(
                    format!("{path}.split.sticky"),
                    SplitError::Sticky(text.to_owned()),
                );
                None
            }),
        };
        let override_header = options.override_header.as_ref().and_then(|h| {
            HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| {
                    let at = format!("{path}.split.override_header");
                    errors.push(at, SplitError::Header(h.clone()));
                })
                .ok()
        });
        let override_cookie = options.override_cookie.as_ref().and_then(|c| {
            if is_cookie_name(c) {
                Some(c.as_str().into())
            } else {
                let at = format!("{path}.split.override_cookie");
                errors.push(at, SplitError::Cookie(c.clone()));
                None
            }
        });
        if errors.len() > before {
            return None;
        }
        let entries: Option<Vec<(Arc<Upstream>, u32)>> =
            entries.into_iter().map(|(u, w)| Some((u?, w))).collect();
        Split::new(entries?, sticky?, override_header, override_cookie)
    }

    /// `None` when `entries` is empty. With weights adding up to 0, the last arm takes every
    /// request (`build` refuses such a list).
    fn new(
        entries: Vec<(Arc<Upstream>, u32)>,
        sticky: Sticky,
        override_header: Option<HeaderName>,
        override_cookie: Option<Box<str>>,
    ) -> Option<Split> {
        let first = Arc::clone(&entries.first()?.0);
        let total: u128 = entries
            .iter()
            .map(|(_, w)| u128::from(*w))
            .sum::<u128>()
            .max(1);
        let mut sum = 0u128;
        let arms: Box<[Arm]> = entries
            .into_iter()
            .map(|(upstream, weight)| {
                sum += u128::from(weight);
                Arm {
                    upstream,
                    weight,
                    until: (sum << 64) / total,
                }
            })
            .collect();
        let mut canary = 0;
        let mut primary = 0;
        for (i, arm) in arms.iter().enumerate() {
            if arm.weight <= arms[canary].weight {
                canary = i;
            }
            if arm.weight > arms[primary].weight {
                primary = i;
            }
        }
        Some(Split {
            arms,
            first,
            sticky,
            override_header,
            override_cookie,
            canary,
            primary,
        })
    }

    /// A route's one upstream.
    pub fn single(upstream: Arc<Upstream>) -> Split {
        let arm = Arm {
            upstream: Arc::clone(&upstream),
            weight: 1,
            until: 1 << 64,
        };
        Split {
            arms: Box::new([arm]),
            first: upstream,
            sticky: Sticky::ClientIp,
            override_header: None,
            override_cookie: None,
            canary: 0,
            primary: 0,
        }
    }

    /// More than one upstream.
    pub fn is_split(&self) -> bool {
        self.arms.len() > 1
    }

    /// The upstream of `arm` (a value [`Split::pick`] returned; the first for any other).
    pub fn upstream(&self, arm: usize) -> &Arc<Upstream> {
        self.arms.get(arm).map_or(&self.first, |a| &a.upstream)
    }

    /// Every upstream with its weight, in the order configured.
    pub fn arms(&self) -> impl Iterator<Item = (&Arc<Upstream>, u32)> {
        self.arms.iter().map(|a| (&a.upstream, a.weight))
    }

    /// The arm for this request: the override's when it names one, else by the sticky key's
    /// hash (a random point without a key).
    pub fn pick(&self, client: &Client) -> usize {
        if !self.is_split() {
            return 0;
        }
        if let Some(arm) = self.overridden(client.header) {
            return arm;
        }
        let point = match self.key(client) {
            Some(key) => mix(fnv1a(key.as_ref())),
            None => fastrand::u64(..),
        };
        let point = u128::from(point);
        self.arms
            .iter()
            .position(|a| point < a.until)
            .unwrap_or(self.arms.len() - 1)
    }

    fn overridden(&self, header: &RequestHeader) -> Option<usize> {
        let from_header = self
            .override_header
            .as_ref()
            .and_then(|name| header.headers.get(name))
            .map(|v| v.as_bytes());
        let value = from_header.or_else(|| cookie(header, self.override_cookie.as_deref()?))?;
        let value = value.trim_ascii();
        if value.eq_ignore_ascii_case(b"always") {
            return Some(self.canary);
        }
        if value.eq_ignore_ascii_case(b"never") {
            return Some(self.primary);
        }
        self.arms
            .iter()
            .position(|a| a.upstream.name.as_bytes() == value)
    }

    fn key<'a>(&self, client: &'a Client) -> Option<KeyBytes<'a>> {
        let ip = || client.ip.map(KeyBytes::ip);
        match &self.sticky {
            Sticky::None => None,
            Sticky::ClientIp => ip(),
            Sticky::User => client
                .user
                .map(|u| KeyBytes::Text(u.as_bytes()))
                .or_else(ip),
            Sticky::Header(name) => client
                .header
                .headers
                .get(name)
                .map(|v| KeyBytes::Text(v.as_bytes()))
                .or_else(ip),
            Sticky::Cookie(name) => cookie(client.header, name).map(KeyBytes::Text).or_else(ip),
        }
    }
}

/// Key bytes without an allocation.
enum KeyBytes<'a> {
    Text(&'a [u8]),
    V4([u8; 4]),
    V6([u8; 16]),
}

impl KeyBytes<'_> {
    fn ip(ip: IpAddr) -> KeyBytes<'static> {
        match ip {
            IpAddr::V4(v4) => KeyBytes::V4(v4.octets()),
            IpAddr::V6(v6) => KeyBytes::V6(v6.octets()),
        }
    }
}

impl AsRef<[u8]> for KeyBytes<'_> {
    fn as_ref(&self) -> &[u8] {
        match self {
            KeyBytes::Text(t) => t,
            KeyBytes::V4(b) => b,
            KeyBytes::V6(b) => b,
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (the first one sent).
fn cookie<'a>(header: &'a RequestHeader, name: &str) -> Option<&'a [u8]> {
    header
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|b| *b == b'=')?;
            (&pair[..eq] == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
        })
}

/// RFC 6265 token characters.
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

/// FNV-1a: stable across builds and instances, so every gateway puts a client on the same side.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64's finalizer: spreads FNV's low-entropy high bits over the whole range.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
