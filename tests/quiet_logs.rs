//! Normal operation and outages do not flood the error log: pingora's lines about a failing
//! upstream are folded per upstream and kind, while the access log keeps every request.

mod common;

use common::{dead_addr, get, Gateway};
use std::time::Duration;

#[test]
fn a_dead_backend_is_one_error_line_not_one_per_request() {
    let gw = Gateway::start(&format!(
        "upstreams:\n  u: {{backends: [{{addr: \"{}\"}}], retries: 0}}\nroutes:\n  - {{name: r, path: /, upstream: u}}\n",
        dead_addr()
    ));
    for _ in 0..40 {
        assert_eq!(get(&gw.url("/x")).status, 502);
    }
    common::wait_for("every access line", Duration::from_secs(5), || {
        let n = gw
            .access_lines()
            .iter()
            .filter(|l| l["path"] == "/x")
            .count();
        (n == 40).then_some(())
    });
    let log = gw.log();
    let errors = log.matches("Fail to proxy").count();
    assert!(
        (1..=2).contains(&errors),
        "{errors} error lines for 40 failures:\n{log}"
    );
}
