//! The shape of `src/`: no two files import each other, directly or around a loop, and the
//! feature modules never reach into the proxy (features return outcomes; the proxy writes).
//! A parent module's own `use`/`pub use` of its children is structure, not an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

/// Every `.rs` file under `src/`, by module path (`proxy/ctx.rs` → `[proxy, ctx]`).
fn modules() -> BTreeMap<Module, String> {
    let mut out = BTreeMap::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let rel = path.strip_prefix(&root).expect("under src");
            let text = rel.to_string_lossy().trim_end_matches(".rs").to_owned();
            let mut parts: Module = text.split('/').map(str::to_owned).collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                parts.clear();
            }
            if rel.extension().is_some_and(|e| e == "rs") {
                let code = std::fs::read_to_string(&path).expect("read file");
                out.insert(parts, code);
            }
        }
    }
    out
}

/// The longest prefix of `path` that is a file.
fn resolve(files: &BTreeMap<Module, String>, path: &[String]) -> Option<Module> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| files.contains_key(m))
}

/// The code before the unit tests, without line comments.
fn code(text: &str) -> String {
    let before_tests = text.split("#[cfg(test)]").next().unwrap_or("");
    before_tests
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Paths like `crate::a::b`, `super::x::{y, z}`, and a module file's `use child::...`.
fn references(module: &Module, text: &str) -> Vec<Module> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let at_word = i == 0 || !ident(bytes[i - 1]);
        let rest = &text[i..];
        let start = ["crate::", "super::", "self::"]
            .iter()
            .find(|p| rest.starts_with(**p));
        let child_use = (rest.starts_with("use ") || rest.starts_with("pub use "))
            .then(|| rest.trim_start_matches("pub ").trim_start_matches("use "))
            .filter(|r| r.as_bytes().first().is_some_and(u8::is_ascii_lowercase))
            .filter(|r| {
                !["crate::", "super::", "self::"]
                    .iter()
                    .any(|p| r.starts_with(p))
            });
        if !at_word || (start.is_none() && child_use.is_none()) {
            i += 1;
            continue;
        }
        let path_text = match child_use {
            Some(r) if start.is_none() => format!("self::{r}"),
            _ => rest.to_owned(),
        };
        let end = path_text
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(path_text.len());
        let head: Vec<&str> = path_text[..end]
            .split("::")
            .filter(|s| !s.is_empty())
            .collect();
        let tails: Vec<String> = if path_text[end..].starts_with('{') {
            let group =
                &path_text[end + 1..path_text[end..].find('}').map_or(end + 1, |j| end + j)];
            group
                .split(',')
                .filter_map(|t| t.trim().split("::").next().map(str::to_owned))
                .filter(|t| !t.is_empty())
                .collect()
        } else {
            vec![String::new()]
        };
        for tail in tails {
            let mut path: Vec<String> = head.iter().map(|s| (*s).to_owned()).collect();
            if !tail.is_empty() {
                path.push(tail);
            }
            let mut current = module.clone();
            let mut rest = path.as_slice();
            if rest.first().is_some_and(|p| p == "crate") {
                current.clear();
                rest = &rest[1..];
            }
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "super" => {
                        current.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
            if ["std", "core", "alloc"].contains(&rest.first().map_or("", String::as_str)) {
                continue;
            }
            current.extend(rest.iter().cloned());
            out.push(current);
        }
        i += end.max(1);
    }
    out
}

fn graph() -> (BTreeMap<Module, BTreeSet<Module>>, BTreeMap<Module, String>) {
    let files = modules();
    let mut edges = BTreeMap::new();
    for (module, text) in &files {
        let mut to = BTreeSet::new();
        for path in references(module, &code(text)) {
            let Some(target) = resolve(&files, &path) else {
                continue;
            };
            let own_child = target.len() > module.len() && target.starts_with(module);
            if target != *module && !own_child {
                to.insert(target);
            }
        }
        edges.insert(module.clone(), to);
    }
    (edges, files)
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "lib".into()
    } else {
        m.join("/")
    }
}

#[test]
fn no_file_imports_another_that_imports_it_back() {
    let (edges, _) = graph();
    // A path from `to` back to `from` closes a loop.
    for (from, targets) in &edges {
        for to in targets {
            let mut seen = BTreeSet::new();
            let mut stack = vec![(to.clone(), vec![name(from), name(to)])];
            while let Some((at, trail)) = stack.pop() {
                if at == *from {
                    panic!("import cycle: {}", trail.join(" -> "));
                }
                if !seen.insert(at.clone()) {
                    continue;
                }
                for next in edges.get(&at).into_iter().flatten() {
                    let mut t = trail.clone();
                    t.push(name(next));
                    stack.push((next.clone(), t));
                }
            }
        }
    }
    assert!(edges.len() > 40, "the scan found the source files");
}

