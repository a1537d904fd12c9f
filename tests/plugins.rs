//! Middlewares end to end: the header, rewrite, redirect, fixed-response, compression and
//! mirroring ones, the merge order of the three levels, bad settings under `gateway -t`, and the
//! two example programs that add a middleware and a strategy of their own (the authentication
//! middlewares: tests/plugin_auth.rs).

mod common;

use common::gateway::{one_upstream, refused};
use common::{get, request, wait_for, Backend, Gateway};
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

/// `(status, headers, raw body)` of a GET; the body as sent (nothing decoded).
fn get_bytes(url: &str, headers: &[(&str, &str)]) -> (u16, http::HeaderMap, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = http::Request::builder().uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = agent
        .run(req.body(()).expect("request"))
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let body = resp.body_mut().read_to_vec().expect("body");
    (resp.status().as_u16(), resp.headers().clone(), body)
}

#[test]
fn header_edits_reach_the_backend_and_the_client_with_variables() {
    header_edits("lower");
    // Names kept as spelled: the edits go through pingora's own messages.
    header_edits("preserve");
}

fn header_edits(case: &str) {
    let b = Backend::start("b");
    let head = common::gateway::header()
        .replace("server:\n", &format!("server:\n  header_case: {case}\n"));
    let gw = Gateway::start_raw(&format!(
        "{head}{}routes:
  - name: api
    path: /api
    upstream: u
    plugins:
      - name: request_headers
        settings:
          set: {{x-who: \"$client_ip $route $method $upstream\"}}
          add: {{x-extra: two}}
          remove: [x-drop]
          rename: {{x-old: x-new}}
      - name: response_headers
        settings:
          set: {{x-served-by: \"gw/$request_id\"}}
          remove: [x-backend]
          rename: {{x-origin-note: x-note}}
",
        one_upstream(&b)
    ));
    let r = request(
        "GET",
        &gw.url("/api/x?set_header=x-origin-note:hello"),
        &[
            ("x-drop", "1"),
            ("x-old", "moved"),
            ("x-extra", "one"),
            ("x-request-id", "rid-1"),
        ],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = &r.json()["headers"];
    assert_eq!(seen["x-who"], "127.0.0.1 api GET u");
    assert_eq!(seen["x-extra"], "one, two", "add keeps the client's value");
    assert!(seen.get("x-drop").is_none(), "{seen}");
    assert!(seen.get("x-old").is_none(), "{seen}");
    assert_eq!(seen["x-new"], "moved");
    assert_eq!(r.header("x-served-by"), Some("gw/rid-1"));
    assert_eq!(r.header("x-backend"), None, "removed from the answer");
    assert_eq!(r.header("x-note"), Some("hello"));
    assert_eq!(r.header("x-origin-note"), None);
}

#[test]
fn levels_merge_top_then_group_then_route_and_narrower_names_replace() {
    let b = Backend::start("b");
    let tag = |v: &str| format!("{{name: response_headers, settings: {{add: {{x-order: {v}}}}}}}");
    let gw = Gateway::start(&format!(
        "{}plugins: [{top}]
groups:
  g: {{prefix: /g, plugins: [{{name: redirect, enabled: false}}, {{name: request_headers, settings: {{set: {{x-group: yes}}}}}}]}}
routes:
  - {{name: plain, path: /plain, upstream: u}}
  - {{name: grouped, group: g, path: /a, upstream: u, plugins: [{route}]}}
  - {{name: off, group: g, path: /off, upstream: u, plugins: [{{name: response_headers, enabled: false}}]}}
",
        one_upstream(&b),
        top = tag("top"),
        route = tag("route"),
    ));
    let order = |path: &str| {
        let r = get(&gw.url(path));
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let values: Vec<String> = r
            .headers
            .get_all("x-order")
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect();
        (values, r.json()["headers"]["x-group"].clone())
    };
    assert_eq!(order("/plain").0, ["top"]);
    let (values, group) = order("/g/a");
    assert_eq!(
        values,
        ["route"],
        "the route's response_headers replaces the top one"
    );
    assert_eq!(group, "yes", "the group's middleware runs on its routes");
    let (values, group) = order("/g/off");
    assert!(
        values.is_empty(),
        "enabled: false removes the inherited entry"
    );
    assert_eq!(group, "yes");
}

#[test]
fn path_rewrite_uses_captures_keeps_the_query_and_may_set_the_host() {
    let b = Backend::start("b");
    let gw = Gateway::start(&format!(
        "{}routes:
  - name: old
    path: /old
    upstream: u
    plugins:
      - {{name: path_rewrite, settings: {{pattern: \"^/old/items/([0-9]+)(/.*)?$\", to: \"/v2/items/$1$2?via=$route\", host: \"internal.example:8080\"}}}}
",
        one_upstream(&b)
    ));
    let r = get(&gw.url("/old/items/42/detail?x=1"));
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = r.json();
    assert_eq!(seen["path"], "/v2/items/42/detail?via=old&x=1");
    assert_eq!(seen["headers"]["host"], "internal.example:8080");
    // The pattern sees the normalised path: encoded and doubled spellings match the same way.
    let r = get(&gw.url("/old/items/%34%32"));
    assert_eq!(r.json()["path"], "/v2/items/42?via=old");
    // No match: the path goes as it is.
    assert_eq!(get(&gw.url("/old/other")).json()["path"], "/old/other");
}

#[test]
fn redirect_and_fixed_response_answer_without_the_backend() {
    let b = Backend::start("b");
    let gw = Gateway::start(&format!(
        "{}routes:
  - name: moved
    path: /moved
    upstream: u
    plugins: [{{name: redirect, settings: {{to: \"https://new.example$path\", status: 308}}}}]
  - name: down
    path: /down
    upstream: u
    plugins:
      - name: fixed_response
        settings: {{status: 503, body: \"<h1>maintenance</h1>\", content_type: text/html, headers: {{retry-after: \"120\"}}}}
",
        one_upstream(&b)
    ));
    let r = get(&gw.url("/moved/a/b?q=1"));
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some("https://new.example/moved/a/b?q=1")
    );
    let r = get(&gw.url("/down/x"));
    assert_eq!(r.status, 503);
    assert_eq!(r.body, "<h1>maintenance</h1>");
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(r.header("retry-after"), Some("120"));
    assert!(r.header("x-request-id").is_some());
    assert_eq!(b.hits(), 0, "neither reached the backend");
}

fn decode(encoding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("gzip body");
        }
        "br" => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .expect("brotli body");
        }
        "zstd" => out = zstd::decode_all(body).expect("zstd body"),
        other => panic!("unexpected encoding {other}"),
    }
    out
}

#[test]
fn compression_negotiates_each_encoding_and_works_with_the_cache() {
    let b = Backend::start("b");
    let gw = Gateway::start(&format!(
        "{}cache: {{store: memory, memory_size: 8MiB}}
routes:
  - name: c
    path: /c
    upstream: u
    plugins: [{{name: compression, settings: {{min_size: 2000}}}}]
  - name: cached
    path: /cached
    upstream: u
    cache: {{enabled: true, ttl: 60s}}
    plugins: [{{name: compression}}]
",
        one_upstream(&b)
    ));
    let url = gw.url("/c/x?pad=20000");
    let (_, _, plain) = get_bytes(&url, &[]);
    assert!(plain.len() > 20000);
    for (accept, expect) in [
        ("gzip", "gzip"),
        ("gzip, br", "zstd_or_br"),
        ("gzip;q=1, br;q=0.5, zstd;q=0.1", "gzip"),
        ("zstd", "zstd"),
        ("br", "br"),
    ] {
        let (status, h, body) = get_bytes(&url, &[("accept-encoding", accept)]);
        assert_eq!(status, 200);
        let used = h["content-encoding"].to_str().expect("ascii").to_owned();
        if expect == "zstd_or_br" {
            assert_eq!(used, "br", "br is preferred over gzip when both are equal");
        } else {
            assert_eq!(used, expect, "{accept}");
        }
        assert!(h.get("content-length").is_none());
        assert_eq!(h["vary"], "Accept-Encoding");
        assert!(
            body.len() < plain.len() / 4,
            "{accept}: {} bytes",
            body.len()
        );
        let decoded: serde_json::Value =
            serde_json::from_slice(&decode(&used, &body)).expect("JSON once decoded");
        assert_eq!(
            decoded["pad"].as_str().map(str::len),
            Some(20000),
            "{accept}"
        );
        assert_eq!(decoded["headers"]["accept-encoding"], accept);
    }
    let (_, h, body) = get_bytes(&url, &[("accept-encoding", "identity, br;q=0")]);
    assert!(h.get("content-encoding").is_none());
    assert_eq!(
        h["vary"], "Accept-Encoding",
        "listed types vary even when not encoded"
    );
    let sent: serde_json::Value = serde_json::from_slice(&body).expect("plain JSON");
    assert_eq!(sent["pad"].as_str().map(str::len), Some(20000));
    let (_, h, _) = get_bytes(&gw.url("/c/x"), &[("accept-encoding", "gzip")]);
    assert!(h.get("content-encoding").is_none(), "under min_size");
    let (_, h, body) = get_bytes(
        &gw.url("/c/x?pad=5000&set_header=content-encoding:identity&set_header=cache-control:no-transform"),
        &[("accept-encoding", "gzip")],
    );
    assert!(
        h.get_all("content-encoding").iter().all(|v| v != "gzip"),
        "no-transform is honoured"
    );
    assert!(body.len() > 5000);

    // One cache entry serves every encoding: stored as the origin sent it.
    let cached = gw.url("/cached/y?pad=20000");
    let before = b.hits();
    let (_, h, gz) = get_bytes(&cached, &[("accept-encoding", "gzip")]);
    assert_eq!(h["x-cache-status"], "MISS");
    let (_, h, br) = get_bytes(&cached, &[("accept-encoding", "br")]);
    assert_eq!(h["x-cache-status"], "HIT");
    assert_eq!(h["content-encoding"], "br");
    let (_, h, raw) = get_bytes(&cached, &[]);
    assert_eq!(h["x-cache-status"], "HIT");
    assert!(h.get("content-encoding").is_none());
    assert_eq!(decode("gzip", &gz), raw);
    assert_eq!(decode("br", &br), raw);
    assert_eq!(
        b.hits() - before,
        1,
        "the cached route reached the origin once"
    );
}

#[test]
fn unknown_middlewares_and_bad_settings_are_reported_with_their_paths() {
    let b = Backend::start("b");
    let yaml = format!(
        "{}plugins: [{{name: respons_headers}}, {{name: compression, setting: {{}}}}]
groups:
  g: {{prefix: /g, plugins: [{{name: compression, settings: {{gzip_level: 12}}}}]}}
routes:
  - name: r
    path: /r
    upstream: u
    plugins:
      - {{name: redirect, settings: {{to: /x, status: 305}}}}
      - {{name: request_headers, settings: {{set: {{x-a: \"$nope\"}}}}}}
      - {{name: path_rewrite, settings: {{pattern: \"^/(a)$\", to: /$2}}}}
      - {{name: fixed_response, settings: {{bogus: 1}}}}
",
        one_upstream(&b)
    );
    let err = refused(&yaml);
    for expected in [
        "plugins[0].name: unknown middleware \"respons_headers\" (did you mean \"response_headers\"?)",
        "plugins[1].setting: unknown field `setting`",
        "groups.g.plugins[0].settings.gzip_level: must be 1 to 9",
        "routes[0].plugins[0].settings.status: must be 301, 302, 307 or 308",
        "routes[0].plugins[1].settings.set.x-a: unknown variable $nope",
        "routes[0].plugins[2].settings.to: uses $2 but the pattern has 1 capture group(s)",
        "routes[0].plugins[3].settings.bogus: unknown field",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

/// An example program, brought up to date (`cargo test` builds examples only for
/// `--all-targets`, and not before a single test target runs).
fn example(name: &str) -> PathBuf {
    let gateway = PathBuf::from(common::gateway::BIN);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = std::process::Command::new(cargo)
        .args(["build", "--example", name])
        .status()
        .expect("cargo build")
        .success();
    assert!(ok, "cargo build --example {name}");
    gateway
        .parent()
        .expect("target folder")
        .join("examples")
        .join(name)
}

#[test]
fn the_custom_middleware_example_stamps_and_refuses_from_yaml() {
    let b = Backend::start("b");
    let gw = Gateway::start_bin(
        &example("custom_middleware"),
        &format!(
            "{}routes:
  - name: api
    path: /api
    upstream: u
    plugins:
      - {{name: stamp, settings: {{header: x-stamp, value: \"$route/$method\", refuse_header: x-client, refuse_values: [scraper]}}}}
",
            one_upstream(&b)
        ),
    );
    let r = get(&gw.url("/api/a"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-stamp"), Some("api/GET"));
    let r = request("GET", &gw.url("/api/a"), &[("x-client", "Scraper")], None);
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "forbidden");
    assert_eq!(b.hits(), 1);
    // The stock gateway does not know it.
    let err = refused(&format!(
        "{}routes: [{{name: a, path: /, upstream: u, plugins: [{{name: stamp}}]}}]\n",
        one_upstream(&b)
    ));
    assert!(
        err.contains("routes[0].plugins[0].name: unknown middleware \"stamp\""),
        "{err}"
    );
}

#[test]
fn the_custom_balancer_example_fails_over_by_weight_and_health_and_keeps_state_on_reload() {
    let first = Backend::start("first");
    let second = Backend::start("second");
    // The strategy takes the highest weight first, then address order: the higher address gets
    // the weight, so the order by address alone would give the other one.
    let (primary, backup) = if first.addr > second.addr {
        (&first, &second)
    } else {
        (&second, &first)
    };
    let config = |extra_route: &str| {
        format!(
            "upstreams:
  u:
    strategy: failover
    backends: [{{addr: \"{}\", weight: 3}}, {{addr: \"{}\"}}]
    health_check: {{kind: http, path: /health, interval: 100ms, unhealthy_threshold: 1, healthy_threshold: 1}}
routes: [{{name: r, path: /, upstream: u}}{extra_route}]
",
            primary.addr, backup.addr
        )
    };
    let gw = Gateway::start_bin(&example("custom_balancer"), &config(""));
    for _ in 0..6 {
        assert_eq!(get(&gw.url("/x")).json()["backend"], primary.name.as_str());
    }
    primary.set_healthy(false);
    wait_for("the backup to take over", Duration::from_secs(10), || {
        (get(&gw.url("/x")).json()["backend"] == backup.name.as_str()).then_some(())
    });
    // A reload that keeps the upstream keeps the strategy and the health it learnt: the primary
    // stays out (a new upstream would start with every member healthy).
    gw.reconfigure(&config(
        ", {name: more, path: /more, upstream: u, plugins: [{name: fixed_response, settings: {body: reloaded}}]}",
    ));
    gw.signal("HUP");
    wait_for("the reload", Duration::from_secs(10), || {
        (get(&gw.url("/more")).body == "reloaded").then_some(())
    });
    for _ in 0..4 {
        assert_eq!(get(&gw.url("/x")).json()["backend"], backup.name.as_str());
    }
    primary.set_healthy(true);
    wait_for("the primary to come back", Duration::from_secs(10), || {
        (get(&gw.url("/x")).json()["backend"] == primary.name.as_str()).then_some(())
    });
}

#[test]
fn request_mirror_sends_copies_to_a_healthy_backend_of_a_shadow_upstream() {
    let app = Backend::start("app");
    let shadow = Backend::start("shadow");
    let gw = Gateway::start(&format!(
        "upstreams:
  u: {{backends: [{{addr: \"{}\"}}]}}
  shadow: {{backends: [{{addr: \"{}\"}}]}}
routes:
  - {{name: m, path: /m, upstream: u, plugins: [{{name: request_mirror, settings: {{upstream: shadow}}}}]}}
",
        app.addr, shadow.addr
    ));
    for _ in 0..3 {
        assert_eq!(get(&gw.url("/m/x")).json()["backend"], "app");
    }
    wait_for("the copies", Duration::from_secs(10), || {
        (shadow.received() >= 3).then_some(())
    });
    let err = refused(&format!(
        "{}routes: [{{name: m, path: /m, upstream: u, plugins: [{{name: request_mirror, settings: {{upstream: nope}}}}]}}]\n",
        one_upstream(&app)
    ));
    assert!(
        err.contains("routes[0].plugins[0].settings.upstream: unknown upstream \"nope\""),
        "{err}"
    );
}

#[test]
fn request_mirror_copies_admitted_requests_without_delaying_them() {
    let app = Backend::start("app");
    let shadow = Backend::start("shadow");
    shadow.set_delay(3000);
    let gw = Gateway::start(&format!(
        "{}routes:
  - name: m
    path: /m
    upstream: u
    plugins: [{{name: request_mirror, settings: {{url: \"http://{}\", timeout: 10s}}}}]
  - name: gone
    path: /gone
    upstream: u
    plugins: [{{name: request_mirror, settings: {{url: \"http://{}\"}}}}]
",
        one_upstream(&app),
        shadow.addr,
        common::dead_addr()
    ));
    let started = std::time::Instant::now();
    for i in 0..4 {
        let r = request(
            "GET",
            &gw.url(&format!("/m/item/{i}?x=1")),
            &[("x-trace", "t")],
            None,
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["backend"], "app");
    }
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the shadow's 3 s answers were not waited for: {:?}",
        started.elapsed()
    );
    wait_for("the copies", Duration::from_secs(10), || {
        (shadow.received() >= 4).then_some(())
    });
    // A request with a body is not copied.
    let r = request("POST", &gw.url("/m/post"), &[], Some("payload"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body"], "payload");
    // An unreachable shadow changes nothing.
    assert_eq!(get(&gw.url("/gone/x")).status, 200);
    // The copy of a later request arrives; the POST's never went out before it.
    assert_eq!(get(&gw.url("/m/after")).status, 200);
    wait_for("the last copy", Duration::from_secs(10), || {
        (shadow.received() >= 5).then_some(())
    });
    assert_eq!(
        shadow.received(),
        5,
        "only the body-less requests were copied"
    );
}

/// A GET over plaintext HTTP/2 (prior knowledge): the status, headers and raw body.
fn h2_get(addr: std::net::SocketAddr, path: &str, accept: &str) -> (u16, http::HeaderMap, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut client = client.ready().await.expect("ready");
        let req = http::Request::builder()
            .uri(format!("http://{addr}{path}"))
            .header("accept-encoding", accept)
            .body(())
            .expect("request");
        let (resp, _) = client.send_request(req, true).expect("send");
        let resp = resp.await.expect("answer");
        let (parts, mut body) = resp.into_parts();
        let mut out = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("data");
            let _ = body.flow_control().release_capacity(chunk.len());
            out.extend_from_slice(&chunk);
        }
        (parts.status.as_u16(), parts.headers, out)
    })
}

#[test]
fn compression_over_http2() {
    let b = Backend::start("b");
    let header =
        common::gateway::header().replace("admin: \"{admin}\"}", "admin: \"{admin}\", h2c: true}");
    let gw = Gateway::start_raw(&format!(
        "{header}{}routes:\n  - {{name: c, path: /c, upstream: u, plugins: [{{name: compression}}]}}\n",
        one_upstream(&b)
    ));
    let (status, h, body) = h2_get(gw.proxy, "/c/x?pad=30000&chunked=1", "gzip");
    assert_eq!(status, 200);
    assert_eq!(h["content-encoding"], "gzip");
    assert!(h.get("content-length").is_none());
    assert!(
        h.get("transfer-encoding").is_none(),
        "no HTTP/1 framing in HTTP/2"
    );
    let decoded: serde_json::Value =
        serde_json::from_slice(&decode("gzip", &body)).expect("JSON once decoded");
    assert_eq!(decoded["pad"].as_str().map(str::len), Some(30000));
}
