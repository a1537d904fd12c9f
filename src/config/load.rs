//! Reading the file: environment substitution, YAML, and per-section deserialization so that a
//! broken route does not hide the problems of the next one.

use super::env::substitute;
use super::error::ConfigErrors;
use super::file::{FileConfig, PluginConfig};
use super::wording;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeSet;
use std::path::Path;

/// The top-level sections, in the order the schema lists them.
pub(super) const SECTIONS: &[&str] = &[
    "server",
    "listen",
    "log",
    "admin",
    "tracing",
    "etcd",
    "redis",
    "auth",
    "rate_limit",
    "cache",
    "security",
    "upstreams",
    "groups",
    "routes",
    "plugins",
];

/// The result of reading a file: what parsed, the names declared even where their bodies did not
/// parse (so references to them are not reported twice), and the problems found so far.
#[derive(Debug, Default)]
pub struct Parsed {
    pub file: FileConfig,
    pub declared_upstreams: BTreeSet<String>,
    pub declared_groups: BTreeSet<String>,
    /// For each entry of `file.routes`, its index in the file (entries that did not parse are
    /// left out of `file.routes`, so the two can differ).
    pub route_index: Vec<usize>,
    pub errors: ConfigErrors,
    /// Set by the caller: the etcd revision of the document read beside the file, if any.
    pub revision: Option<i64>,
    /// Set by the caller: the process runs as a demo (`--demo`), where the demo config's
    /// published JWT secret is accepted.
    pub demo: bool,
}

/// The sections only the local file may set when the others come from etcd: what the process
/// needs to start (and, for `etcd`, to find the rest).
pub const LOCAL_ONLY: &[&str] = &["server", "listen", "log", "admin", "tracing", "etcd"];

/// Reads and parses the config file at `path`. Relative paths in it (pid file, upgrade socket,
/// key files, dashboard folder) are taken against the file's own folder, whatever the working
/// directory (a daemon runs in `/`).
pub fn load_file(path: &Path) -> Parsed {
    load_with(path, None)
}

/// As [`load_file`], with the sections of `remote` (the etcd document) beside the file's.
pub fn load_with(path: &Path, remote: Option<&str>) -> Parsed {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mut parsed = parse_sources(&text, remote, |name| std::env::var(name).ok());
            let folder = std::fs::canonicalize(path)
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf));
            if let Some(folder) = folder {
                resolve_paths(&mut parsed.file, &folder);
            }
            parsed
        }
        Err(e) => {
            let mut parsed = Parsed::default();
            parsed
                .errors
                .push(path.display().to_string(), format!("cannot read file: {e}"));
            parsed
        }
    }
}

/// Parses config text, looking environment variables up with `env`.
pub fn parse_str<F>(text: &str, env: F) -> Parsed
where
    F: Fn(&str) -> Option<String>,
{
    parse_sources(text, None, env)
}

/// Parses the local file's text and, when the rest comes from etcd, the document `remote`: each
/// section from one of the two (the local-only ones from the file), read as one config.
pub fn parse_sources<F>(local: &str, remote: Option<&str>, env: F) -> Parsed
where
    F: Fn(&str) -> Option<String>,
{
    let mut parsed = Parsed::default();
    let Some(mut root) = read_root(local, &env, "", &mut parsed.errors) else {
        return parsed;
    };
    if let Some(remote) = remote {
        let Some(shared) = read_root(remote, &env, "etcd document: ", &mut parsed.errors) else {
            return parsed;
        };
        for (key, value) in shared {
            let name = key.as_str().unwrap_or_default();
            if LOCAL_ONLY.contains(&name) {
                parsed.errors.push(
                    name,
                    "in the etcd document: only the local file may set this section (the process needs it to start)",
                );
            } else if root.contains_key(&key) {
                parsed.errors.push(
                    name,
                    "set both in the local file and in the etcd document: keep one",
                );
            } else {
                root.insert(key, value);
            }
        }
    }
    let mut seen_upstreams = false;
    let mut seen_routes = false;
    for (key, value) in root {
        let Some(section) = key.as_str().map(str::to_owned) else {
            parsed
                .errors
                .push(".", format!("section key {key:?} is not a string"));
            continue;
        };
        seen_upstreams |= section == "upstreams";
        seen_routes |= section == "routes";
        read_section(&mut parsed, &section, value);
    }
    // The running snapshot keeps the file: no spare room from growing the list.
    parsed.file.routes.shrink_to_fit();
    // Present but empty (`routes: []`, or a key with only a comment under it) is as good as
    // missing: a gateway without routes answers nothing but 404.
    if !seen_upstreams {
        parsed
            .errors
            .push("upstreams", "missing: at least one upstream is required");
    } else if parsed.declared_upstreams.is_empty() {
        parsed
            .errors
            .push("upstreams", "empty: at least one upstream is required");
    }
    if !seen_routes {
        parsed
            .errors
            .push("routes", "missing: at least one route is required");
    } else if parsed.route_index.is_empty()
        && !parsed.errors.iter().any(|e| e.path.starts_with("routes"))
    {
        parsed
            .errors
            .push("routes", "empty: at least one route is required");
    }
    parsed
}

