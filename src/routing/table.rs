//! Route lookup: a trie over whole path segments, so a request walks at most as many nodes as
//! its path has segments, whatever the number of routes. No allocation per lookup. Paths are
//! looked up after `path::normalize`. Routes with `case_insensitive` live in a second trie whose
//! segments compare without regard to ASCII case; the deeper match of the two wins.

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
    exact: Node,
    /// Only the case-insensitive routes, keyed by their lower-case segments.
    folded: Node,
}

impl RouteTable {
    /// Builds the table. Overlaps (same prefix, overlapping methods) are rejected earlier, by
    /// `compile`.
    pub fn build(routes: &[Arc<Route>]) -> RouteTable {
        let mut exact = Node::default();
        let mut folded = Node::default();
        for route in routes {
            let (root, fold) = if route.case_insensitive {
                (&mut folded, true)
            } else {
                (&mut exact, false)
            };
            let mut node = root;
            for seg in segments(&route.prefix) {
                let key = if fold {
                    seg.to_ascii_lowercase()
                } else {
                    seg.to_owned()
                };
                node = node.children.entry(key.into()).or_default();
            }
            node.routes.push(Arc::clone(route));
        }
        finish(&mut exact);
        finish(&mut folded);
        RouteTable { exact, folded }
    }

    /// Finds the route for a normalized `path` (no query) and `method`: the longest prefix on
    /// whole segments wins; at that prefix a route listing the method wins over one without
    /// `methods`.
    pub fn lookup(&self, path: &str, method: &http::Method) -> Lookup<'_> {
        let Some(rest) = path.strip_prefix('/') else {
            return Lookup::NotFound;
        };
        let exact = deepest(&self.exact, rest, |node, seg| node.children.get(seg));
        let folded = if self.folded.children.is_empty() && self.folded.routes.is_empty() {
            None
        } else {
            deepest(&self.folded, rest, |node, seg| {
                node.children
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(seg))
                    .map(|(_, n)| n)
            })
        };
        let best = match (exact, folded) {
            (Some((e, de)), Some((f, df))) => Some(if df > de { f } else { e }),
            (e, f) => e.or(f).map(|(n, _)| n),
        };
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

/// The deepest node with routes along `rest`, and its depth in segments.
fn deepest<'a>(
    root: &'a Node,
    rest: &str,
    child: impl Fn(&'a Node, &str) -> Option<&'a Node>,
) -> Option<(&'a Node, usize)> {
    let mut node = root;
    let mut best = (!node.routes.is_empty()).then_some((node, 0));
    for (depth, seg) in rest.split('/').enumerate() {
        match child(node, seg) {
            Some(next) => {
                node = next;
                if !node.routes.is_empty() {
                    best = Some((node, depth + 1));
                }
            }
            None => break,
        }
    }
    best
}

