//! Route lookup: a trie over whole path segments, so a request walks at most as many nodes as
//! its path has segments, whatever the number of routes. No allocation per lookup.

use super::route::Route;
use std::collections::HashMap;
use std::sync::Arc;

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup<'a> {
    Found(&'a Arc<Route>),
    /// The path matched, the method did not; carries the `Allow` header value.
    MethodNotAllowed(&'a str),
    NotFound,
    /// The path has a `.` or `..` segment (plain or percent-encoded), which a backend could
    /// resolve to a path the gateway never matched.
    BadPath,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    /// Routes ending at this prefix: those with `methods` first, at most one without, last.
    routes: Vec<Arc<Route>>,
    /// `Allow` value when no route here takes every method.
    allow: String,
}

/// The routes of one snapshot, ready for lookup.
#[derive(Debug, Default)]
pub struct RouteTable {
    root: Node,
}

impl RouteTable {
    /// Builds the table. Overlaps (same prefix, overlapping methods) are rejected earlier, by
    /// `compile`.
    pub fn build(routes: &[Arc<Route>]) -> RouteTable {
        let mut root = Node::default();
        for route in routes {
            let mut node = &mut root;
            for seg in segments(&route.prefix) {
                node = node.children.entry(seg.into()).or_default();
            }
            node.routes.push(Arc::clone(route));
        }
        finish(&mut root);
        RouteTable { root }
    }

    /// Finds the route for `path` (no query) and `method`: the longest prefix on whole segments
    /// wins; at that prefix a route listing the method wins over one without `methods`.
    pub fn lookup(&self, path: &str, method: &http::Method) -> Lookup<'_> {
        if !path.starts_with('/') {
            return Lookup::NotFound;
        }
        let mut node = &self.root;
        let mut best = (!node.routes.is_empty()).then_some(node);
        let mut walking = true;
        for seg in path[1..].split('/') {
            if is_dot_segment(seg) {
                return Lookup::BadPath;
            }
            if !walking {
                continue;
            }
            match node.children.get(seg) {
                Some(child) => {
                    node = child;
                    if !node.routes.is_empty() {
                        best = Some(node);
                    }
                }
                None => walking = false,
            }
        }
        let Some(node) = best else {
            return Lookup::NotFound;
        };
        for route in &node.routes {
            match route.methods {
                Some(set) if !set.contains(method) => continue,
                _ => return Lookup::Found(route),
            }
        }
        Lookup::MethodNotAllowed(&node.allow)
    }
}

fn finish(node: &mut Node) {
    node.routes.sort_by_key(|r| r.methods.is_none());
    if node.routes.iter().all(|r| r.methods.is_some()) {
        let union = node
            .routes
            .iter()
            .filter_map(|r| r.methods)
            .fold(Default::default(), super::method::MethodSet::union);
        node.allow = union.allow_header();
    }
    for child in node.children.values_mut() {
        finish(child);
    }
}

/// The segments of a normalized prefix (`/` has none).
fn segments(prefix: &str) -> impl Iterator<Item = &str> {
    prefix.split('/').filter(|s| !s.is_empty())
}

/// `.` and `..`, also when written with `%2e`.
pub(crate) fn is_dot_segment(seg: &str) -> bool {
    let b = seg.as_bytes();
    let dot = |s: &[u8]| s == b"." || s.eq_ignore_ascii_case(b"%2e");
    match b.len() {
        1 | 3 => dot(b),
        2 => b == b"..",
        4 => (b[0] == b'.' && dot(&b[1..])) || (dot(&b[..3]) && b[3] == b'.'),
        6 => dot(&b[..3]) && dot(&b[3..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::Upstream;
    use crate::config::file::UpstreamConfig;
    use crate::routing::method::MethodSet;
    use http::Method;

    fn upstream() -> Arc<Upstream> {
        let cfg: UpstreamConfig =
            serde_yaml::from_str("backends: [{addr: 127.0.0.1:9}]").expect("valid upstream");
        Arc::new(Upstream::build("u", &cfg, None).expect("upstream builds"))
    }

    fn route(name: &str, prefix: &str, methods: &[&str], up: &Arc<Upstream>) -> Arc<Route> {
        let methods = (!methods.is_empty()).then(|| {
            methods
                .iter()
                .map(|m| MethodSet::bit(m).expect("method"))
                .fold(MethodSet::default(), MethodSet::union)
        });
        Arc::new(Route {
            name: name.into(),
            prefix: prefix.into(),
            methods,
            upstream: Arc::clone(up),
            strip_prefix: false,
            timeout: None,
            chain: Default::default(),
            headers: Default::default(),
        })
    }

    fn name(t: &RouteTable, path: &str, m: Method) -> String {
        match t.lookup(path, &m) {
            Lookup::Found(r) => r.name.clone(),
            Lookup::MethodNotAllowed(allow) => format!("405 {allow}"),
            Lookup::NotFound => "404".into(),
            Lookup::BadPath => "400".into(),
        }
    }

    #[test]
    fn longest_whole_segment_prefix_wins() {
        let up = upstream();
        let t = RouteTable::build(&[
            route("api", "/api", &[], &up),
            route("users", "/api/users", &[], &up),
            route("user7", "/api/users/7", &[], &up),
        ]);
        assert_eq!(name(&t, "/api/users", Method::GET), "users");
        assert_eq!(name(&t, "/api/users/", Method::GET), "users");
        assert_eq!(name(&t, "/api/users/8", Method::GET), "users");
        assert_eq!(name(&t, "/api/users/7/x", Method::GET), "user7");
        assert_eq!(name(&t, "/api/usersx", Method::GET), "api");
        assert_eq!(name(&t, "/other", Method::GET), "404");
        assert_eq!(name(&t, "/", Method::GET), "404");
    }

    #[test]
    fn methods_and_catch_all() {
        let up = upstream();
        let t = RouteTable::build(&[
            route("any", "/a", &[], &up),
            route("post", "/a", &["POST"], &up),
            route("get", "/b", &["GET", "HEAD"], &up),
            route("del", "/b", &["DELETE"], &up),
        ]);
        assert_eq!(name(&t, "/a", Method::POST), "post");
        assert_eq!(name(&t, "/a", Method::GET), "any");
        assert_eq!(name(&t, "/b/1", Method::DELETE), "del");
        assert_eq!(name(&t, "/b", Method::PUT), "405 GET, HEAD, DELETE");
    }

    #[test]
    fn root_route_catches_everything() {
        let up = upstream();
        let t = RouteTable::build(&[route("root", "/", &[], &up), route("x", "/x", &[], &up)]);
        assert_eq!(name(&t, "/", Method::GET), "root");
        assert_eq!(name(&t, "/anything/else", Method::GET), "root");
        assert_eq!(name(&t, "/x/y", Method::GET), "x");
    }

    #[test]
    fn dot_segments_are_rejected() {
        let up = upstream();
        let t = RouteTable::build(&[route("root", "/", &[], &up)]);
        for p in [
            "/a/../b",
            "/./a",
            "/a/%2e%2E/b",
            "/a/.%2e",
            "/a/%2e.",
            "/a/%2E",
        ] {
            assert_eq!(name(&t, p, Method::GET), "400", "{p}");
        }
        assert_eq!(name(&t, "/a/...", Method::GET), "root");
        assert_eq!(name(&t, "/a/.hidden", Method::GET), "root");
    }
}