/// Text to a mapping of sections, after environment substitution; `None` (with the problems) when
/// it is not one. `origin` starts the messages of a document other than the file.
fn read_root<F>(text: &str, env: &F, origin: &str, errors: &mut ConfigErrors) -> Option<Mapping>
where
    F: Fn(&str) -> Option<String>,
{
    let text = match substitute(text, env) {
        Ok(text) => text,
        Err(missing) => {
            for m in missing {
                errors.push("(environment)", format!("{origin}{m}"));
            }
            return None;
        }
    };
    match serde_yaml::from_str(&text) {
        Ok(Value::Mapping(root)) => Some(root),
        // An empty etcd document is an empty config (its problems are the missing sections).
        Ok(Value::Null) if !origin.is_empty() => Some(Mapping::new()),
        Ok(_) => {
            errors.push(
                ".",
                format!("{origin}the config must be a mapping of sections"),
            );
            None
        }
        Err(e) => {
            let message = wording::plain(&e.to_string());
            errors.push("(yaml)", format!("{origin}{message}"));
            None
        }
    }
}

/// One top-level section into `parsed.file`, its problems into `parsed.errors`.
fn read_section(parsed: &mut Parsed, section: &str, value: Value) {
    let errors = &mut parsed.errors;
    let file = &mut parsed.file;
    match section {
        "server" => set(&mut file.server, section_value(section, value, errors)),
        "listen" => set(&mut file.listen, section_value(section, value, errors)),
        "log" => set(&mut file.log, section_value(section, value, errors)),
        "admin" => file.admin = section_value(section, value, errors),
        "tracing" => file.tracing = section_value(section, value, errors),
        "etcd" => file.etcd = section_value(section, value, errors),
        "redis" => file.redis = section_value(section, value, errors),
        "auth" => file.auth = section_value(section, value, errors),
        "rate_limit" => file.rate_limit = section_value(section, value, errors),
        "cache" => file.cache = section_value(section, value, errors),
        "security" => set(&mut file.security, section_value(section, value, errors)),
        "plugins" => match value {
            // Entry by entry, so each one's problems are reported; one that does not parse
            // stays as a disabled placeholder, so the others keep their index in paths.
            Value::Sequence(items) => {
                for (i, v) in items.into_iter().enumerate() {
                    let entry = section_value(&format!("plugins[{i}]"), v, errors);
                    file.plugins
                        .push(entry.unwrap_or_else(PluginConfig::unparsed));
                }
            }
            Value::Null => {}
            _ => errors.push("plugins", "expected a list of {name, settings} entries"),
        },
        "upstreams" => {
            for (name, v) in named_entries(section, value, errors) {
                parsed.declared_upstreams.insert(name.clone());
                if let Some(u) = section_value(&format!("upstreams.{name}"), v, errors) {
                    file.upstreams.insert(name, u);
                }
            }
        }
        "groups" => {
            for (name, v) in named_entries(section, value, errors) {
                parsed.declared_groups.insert(name.clone());
                if let Some(g) = section_value(&format!("groups.{name}"), v, errors) {
                    file.groups.insert(name, g);
                }
            }
        }
        "routes" => match value {
            Value::Sequence(items) => {
                for (i, v) in items.into_iter().enumerate() {
                    if let Some(r) = section_value(&format!("routes[{i}]"), v, errors) {
                        file.routes.push(r);
                        parsed.route_index.push(i);
                    }
                }
            }
            Value::Null => {}
            _ => errors.push("routes", "expected a list of routes"),
        },
        other => {
            let message = format!("unknown section, expected one of: {}", SECTIONS.join(", "));
            let likely = wording::closest(other, SECTIONS.iter().copied());
            errors.push(other, wording::with_suggestion(&message, likely));
        }
    }
}