fn finish(node: &mut Node) {
    node.routes.sort_by_key(|r| r.methods.is_none());
    if node.routes.iter().all(|r| r.methods.is_some()) {
        let union = node
            .routes
            .iter()
            .filter_map(|r| r.methods)
            .fold(Default::default(), crate::method_set::MethodSet::union);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::Upstream;
    use crate::config::file::UpstreamConfig;
    use crate::method_set::MethodSet;
    use crate::routing::split::Split;
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
            split: Split::single(Arc::clone(up)),
            strip_prefix: false,
            timeout: None,
            retry: None,
            websocket: None,
            case_insensitive: false,
            chain: Default::default(),
            headers: Default::default(),
            cache: None,
            middlewares: Default::default(),
            metrics: crate::metrics::RouteMetrics::new(name),
        })
    }

    fn name(t: &RouteTable, path: &str, m: Method) -> String {
        match t.lookup(path, &m) {
            Lookup::Found(r) => r.name.clone(),
            Lookup::MethodNotAllowed(allow) => format!("405 {allow}"),
            Lookup::NotFound => "404".into(),
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
    fn case_insensitive_routes_match_any_case_and_the_deeper_match_wins() {
        let up = upstream();
        let mut admin = route("admin", "/api/Admin", &[], &up);
        Arc::get_mut(&mut admin).expect("fresh").case_insensitive = true;
        let t = RouteTable::build(&[route("api", "/api", &[], &up), admin]);
        assert_eq!(name(&t, "/api/admin/x", Method::GET), "admin");
        assert_eq!(name(&t, "/api/ADMIN", Method::GET), "admin");
        assert_eq!(name(&t, "/api/AdMiN/", Method::GET), "admin");
        assert_eq!(name(&t, "/api/users", Method::GET), "api");
        assert_eq!(
            name(&t, "/API/users", Method::GET),
            "404",
            "api itself is exact"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A generated route: prefix segments, methods (`None`: every method), case-insensitive.
        #[derive(Debug, Clone)]
        struct Spec {
            segs: Vec<&'static str>,
            methods: Option<Vec<&'static str>>,
            ci: bool,
        }

        const SEGS: [&str; 4] = ["a", "b", "B", "cc"];
        const METHODS: [&str; 3] = ["GET", "POST", "DELETE"];

        fn spec() -> impl Strategy<Value = Spec> {
            (
                prop::collection::vec(prop::sample::select(SEGS.to_vec()), 0..3),
                prop::option::of(prop::sample::subsequence(METHODS.to_vec(), 1..=2)),
                prop::bool::weighted(0.25),
            )
                .prop_map(|(segs, methods, ci)| Spec { segs, methods, ci })
        }

        fn key(s: &Spec) -> (bool, String) {
            let joined = s.segs.join("/");
            (
                s.ci,
                if s.ci {
                    joined.to_ascii_lowercase()
                } else {
                    joined
                },
            )
        }

        /// What `compile` lets through: at one prefix (folded for case-insensitive routes), at
        /// most one route without methods and no method twice.
        fn accepted(specs: Vec<Spec>) -> Vec<Spec> {
            let mut out: Vec<Spec> = Vec::new();
            for s in specs {
                let clash = out.iter().any(|o| {
                    key(o) == key(&s)
                        && match (&o.methods, &s.methods) {
                            (None, None) => true,
                            (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
                            _ => false,
                        }
                });
                if !clash {
                    out.push(s);
                }
            }
            out
        }

        /// The reference: scan every route, keep the deepest match of each kind (the exact one
        /// wins a tie), then the route at that prefix that lists the method, else the one
        /// without methods.
        fn naive(specs: &[Spec], path: &[&str], method: &str) -> String {
            let matches = |s: &Spec| {
                s.segs.len() <= path.len()
                    && s.segs.iter().zip(path).all(|(a, b)| {
                        if s.ci {
                            a.eq_ignore_ascii_case(b)
                        } else {
                            a == b
                        }
                    })
            };
            let deepest = |ci: bool| {
                specs
                    .iter()
                    .filter(|s| s.ci == ci && matches(s))
                    .map(|s| s.segs.len())
                    .max()
            };
            let ci = match (deepest(false), deepest(true)) {
                (Some(e), Some(f)) => f > e,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (None, None) => return "404".into(),
            };
            let depth = deepest(ci).unwrap_or(0);
            let at: Vec<(usize, &Spec)> = specs
                .iter()
                .enumerate()
                .filter(|(_, s)| s.ci == ci && matches(s) && s.segs.len() == depth)
                .collect();
            let listed = at
                .iter()
                .find(|(_, s)| s.methods.as_ref().is_some_and(|m| m.contains(&method)));
            let any = at.iter().find(|(_, s)| s.methods.is_none());
            match listed.or(any) {
                Some((i, _)) => format!("r{i}"),
                None => "405".into(),
            }
        }

        fn outcome(t: &RouteTable, path: &str, m: &str) -> String {
            let method = Method::from_bytes(m.as_bytes()).expect("method");
            match t.lookup(path, &method) {
                Lookup::Found(r) => r.name.clone(),
                Lookup::MethodNotAllowed(_) => "405".into(),
                Lookup::NotFound => "404".into(),
            }
        }

        proptest! {
            #[test]
            fn the_table_agrees_with_a_linear_scan(
                specs in prop::collection::vec(spec(), 0..8),
                paths in prop::collection::vec(
                    prop::collection::vec(prop::sample::select(vec!["a", "b", "B", "A", "cc", "CC", "x"]), 0..4),
                    1..10,
                ),
                method in prop::sample::select(vec!["GET", "POST", "DELETE", "PUT"]),
            ) {
                let specs = accepted(specs);
                let up = upstream();
                let routes: Vec<Arc<Route>> = specs
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let prefix = format!("/{}", s.segs.join("/"));
                        let methods: Vec<&str> = s.methods.clone().unwrap_or_default();
                        let mut r = route(&format!("r{i}"), &prefix, &methods, &up);
                        Arc::get_mut(&mut r).expect("fresh").case_insensitive = s.ci;
                        r
                    })
                    .collect();
                let table = RouteTable::build(&routes);
                for path in &paths {
                    let text = format!("/{}", path.join("/"));
                    prop_assert_eq!(
                        outcome(&table, &text, method),
                        naive(&specs, path, method),
                        "{} {} with {:?}", method, text, specs
                    );
                }
            }
        }
    }
}