/// Every feature and every listener but the proxy's own (`admin`, `metrics`, `connection`, ...)
/// stays clear of `proxy/`: only the app wiring (and the crate root's re-exports) may use it.
#[test]
fn nothing_but_the_app_wiring_imports_the_proxy() {
    let (edges, _) = graph();
    let folders: BTreeSet<&str> = edges
        .keys()
        .filter_map(|m| m.first())
        .map(String::as_str)
        .collect();
    for expected in [
        "admin",
        "auth",
        "balance",
        "cache",
        "health",
        "metrics",
        "connection",
        "plugin",
    ] {
        assert!(
            folders.contains(expected),
            "the scan sees {expected}/: {folders:?}"
        );
    }
    for (from, targets) in &edges {
        let wiring =
            from.is_empty() || matches!(from.first().map(String::as_str), Some("app" | "proxy"));
        if !wiring {
            for to in targets {
                assert_ne!(
                    to.first().map(String::as_str),
                    Some("proxy"),
                    "{} imports {}",
                    name(from),
                    name(to)
                );
            }
        }
    }
    let proxy = edges.get(&vec!["proxy".to_owned(), "service".to_owned()]);
    assert!(
        proxy.is_some_and(|t| t.contains(&vec!["admit".to_owned()])),
        "the scan sees imports (proxy/service.rs uses admit)"
    );
}

#[test]
fn outcome_is_a_leaf() {
    let (edges, _) = graph();
    let outcome = edges
        .get(&vec!["outcome".to_owned()])
        .expect("src/outcome.rs");
    assert!(outcome.is_empty(), "outcome imports {outcome:?}");
}

/// The features, taken as folders, form no loop either: `health/` may use `balance/`, not the
/// other way too. (The hubs that hold them together, `state`, `snapshot`, `config`, are left
/// out: they name every feature by design.)
#[test]
fn no_feature_imports_another_that_imports_it_back() {
    const FEATURES: [&str; 12] = [
        "auth",
        "balance",
        "cache",
        "chain",
        "health",
        "outcome",
        "ratelimit",
        "routing",
        "security",
        "trace",
        "admin",
        "plugin",
    ];
    let (edges, _) = graph();
    let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, targets) in &edges {
        let Some(f) = from.first().filter(|f| FEATURES.contains(&f.as_str())) else {
            continue;
        };
        for to in targets {
            if let Some(t) = to
                .first()
                .filter(|t| *t != f && FEATURES.contains(&t.as_str()))
            {
                folders.entry(f.clone()).or_default().insert(t.clone());
            }
        }
    }
    for (from, targets) in &folders {
        for to in targets {
            let mut seen = BTreeSet::new();
            let mut stack = vec![(to.clone(), vec![from.clone(), to.clone()])];
            while let Some((at, trail)) = stack.pop() {
                if at == *from {
                    panic!("folder cycle: {}", trail.join(" -> "));
                }
                if !seen.insert(at.clone()) {
                    continue;
                }
                for next in folders.get(&at).into_iter().flatten() {
                    let mut t = trail.clone();
                    t.push(next.clone());
                    stack.push((next.clone(), t));
                }
            }
        }
    }
}

/// Functions stay short enough to read at once, and the proxy service reads as a table of
/// contents.
#[test]
fn no_function_is_over_a_hundred_lines_and_the_service_is_small() {
    let (_, files) = graph();
    let mut long = Vec::new();
    let mut seen = 0;
    for (module, text) in &files {
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let trimmed = line.trim_start();
            let is_fn = [
                "fn ",
                "pub fn ",
                "async fn ",
                "pub async fn ",
                "pub(crate) fn ",
                "pub(super) fn ",
            ]
            .iter()
            .any(|p| trimmed.starts_with(p))
                && !line.trim_end().ends_with(';');
            if is_fn {
                seen += 1;
                let indent = &line[..line.len() - trimmed.len()];
                let end = (i + 1..lines.len())
                    .find(|&j| lines[j] == format!("{indent}}}"))
                    .unwrap_or(i);
                if end - i > 100 {
                    long.push(format!("{}: {} ({} lines)", name(module), trimmed, end - i));
                }
                i = end;
            }
            i += 1;
        }
    }
    assert!(seen > 300, "the scan found the functions: {seen}");
    assert!(
        long.is_empty(),
        "functions over 100 lines:\n{}",
        long.join("\n")
    );
    let service = files
        .get(&vec!["proxy".to_owned(), "service".to_owned()])
        .expect("src/proxy/service.rs");
    let n = service.lines().count();
    assert!(n < 450, "src/proxy/service.rs has {n} lines");
}
