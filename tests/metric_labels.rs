//! Metric labels stay a bounded set whatever a backend answers.

mod common;

use common::{get, Backend, Gateway};

#[test]
fn made_up_backend_statuses_become_their_class() {
    let b = Backend::start("b");
    let gw = Gateway::start(&format!(
        "upstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: r, path: /, upstream: u}}\n",
        b.addr
    ));
    for status in [299, 477, 599] {
        b.set_status(status);
        assert_eq!(get(&gw.url("/x")).status, status);
    }
    b.set_status(418);
    assert_eq!(get(&gw.url("/x")).status, 418);
    let scrape = common::wait_for("the series", std::time::Duration::from_secs(5), || {
        let text = gw.scrape();
        text.contains("status=\"418\"").then_some(text)
    });
    for class in ["2xx", "4xx", "5xx"] {
        assert!(
            scrape.contains(&format!("status=\"{class}\"")),
            "{class} missing:\n{scrape}"
        );
    }
    for raw in ["299", "477", "599"] {
        assert!(
            !scrape.contains(&format!("status=\"{raw}\"")),
            "{raw} is a label"
        );
    }
}
