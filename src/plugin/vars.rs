//! Variables about a request, and templates that use them (`"$client_ip"` in a header value
//! or a redirect target).

use std::borrow::Cow;
use std::fmt::Write;
use std::net::IpAddr;

/// What a middleware knows about the request it handles, in every phase. Read through its
/// methods; each is worked out when asked (a middleware that reads none pays for none).
#[derive(Debug, Clone, Copy, Default)]
pub struct Vars<'a> {
    pub(crate) client_ip: Option<IpAddr>,
    pub(crate) request_id: Option<&'a crate::request_id::RequestId>,
    pub(crate) user: Option<&'a str>,
    pub(crate) route: &'a str,
    pub(crate) upstream: Option<&'a str>,
    /// The normalised path (the request's own when `None`).
    pub(crate) path: Option<&'a str>,
    pub(crate) secure: bool,
    /// The request as the client sent it (host, method, query).
    pub(crate) request: Option<&'a pingora::http::RequestHeader>,
}

impl<'a> Vars<'a> {
    /// The client, as resolved through trusted proxies.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }

    pub fn request_id(&self) -> &'a str {
        self.request_id.map_or("", |id| id.as_str())
    }

    /// The authenticated caller (the route's auth or a middleware's), when there is one.
    pub fn user(&self) -> Option<&'a str> {
        self.user
    }

    /// The route's name.
    pub fn route(&self) -> &'a str {
        self.route
    }

    /// The request's `Host` (or HTTP/2 `:authority`), as sent.
    pub fn host(&self) -> Option<&'a str> {
        let req = self.request?;
        match req.headers.get(http::header::HOST) {
            Some(h) => h.to_str().ok(),
            None => req.uri.authority().map(|a| a.as_str()),
        }
    }

    /// The upstream the request goes to (for a route that splits its traffic, once admitted).
    pub fn upstream(&self) -> Option<&'a str> {
        self.upstream
    }

    pub fn method(&self) -> &'a str {
        self.request.map_or("", |r| r.method.as_str())
    }

    /// The normalised path.
    pub fn path(&self) -> &'a str {
        match (self.path, self.request) {
            (Some(p), _) => p,
            (None, Some(r)) => r.uri.path(),
            (None, None) => "",
        }
    }

    /// The query, without `?`, as sent.
    pub fn query(&self) -> Option<&'a str> {
        self.request?.uri.query()
    }

    /// `https` when the client reached the gateway over TLS (or a trusted proxy says so).
    pub fn scheme(&self) -> &'static str {
        if self.secure {
            "https"
        } else {
            "http"
        }
    }
}

/// The variable names a template may use.
pub const NAMES: &[&str] = &[
    "client_ip",
    "request_id",
    "user",
    "route",
    "host",
    "upstream",
    "method",
    "path",
    "query",
    "scheme",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    ClientIp,
    RequestId,
    User,
    Route,
    Host,
    Upstream,
    Method,
    Path,
    Query,
    Scheme,
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name {
            "client_ip" => Var::ClientIp,
            "request_id" => Var::RequestId,
            "user" => Var::User,
            "route" => Var::Route,
            "host" => Var::Host,
            "upstream" => Var::Upstream,
            "method" => Var::Method,
            "path" => Var::Path,
            "query" => Var::Query,
            "scheme" => Var::Scheme,
            _ => return None,
        })
    }
}

impl Vars<'_> {
    fn write(&self, var: Var, out: &mut String) {
        let text = match var {
            Var::ClientIp => {
                if let Some(ip) = self.client_ip {
                    let _ = write!(out, "{ip}");
                }
                return;
            }
            Var::RequestId => self.request_id(),
            Var::User => self.user.unwrap_or(""),
            Var::Route => self.route,
            Var::Host => self.host().unwrap_or(""),
            Var::Upstream => self.upstream.unwrap_or(""),
            Var::Method => self.method(),
            Var::Path => self.path(),
            Var::Query => self.query().unwrap_or(""),
            Var::Scheme => self.scheme(),
        };
        out.push_str(text);
    }
}

