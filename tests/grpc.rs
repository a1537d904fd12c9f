//! gRPC through the gateway, with a real gRPC server and client (Python grpcio): unary and
//! streaming calls over h2c with trailers intact, the gateway's errors as gRPC statuses, and
//! `grpc-timeout` as the call's deadline.

mod common;

use common::auth::{auth_section, tokens};
use common::{wait_for, Gateway};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc/echo.py");

/// A Python that has grpcio: the CI venv's, or the system one.
fn python() -> String {
    let venv = std::env::var("CI_VENV").unwrap_or_else(|_| "/opt/ci-venv".into());
    let candidates = [format!("{venv}/bin/python"), "python3".to_owned()];
    candidates
        .into_iter()
        .find(|p| {
            Command::new(p)
                .args(["-c", "import grpc"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect("a Python with grpcio (.ci/run installs it into /opt/ci-venv)")
}

/// The gRPC server, until dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(python: &str) -> Server {
        let mut child = Command::new(python)
            .args([SCRIPT, "serve"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the gRPC server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("port");
        let port = line.trim().parse().expect("a port number");
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(python: &str, gw: &Gateway, case: &str) -> serde_json::Value {
    let out = Command::new(python)
        .args([SCRIPT, "call", &gw.proxy.to_string(), case])
        .output()
        .expect("run the gRPC client");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)))
}

fn gateway(server: &Server) -> Gateway {
    let header =
        common::gateway::header().replace("admin: \"{admin}\"}", "admin: \"{admin}\", h2c: true}");
    Gateway::start_raw(&format!(
        "{header}{}upstreams:\n  g: {{backends: [{{addr: \"127.0.0.1:{}\"}}], protocol: h2c}}\nroutes:\n  - {{name: say, path: /test.Echo/Say, upstream: g, auth: {{required: true, roles: [user]}}}}\n  - {{name: echo, path: /test.Echo, upstream: g}}\n",
        auth_section("memory"),
        server.port
    ))
}

#[test]
fn calls_pass_with_trailers_and_gateway_errors_arrive_as_grpc_statuses() {
    let python = python();
    let server = Server::start(&python);
    let gw = gateway(&server);

    let refused = call(&python, &gw, "say");
    assert_eq!(refused["code"], "UNAUTHENTICATED", "{refused}");
    assert!(
        refused["details"]
            .as_str()
            .unwrap_or("")
            .starts_with("unauthorized"),
        "{refused}"
    );

    let (access, _) = tokens(&gw, "alice", "alice-pass");
    let ok = call(&python, &gw, &format!("say:{access}"));
    assert_eq!(ok["code"], "OK", "{ok}");
    assert_eq!(ok["answer"], "hello from alice");
    assert_eq!(ok["trailers"]["x-trailer"], "done");

    let streamed = call(&python, &gw, "count");
    assert_eq!(
        streamed["answers"],
        serde_json::json!(["0", "1", "2", "3", "4"])
    );

    let missing = call(&python, &gw, "missing");
    assert_eq!(missing["code"], "UNIMPLEMENTED", "{missing}");
    assert!(missing["details"]
        .as_str()
        .unwrap_or("")
        .starts_with("route_not_found"));

    // Metrics count a gRPC error answer under the HTTP status it stands for.
    wait_for("the 401 counted", Duration::from_secs(5), || {
        gw.metric(r#"http_requests_total{method="POST",route="say",status="401"}"#)
            .filter(|n| *n >= 1.0)
    });
}

#[test]
fn grpc_timeout_is_the_calls_deadline_at_the_gateway() {
    // An origin that ignores the call's deadline and answers after 3 s.
    let origin = common::h2::H2Origin::start("slow");
    origin.set_delay(3_000);
    let header =
        common::gateway::header().replace("admin: \"{admin}\"}", "admin: \"{admin}\", h2c: true}");
    let gw = Gateway::start_raw(&format!(
        "{header}upstreams:\n  g: {{backends: [{{addr: \"{}\"}}], protocol: h2c}}\nroutes:\n  - {{name: echo, path: /test.Echo, upstream: g}}\n",
        origin.addr
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let frame = dir.path().join("frame");
    // One uncompressed message of one byte.
    std::fs::write(&frame, [0u8, 0, 0, 0, 1, b'x']).expect("frame");
    let started = Instant::now();
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "--http2-prior-knowledge",
            "-D",
            "-",
            "-o",
            "/dev/null",
        ])
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .args(["-H", "grpc-timeout: 300m", "--data-binary"])
        .arg(format!("@{}", frame.display()))
        .arg(gw.url("/test.Echo/Slow"))
        .output()
        .expect("curl must be installed (.ci/run installs it)");
    let took = started.elapsed();
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.contains("grpc-status: 4"), "{head}");
    assert!(head.contains("grpc-message: upstream_timeout"), "{head}");
    assert!(
        took < Duration::from_millis(2500),
        "waited for the backend: {took:?}"
    );
}
