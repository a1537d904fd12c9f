//! What a reload changed: the top-level sections that differ, and the routes and upstreams
//! (by name) added, removed or changed. Compared on the parsed files, so comments and key order
//! do not count.

use super::file::FileConfig;
use super::load::SECTIONS;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The sections that only a restart or an upgrade (`-u`) applies.
const FIXED: [&str; 4] = ["listen", "server", "tracing", "etcd"];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// Top-level sections whose value differs, in file order.
    pub sections: Vec<String>,
    pub routes: Named,
    pub upstreams: Named,
    /// Of `sections`, those the running process keeps until a restart or an upgrade.
    pub need_restart: Vec<String>,
}

/// Names added, removed and changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Named {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Named {
    /// `added: a, b; changed: c`, or empty.
    fn summary(&self) -> String {
        [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ]
        .iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(what, names)| format!("{what}: {}", names.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
    }
}

impl Changes {
    /// `routes (added: a; removed: b), upstreams (changed: u), cache` for the reload log, or
    /// `nothing`.
    pub fn summary(&self) -> String {
        if self.sections.is_empty() {
            return "nothing".to_owned();
        }
        let parts: Vec<String> = self
            .sections
            .iter()
            .map(|s| {
                let named = match s.as_str() {
                    "routes" => self.routes.summary(),
                    "upstreams" => self.upstreams.summary(),
                    _ => String::new(),
                };
                if named.is_empty() {
                    s.clone()
                } else {
                    format!("{s} ({named})")
                }
            })
            .collect();
        parts.join(", ")
    }

    pub fn between(old: &FileConfig, new: &FileConfig) -> Changes {
        let (old, new) = (as_value(old), as_value(new));
        let sections: Vec<String> = SECTIONS
            .iter()
            .filter(|k| old.get(k) != new.get(k))
            .map(|k| (*k).to_owned())
            .collect();
        let mut need_restart: Vec<String> = sections
            .iter()
            .filter(|s| {
                FIXED.contains(&s.as_str()) && !(*s == "listen" && only_certificates(&old, &new))
            })
            .cloned()
            .collect();
        let (was, is) = (&old["log"], &new["log"]);
        if was.get("level") != is.get("level") || was.get("format") != is.get("format") {
            need_restart.push("log".to_owned());
        }
        Changes {
            routes: Named::between(&by_name(&old["routes"]), &by_name(&new["routes"])),
            upstreams: Named::between(&keyed(&old["upstreams"]), &keyed(&new["upstreams"])),
            sections,
            need_restart,
        }
    }
}

impl Named {
    fn between(old: &BTreeMap<&str, &Value>, new: &BTreeMap<&str, &Value>) -> Named {
        let names = |m: &BTreeMap<&str, &Value>, keep: &dyn Fn(&str, &Value) -> bool| {
            m.iter()
                .filter(|(n, v)| keep(n, v))
                .map(|(n, _)| (*n).to_owned())
                .collect()
        };
        Named {
            added: names(new, &|n, _| !old.contains_key(n)),
            removed: names(old, &|n, _| !new.contains_key(n)),
            changed: names(new, &|n, v| old.get(n).is_some_and(|before| *before != v)),
        }
    }
}

/// The `listen` sections differ in their certificates only (which a reload applies).
fn only_certificates(old: &Value, new: &Value) -> bool {
    let without = |v: &Value| {
        let mut listen = v["listen"].clone();
        if let Some(tls) = listen.get_mut("proxy_tls").and_then(Value::as_object_mut) {
            tls.remove("certificates");
        }
        listen
    };
    without(old) == without(new)
}

fn as_value(file: &FileConfig) -> Value {
    serde_json::to_value(file).unwrap_or(Value::Null)
}

/// Routes by their `name`.
fn by_name(list: &Value) -> BTreeMap<&str, &Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r.get("name")?.as_str()?, r)))
        .collect()
}

/// A map section by key.
fn keyed(map: &Value) -> BTreeMap<&str, &Value> {
    map.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    fn file(text: &str) -> FileConfig {
        let parsed = parse_str(text, |_| None);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        parsed.file
    }

    #[test]
    fn names_what_was_added_removed_and_changed() {
        let old = file(
            "upstreams: {a: {backends: [{addr: 127.0.0.1:1}]}, b: {backends: [{addr: 127.0.0.1:2}]}}\n\
             routes: [{name: r1, path: /a, upstream: a}, {name: r2, path: /b, upstream: b}]\n",
        );
        let new = file(
            "listen: {proxy: 127.0.0.1:1}\nupstreams: {a: {backends: [{addr: 127.0.0.1:3}]}, c: {backends: [{addr: 127.0.0.1:2}]}}\n\
             routes: [{name: r1, path: /a, upstream: a}, {name: r3, path: /c, upstream: c}]\n",
        );
        let changes = Changes::between(&old, &new);
        assert_eq!(changes.sections, ["listen", "upstreams", "routes"]);
        assert_eq!(changes.need_restart, ["listen"]);
        assert_eq!(changes.routes.added, ["r3"]);
        assert_eq!(changes.routes.removed, ["r2"]);
        assert!(changes.routes.changed.is_empty());
        assert_eq!(changes.upstreams.added, ["c"]);
        assert_eq!(changes.upstreams.removed, ["b"]);
        assert_eq!(changes.upstreams.changed, ["a"]);
        assert_eq!(
            changes.summary(),
            "listen, upstreams (added: c; removed: b; changed: a), routes (added: r3; removed: r2)"
        );
        assert_eq!(Changes::between(&new, &new), Changes::default());
        assert_eq!(Changes::default().summary(), "nothing");
    }
}
