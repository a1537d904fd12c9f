//! `gateway -t`: every problem with its path, exit status 1; a valid file exits 0.

mod common;

use common::gateway::BIN;
use std::process::Command;

fn check(yaml: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gw.yaml");
    std::fs::write(&path, yaml).expect("write");
    let mut cmd = Command::new(BIN);
    cmd.arg("-t").arg("-c").arg(&path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run gateway -t");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shipped_demo_config_is_valid_as_a_demo_only() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/gateway.yaml");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .args(["-t", "-c", path])
            .env_remove("GATEWAY_JWT_SECRET")
            .output()
            .expect("run")
    };
    let demo = run(&["--demo"]);
    let stderr = String::from_utf8_lossy(&demo.stderr);
    assert!(demo.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&demo.stdout).contains("ok (3 routes, 2 upstreams)"));
    assert!(
        stderr.contains("warning: auth.jwt.secret: the published demo secret is in use"),
        "{stderr}"
    );

    // Without --demo, the published secret is refused.
    let plain = run(&[]);
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert_eq!(plain.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("auth.jwt.secret: this is the demo secret"),
        "{stderr}"
    );
}

#[test]
fn short_secrets_are_warned_about() {
    let yaml = "auth:\n  jwt: {algorithm: HS256, secret: short-secret}\nupstreams: {u: {backends: [{addr: 127.0.0.1:1}]}}\nroutes: [{name: r, path: /, upstream: u}]\n";
    let (code, _, stderr) = check(yaml, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("warning: auth.jwt.secret: 12 bytes; use at least 32 random bytes"),
        "{stderr}"
    );
    let long = yaml.replace("short-secret", "a-secret-of-at-least-thirty-two-bytes");
    let (code, _, stderr) = check(&long, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn every_problem_is_listed_with_its_path() {
    let yaml = r#"
listen: {proxy: "nonsense"}
colour: blue
upstreams:
  users:
    backends: [{addr: 127.0.0.1:9001}, {addr: "not-an-address"}]
    connect_timeout: 5 seconds
  empty:
    backends: []
groups:
  api: {prefix: /api}
routes:
  - {name: a, path: /a, upstream: billing}
  - {name: a, path: /b, upstream: users}
  - {name: c, path: /c, upstream: users, group: nogroup}
  - {name: d, path: /d, upstream: users, methods: [FETCH]}
  - {name: e, path: e, upstream: users, timeout: 10x}
"#;
    let (code, _, stderr) = check(yaml, &[]);
    assert_eq!(code, 1, "{stderr}");
    for expected in [
        "listen.proxy: invalid address",
        "colour: unknown section",
        "upstreams.users.connect_timeout: invalid duration",
        "upstreams.empty.backends: at least one backend is required",
        "routes[0].upstream: unknown upstream \"billing\"",
        "routes[1].name: duplicate route name \"a\"",
        "routes[2].group: unknown group \"nogroup\"",
        "routes[3].methods[0]: unknown method \"FETCH\"",
        "routes[4].timeout: invalid duration",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    // A broken upstream is reported once, not again by every route naming it.
    assert!(!stderr.contains("unknown upstream \"users\""), "{stderr}");
}

#[test]
fn bad_addresses_and_unknown_keys_inside_entries() {
    let yaml = r#"
upstreams:
  u:
    backends: [{addr: "127.0.0.1"}, {addr: 127.0.0.1:1, wieght: 2}]
routes:
  - {name: r, path: /, upstream: u, strip_prefx: true}
"#;
    let (code, _, stderr) = check(yaml, &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("upstreams.u.backends[1].wieght: unknown field `wieght`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("routes[0].strip_prefx: unknown field `strip_prefx`"),
        "{stderr}"
    );
}

#[test]
fn address_problem_is_reported_when_the_entry_parses() {
    let yaml = "upstreams:\n  u:\n    backends: [{addr: \"127.0.0.1\"}]\nroutes:\n  - {name: r, path: /, upstream: u}\n";
    let (code, _, stderr) = check(yaml, &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("upstreams.u.backends[0].addr: invalid address \"127.0.0.1\""),
        "{stderr}"
    );
}

#[test]
fn overlapping_routes_are_rejected() {
    let yaml = r#"
upstreams: {u: {backends: [{addr: 127.0.0.1:1}]}}
groups: {api: {prefix: /api/}}
routes:
  - {name: a, path: /users, upstream: u, group: api, methods: [GET, POST]}
  - {name: b, path: /api/users, upstream: u, methods: [POST]}
  - {name: c, path: /api/users, upstream: u, methods: [DELETE]}
  - {name: d, path: /x, upstream: u}
  - {name: e, path: /x/, upstream: u}
"#;
    let (code, _, stderr) = check(yaml, &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "routes[1].path: /api/users with these methods is already served by routes[0]"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("routes[4].path: /x with these methods is already served by routes[3]"),
        "{stderr}"
    );
    assert!(!stderr.contains("routes[2]"), "{stderr}");
}

#[test]
fn later_sections_are_validated() {
    let yaml = r#"
auth:
  jwt: {algorithm: HS256}
  users: [{username: admin, password_hash: hunter2}]
  api_keys: [{name: k, key_hash: "sha256:ABC"}]
  revocation_store: redis
rate_limit: {rate: 10/x, burst: 0, key: [client_ip, cookie]}
cache: {memory_size: 0}
security:
  trusted_proxies: [10.0.0.0/33]
  cors: {allow_origins: ["*"], allow_credentials: true}
upstreams: {u: {backends: [{addr: 127.0.0.1:1}], health_check: {kind: tcp, path: /h, interval: 0s}}}
routes: [{name: r, path: /, upstream: u}]
"#;
    let (code, _, stderr) = check(yaml, &[]);
    assert_eq!(code, 1);
    for expected in [
        "rate_limit.rate: invalid rate",
        "auth.jwt.secret: required for HS256",
        "auth.users[0].password_hash: expected an argon2id hash",
        "auth.api_keys[0].key_hash: expected sha256:",
        "redis: required",
        "cache.memory_size: must be positive",
        "security.trusted_proxies[0]: invalid CIDR",
        "security.cors.allow_origins: \"*\" is not allowed with allow_credentials",
        "upstreams.u.health_check.path: only http checks have a path",
        "upstreams.u.health_check.interval: must be positive",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn paths_name_entries_as_written_after_one_that_failed_to_parse() {
    let yaml = r#"
upstreams: {u: {backends: [{addr: 127.0.0.1:1}]}}
routes:
  - {name: a, path: /a, upstream: u}
  - {name: b, path: /b, upstream: u, colour: red}
  - {name: c, path: /c, upstream: billing}
  - {name: a, path: /d, upstream: u}
"#;
    let (code, _, stderr) = check(yaml, &[]);
    assert_eq!(code, 1, "{stderr}");
    for expected in [
        "routes[1].colour: unknown field `colour`",
        "routes[2].upstream: unknown upstream \"billing\"",
        "routes[3].name: duplicate route name \"a\" (also routes[0])",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(!stderr.contains("routes[1].upstream"), "{stderr}");
}

#[test]
fn redis_topologies_are_checked() {
    let tail = r#"
auth:
  jwt: {algorithm: HS256, secret: a-secret-of-thirty-two-bytes-long}
  revocation_store: redis
upstreams: {u: {backends: [{addr: 127.0.0.1:1}]}}
routes: [{name: r, path: /, upstream: u}]
"#;
    // A cluster (by some of its nodes) and sentinels are accepted; `-t` does not connect.
    for redis in [
        r#"redis: {cluster: ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]}"#,
        r#"redis: {sentinel: {master: mymaster, nodes: ["redis://127.0.0.1:26379"], password: p}}"#,
    ] {
        let (code, _, stderr) = check(&format!("{redis}{tail}"), &[]);
        assert_eq!(code, 0, "{redis}: {stderr}");
    }
    let bad = [
        (
            r#"redis: {url: "redis://127.0.0.1:1", cluster: ["redis://127.0.0.1:7000"]}"#,
            "redis: set only one of url, cluster and sentinel",
        ),
        (
            r#"redis: {cluster: ["redis://127.0.0.1:7000", "127.0.0.1:7001"]}"#,
            "redis.cluster[1]: invalid URL",
        ),
        (
            r#"redis: {sentinel: {master: "", nodes: []}}"#,
            "redis.sentinel.master",
        ),
    ];
    for (redis, expected) in bad {
        let (code, _, stderr) = check(&format!("{redis}{tail}"), &[]);
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
    }
}

#[test]
fn environment_substitution() {
    let yaml = "upstreams:\n  u: {backends: [{addr: \"${BACKEND}\"}], read_timeout: \"${READ:-5s}\"}\nroutes:\n  - {name: r, path: /, upstream: u}\n";
    let (code, _, stderr) = check(yaml, &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("environment variable BACKEND is not set"),
        "{stderr}"
    );
    let (code, stdout, stderr) = check(yaml, &[("BACKEND", "127.0.0.1:7000")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ok (1 routes, 1 upstreams)"));
}

#[test]
fn missing_file_and_bad_yaml() {
    let out = Command::new(BIN)
        .args(["-t", "-c", "/nonexistent/gw.yaml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read file"));
    let (code, _, stderr) = check("routes: [\n", &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("(yaml)"), "{stderr}");
}

#[test]
fn traffic_split_problems_are_all_listed_with_their_paths() {
    let yaml = "upstreams: {v1: {backends: [{addr: 127.0.0.1:1}]}, v2: {backends: [{addr: 127.0.0.1:2}]}}\nroutes:\n  - {name: a, path: /a, upstream: v1, upstreams: [{name: v2, weight: 1}]}\n  - {name: b, path: /b, upstreams: [{name: v1, weight: 1}, {name: v3, weight: 1}, {name: v1, weight: 2}]}\n  - {name: c, path: /c, upstreams: [{name: v1, weight: 0}, {name: v2, weight: 0}], split: {sticky: 'cookie:a;b', override_header: 'X Canary'}}\n  - {name: d, path: /d}\n  - {name: e, path: /e, upstreams: [{name: v1, weight: 9}, {name: v2, weight: 1}], split: {sticky: 'header:X-Session', override_cookie: canary}}\n";
    let (code, _, stderr) = check(yaml, &[]);
    assert_eq!(code, 1, "{stderr}");
    for want in [
        "routes[0].upstreams: give either upstream or upstreams",
        "routes[1].upstreams[1].name: unknown upstream \"v3\"",
        "routes[1].upstreams[2].name: \"v1\" is listed twice",
        "routes[2].upstreams: weights add up to 0",
        "routes[2].split.sticky",
        "routes[2].split.override_header",
        "routes[3].upstream: missing",
    ] {
        assert!(stderr.contains(want), "{want} in {stderr}");
    }
    assert!(!stderr.contains("routes[4]"), "{stderr}");
}

#[test]
fn server_tuning_knobs_are_checked() {
    let base = "upstreams: {u: {backends: [{addr: 127.0.0.1:1}]}}\nroutes: [{name: r, path: /, upstream: u}]\n";
    let good = format!("server: {{upstream_keepalive_pool_size: 0, listener_tasks_per_fd: 2, work_stealing: false}}\n{base}");
    let (code, _, stderr) = check(&good, &[]);
    assert_eq!(code, 0, "{stderr}");
    let bad = format!("server: {{threads: 0, listener_tasks_per_fd: 0}}\n{base}");
    let (code, _, stderr) = check(&bad, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("server.threads"), "{stderr}");
    assert!(stderr.contains("server.listener_tasks_per_fd"), "{stderr}");
    let huge = format!("server: {{listener_tasks_per_fd: 100000, upstream_keepalive_pool_size: 100000000000}}\n{base}");
    let (code, _, stderr) = check(&huge, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("server.listener_tasks_per_fd: must be at most 64"),
        "{stderr}"
    );
    assert!(
        stderr.contains("server.upstream_keepalive_pool_size: must be at most 1000000"),
        "{stderr}"
    );
    let typo = format!("server: {{work_stealing: maybe}}\n{base}");
    let (code, _, stderr) = check(&typo, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("server.work_stealing"), "{stderr}");
    let case = format!("server: {{header_case: preserve}}\n{base}");
    let (code, _, stderr) = check(&case, &[]);
    assert_eq!(code, 0, "{stderr}");
    let case = format!("server: {{header_case: upper}}\n{base}");
    let (code, _, stderr) = check(&case, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("server.header_case"), "{stderr}");
}

#[test]
fn outbound_urls_are_checked_with_the_config() {
    let body = "upstreams:\n  u: {backends: [{addr: \"127.0.0.1:1\"}]}\nroutes:\n  - {name: r, path: /, upstream: u}\n";
    for (section, path) in [
        ("admin: {prometheus_url: \"URL\"}\n", "admin.prometheus_url"),
        (
            "tracing: {otlp_endpoint: \"URL\"}\n",
            "tracing.otlp_endpoint",
        ),
    ] {
        for bad in [
            "localhost:9090",
            "ftp://host/x",
            "http://",
            "http://u:%zz@host/",
        ] {
            let (code, _, err) = check(&format!("{}{body}", section.replace("URL", bad)), &[]);
            assert_eq!(code, 1, "{path} = {bad}: {err}");
            assert!(
                err.contains(&format!("{path}: bad URL")),
                "{path} = {bad}: {err}"
            );
        }
        let (code, _, err) = check(
            &format!(
                "{}{body}",
                section.replace("URL", "https://ops:pw@host:9091/p")
            ),
            &[],
        );
        assert_eq!(code, 0, "{err}");
    }
}

#[test]
fn unknown_keys_get_suggestions_and_do_not_hide_the_entrys_other_problems() {
    let yaml = "upstreams:\n  u: {backends: [{addr: \"127.0.0.1:1\", wieght: 2}], stratgey: round_robin}\nroutes:\n  - {name: r, path: /, upstrem: u, upstream: nowhere}\n  - {name: s, path: /s, upstream: u, timeout: soon, colour: blue}\nserver: {threads: two}\n";
    let (code, _, err) = check(yaml, &[]);
    assert_eq!(code, 1, "{err}");
    for expected in [
        "upstreams.u.backends[0].wieght: unknown field `wieght`",
        "(did you mean `weight`?)",
        "upstreams.u.stratgey: unknown field `stratgey`",
        "(did you mean `strategy`?)",
        "routes[0].upstrem: unknown field `upstrem`",
        "(did you mean `upstream`?)",
        // The same route's own problem, found in the same run.
        "routes[0].upstream: unknown upstream \"nowhere\"",
        "routes[1].colour: unknown field `colour`",
        "routes[1].timeout: invalid duration \"soon\"",
        "server.threads: invalid type: string \"two\", expected a whole number",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(!err.contains("colour`, expected one of `name`, `group`, `path`, `methods`, `upstream`, `upstreams`, `split`, `strip_prefix`, `case_insensitive`, `allow_semicolon`, `auth`, `rate_limit`, `cache`, `timeout`, `retry`, `https_redirect`, `websocket`, `ip_allow`, `ip_deny`, `security_headers` (did"), "no suggestion for a stranger: {err}");
    for rust in ["usize", "u32", "u64", "u128", "i64", "f64"] {
        assert!(!err.contains(rust), "a Rust type name in:\n{err}");
    }
}

#[test]
fn hash_password_on_a_terminal_asks_twice_without_echo() {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    // `script` gives the command a terminal of its own.
    let mut child = Command::new("script")
        .args(["-qec", &format!("{BIN} hash-password"), "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let seen = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = {
        let seen = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .expect("lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let mut stdin = child.stdin.take().expect("stdin");
    for prompt in ["Password: ", "Again: "] {
        common::wait_for(prompt, std::time::Duration::from_secs(10), || {
            seen.lock().expect("lock").contains(prompt).then_some(())
        });
        stdin.write_all(b"tty-pass-123\n").expect("type");
    }
    let status = child.wait().expect("exit");
    reader.join().expect("reader");
    let out = seen.lock().expect("lock").clone();
    assert!(status.success(), "{out}");
    assert!(out.contains("$argon2id$"), "{out}");
    assert!(
        !out.contains("tty-pass-123"),
        "the password was echoed: {out}"
    );
}