/// Makes the file's relative paths absolute against `folder`.
fn resolve_paths(file: &mut FileConfig, folder: &Path) {
    let absolute = |p: &mut String| {
        if !p.is_empty() && Path::new(p.as_str()).is_relative() {
            *p = folder.join(p.as_str()).to_string_lossy().into_owned();
        }
    };
    absolute(&mut file.server.pid_file);
    absolute(&mut file.server.upgrade_sock);
    if let Some(jwt) = file.auth.as_mut().and_then(|a| a.jwt.as_mut()) {
        for key in [&mut jwt.public_key_file, &mut jwt.private_key_file]
            .into_iter()
            .flatten()
        {
            absolute(key);
        }
    }
    for upstream in file.upstreams.values_mut() {
        if let Some(ca) = upstream.ca_file.as_mut() {
            absolute(ca);
        }
    }
    if let Some(dir) = file.admin.as_mut().and_then(|a| a.dashboard_dir.as_mut()) {
        absolute(dir);
    }
    if let Some(etcd) = file.etcd.as_mut() {
        let tls = etcd
            .tls
            .iter_mut()
            .flat_map(|t| [&mut t.ca_file, &mut t.cert_file, &mut t.key_file]);
        for f in tls.chain([&mut etcd.cache_file]).flatten() {
            absolute(f);
        }
    }
    if let Some(tls) = file.listen.proxy_tls.as_mut() {
        for c in &mut tls.certificates {
            absolute(&mut c.cert);
            absolute(&mut c.key);
        }
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// Keys with a problem reported in one entry at most, before its other problems are left to
/// the next run.
const MAX_BAD_KEYS: usize = 16;

/// Deserializes one section, recording a failure under `path` plus the path inside the section.
fn section_value<T: DeserializeOwned>(
    path: &str,
    value: Value,
    errors: &mut ConfigErrors,
) -> Option<T> {
    let mut value = value;
    // A key with a problem (unknown, with the likely key it stands for, or a bad value) is
    // reported, then left out, so the entry's other problems, and the checks that need the
    // entry, are reported in the same run. The file stays invalid.
    let mut left_out: Vec<String> = Vec::new();
    for _ in 0..MAX_BAD_KEYS {
        let e = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        let inner = e.path().to_string();
        let full = if inner == "." {
            path.to_owned()
        } else if inner.starts_with('[') {
            format!("{path}{inner}")
        } else {
            format!("{path}.{inner}")
        };
        let message = e.inner().to_string();
        if left_out
            .iter()
            .any(|k| message == format!("missing field `{k}`"))
        {
            // A required key whose value was bad: already reported.
            return None;
        }
        let field = match wording::unknown_field(&message) {
            Some((field, suggestion)) => {
                errors.push(
                    full,
                    wording::with_suggestion(&message, suggestion.as_deref()),
                );
                field
            }
            None => {
                errors.push(full, wording::plain(&message));
                match e.path().iter().next_back() {
                    Some(serde_path_to_error::Segment::Map { key }) => key.clone(),
                    _ => return None,
                }
            }
        };
        if !wording::remove_field(&mut value, e.path().iter(), &field) {
            return None;
        }
        left_out.push(field);
    }
    None
}

/// The entries of a `name: {...}` mapping, with non-string names reported.
fn named_entries(path: &str, value: Value, errors: &mut ConfigErrors) -> Vec<(String, Value)> {
    match value {
        Value::Mapping(map) => map_entries(path, map, errors),
        Value::Null => Vec::new(),
        _ => {
            errors.push(path, "expected a mapping of name: settings");
            Vec::new()
        }
    }
}

fn map_entries(path: &str, map: Mapping, errors: &mut ConfigErrors) -> Vec<(String, Value)> {
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        match k.as_str() {
            Some(name) => out.push((name.to_owned(), v)),
            None => errors.push(path, format!("name {k:?} is not a string")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Parsed {
        parse_str(text, |_| None)
    }

    #[test]
    fn minimal_file_parses() {
        let p = parse(
            "upstreams:\n  u: {backends: [{addr: 127.0.0.1:1}]}\nroutes:\n  - {name: r, path: /, upstream: u}\n",
        );
        assert!(p.errors.is_empty(), "{}", p.errors);
        assert_eq!(p.file.routes.len(), 1);
        assert_eq!(p.file.upstreams["u"].backends[0].weight, 1);
    }

    const LOCAL: &str =
        "listen: {proxy: 127.0.0.1:1}\netcd: {endpoints: [\"http://127.0.0.1:2\"]}\n";
    const SHARED: &str = "upstreams:\n  u: {backends: [{addr: 127.0.0.1:1}]}\nroutes:\n  - {name: r, path: /, upstream: u}\n";

    #[test]
    fn the_etcd_document_brings_the_shared_sections() {
        let p = parse_sources(LOCAL, Some(SHARED), |_| None);
        assert!(p.errors.is_empty(), "{}", p.errors);
        assert_eq!(p.file.routes.len(), 1);
        assert_eq!(
            p.file.etcd.as_ref().map(|e| e.prefix.as_str()),
            Some("/gateway/")
        );
        // Alone, the local file has no routes.
        assert!(parse(LOCAL).errors.to_string().contains("routes: missing"));
    }

    #[test]
    fn a_section_comes_from_one_place_and_local_ones_only_from_the_file() {
        let twice = format!("{LOCAL}routes: []\n");
        let p = parse_sources(&twice, Some(SHARED), |_| None);
        assert!(
            p.errors
                .to_string()
                .contains("routes: set both in the local file and in the etcd document"),
            "{}",
            p.errors
        );
        let doc = format!("server: {{threads: 1}}\netcd: {{endpoints: []}}\n{SHARED}");
        let text = parse_sources(LOCAL, Some(&doc), |_| None)
            .errors
            .to_string();
        assert!(
            text.contains("server: in the etcd document: only the local file"),
            "{text}"
        );
        assert!(text.contains("etcd: in the etcd document"), "{text}");
        // A document that is not YAML says where it came from.
        let text = parse_sources(LOCAL, Some("routes: [\n"), |_| None)
            .errors
            .to_string();
        assert!(text.contains("(yaml): etcd document: "), "{text}");
        // Environment variables are substituted in the document too.
        let doc = SHARED.replace("path: /", "path: ${P}");
        let p = parse_sources(LOCAL, Some(&doc), |n| (n == "P").then(|| "/x".to_owned()));
        assert_eq!(p.file.routes[0].path, "/x");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let p = parse(
            "bogus: 1\nserver: {threads: x}\nupstreams:\n  u: {backends: [], colour: red}\nroutes:\n  - {name: a, path: /, upstream: u, timeout: 5}\n  - {name: b, path: /b, upstream: u, methodz: [GET]}\n",
        );
        let text = p.errors.to_string();
        assert_eq!(p.errors.len(), 5, "{text}");
        for needle in [
            "bogus: unknown section",
            "server.threads: invalid type",
            "upstreams.u",
            "routes[0].timeout: invalid duration",
            "routes[1]",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(p.declared_upstreams.contains("u"));
    }

    #[test]
    fn missing_required_sections() {
        let p = parse("log: {level: info}\n");
        let text = p.errors.to_string();
        assert!(text.contains("upstreams: missing"), "{text}");
        assert!(text.contains("routes: missing"), "{text}");
    }

    #[test]
    fn relative_paths_are_taken_against_the_file_folder() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("gw.yaml");
        std::fs::write(
            &path,
            "server: {pid_file: run/gw.pid, upgrade_sock: /abs/up.sock}\nauth:\n  jwt: {algorithm: RS256, public_key_file: keys/pub.pem}\nupstreams:\n  u: {backends: [{addr: 127.0.0.1:1}]}\nroutes:\n  - {name: r, path: /, upstream: u}\n",
        )
        .expect("write");
        let parsed = load_file(&path);
        let folder = std::fs::canonicalize(dir.path()).expect("folder");
        assert_eq!(
            Path::new(&parsed.file.server.pid_file),
            folder.join("run/gw.pid")
        );
        assert_eq!(parsed.file.server.upgrade_sock, "/abs/up.sock");
        let jwt = parsed.file.auth.and_then(|a| a.jwt).expect("jwt");
        assert_eq!(
            jwt.public_key_file.map(std::path::PathBuf::from),
            Some(folder.join("keys/pub.pem"))
        );
    }

    #[test]
    fn empty_routes_or_upstreams_are_errors() {
        // Found by the `config` fuzz target: a `routes:` key with only a comment under it.
        let p =
            parse("upstreams: {u: {backends: [{addr: \"127.0.0.1:1\"}]}}\nroutes:\n  # none yet\n");
        assert_eq!(
            p.errors.to_string(),
            "routes: empty: at least one route is required"
        );
        let p = parse("upstreams: {}\nroutes: []\n");
        let text = p.errors.to_string();
        assert!(text.contains("upstreams: empty"), "{text}");
        assert!(text.contains("routes: empty"), "{text}");
    }

    #[test]
    fn yaml_syntax_error() {
        let p = parse("routes: [\n");
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors.0[0].path, "(yaml)");
    }
}