/// A problem in a template.
/// A variable or a capture, by name.
fn part(name: &str, captures: bool) -> Result<Part, TemplateError> {
    match (captures, name.parse::<usize>()) {
        (true, Ok(n)) => Ok(Part::Capture(n)),
        _ => Var::parse(name)
            .map(Part::Var)
            .ok_or_else(|| TemplateError::Unknown {
                name: name.to_owned(),
            }),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown variable ${name}, expected one of: {}", NAMES.join(", "))]
    Unknown { name: String },
    #[error("unclosed ${{ at byte {0} (write $$ for a literal $)")]
    Unclosed(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
    /// `$1`..`$9` in a path rewrite's target: a capture of its pattern.
    Capture(usize),
}

/// Text with variables in it, parsed once when the config loads: `$client_ip` (a name runs
/// to the first character that is not a lower-case letter, digit or `_`), or `${client_ip}`
/// to end it explicitly; `$$` is a literal `$`. In the YAML file, `${...}` is an environment
/// variable and `$$` a `$` (substituted before parsing): write `$name` there, and `$$$$` for
/// a literal `$` followed by a letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; every variable must be a known one (`client_ip`, `request_id`, `user`,
    /// `route`, `host`, `upstream`, `method`, `path`, `query`, `scheme`).
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        Template::parse_with(text, false)
    }

    /// Like [`Template::parse`], and `$1`..`$9` (or `${1}`) stand for captures.
    pub(crate) fn parse_with(text: &str, captures: bool) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            literal.push_str(&rest[..i]);
            let at = text.len() - rest.len() + i;
            let after = &rest[i + 1..];
            let (part, used) = match after.bytes().next() {
                Some(b'$') => {
                    literal.push('$');
                    (None, 1)
                }
                Some(b'{') => {
                    let body = &after[1..];
                    let end = body.find('}').ok_or(TemplateError::Unclosed(at))?;
                    (Some(part(&body[..end], captures)?), end + 2)
                }
                Some(d) if captures && d.is_ascii_digit() => {
                    (Some(Part::Capture(usize::from(d - b'0'))), 1)
                }
                Some(c) if c.is_ascii_lowercase() || c == b'_' => {
                    let end = after
                        .bytes()
                        .position(|b| !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
                        .unwrap_or(after.len());
                    (Some(part(&after[..end], false)?), end)
                }
                _ => {
                    literal.push('$');
                    (None, 0)
                }
            };
            if let Some(part) = part {
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(part);
            }
            rest = &after[used..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// The text as written, when it has no variable.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// The highest capture number it uses (0 when none).
    pub(crate) fn max_capture(&self) -> usize {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Capture(n) => Some(*n),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// The text with every variable filled in from `vars` (an unknown value is empty).
    pub fn render<'t>(&'t self, vars: &Vars<'_>) -> Cow<'t, str> {
        self.render_with(vars, &|_| None)
    }

    /// Like [`Template::render`], captures taken from `capture`.
    pub(crate) fn render_with<'t>(
        &'t self,
        vars: &Vars<'_>,
        capture: &dyn Fn(usize) -> Option<&'t str>,
    ) -> Cow<'t, str> {
        if let Some(text) = self.as_literal() {
            return Cow::Borrowed(text);
        }
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => vars.write(*v, &mut out),
                Part::Capture(n) => out.push_str(capture(*n).unwrap_or("")),
            }
        }
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> &'static pingora::http::RequestHeader {
        static REQ: std::sync::LazyLock<pingora::http::RequestHeader> =
            std::sync::LazyLock::new(|| {
                let mut r =
                    pingora::http::RequestHeader::build("GET", b"/A/b?x=1", None).expect("request");
                r.insert_header("host", "example.com").expect("host");
                r
            });
        &REQ
    }

    static RID: std::sync::LazyLock<crate::request_id::RequestId> =
        std::sync::LazyLock::new(|| {
            let mut h = http::HeaderMap::new();
            h.insert("x-request-id", http::HeaderValue::from_static("rid"));
            crate::request_id::RequestId::from_request(&h)
        });

    fn vars() -> Vars<'static> {
        Vars {
            client_ip: "10.0.0.7".parse().ok(),
            request_id: Some(&RID),
            user: Some("alice"),
            route: "api",
            path: Some("/a/b"),
            request: Some(request()),
            ..Vars::default()
        }
    }

    #[test]
    fn accessors_read_the_request() {
        let v = vars();
        assert_eq!(v.host(), Some("example.com"));
        assert_eq!(v.method(), "GET");
        assert_eq!(v.query(), Some("x=1"));
        assert_eq!(v.path(), "/a/b", "the normalised path, not the one sent");
        assert_eq!(v.scheme(), "http");
        assert_eq!(Vars::default().path(), "");
    }

    #[test]
    fn variables_are_filled_and_dollars_escaped() {
        let t = Template::parse("$client_ip|${user}x|$$route|$upstream|$X|$scheme/$path")
            .expect("parses");
        assert_eq!(t.render(&vars()), "10.0.0.7|alicex|$route||$X|http//a/b");
        assert_eq!(
            Template::parse("plain").expect("ok").as_literal(),
            Some("plain")
        );
        assert_eq!(Template::parse("a$$b").expect("ok").render(&vars()), "a$b");
    }

    #[test]
    fn unknown_variables_and_unclosed_braces_are_errors() {
        assert_eq!(
            Template::parse("x $nope"),
            Err(TemplateError::Unknown {
                name: "nope".into()
            })
        );
        assert_eq!(Template::parse("ab${user"), Err(TemplateError::Unclosed(2)));
        // Captures only where they are allowed.
        assert_eq!(
            Template::parse("$1").expect("literal").as_literal(),
            Some("$1")
        );
        assert!(Template::parse("${1}").is_err());
    }

    #[test]
    fn captures_in_rewrite_targets() {
        let t = Template::parse_with("/v2/$1/${2}-$user", true).expect("parses");
        assert_eq!(t.max_capture(), 2);
        let caps = ["all", "x", "y"];
        let out = t.render_with(&vars(), &|n| caps.get(n).copied());
        assert_eq!(out, "/v2/x/y-alice");
    }
}
