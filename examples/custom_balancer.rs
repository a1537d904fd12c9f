//! The stock gateway with a load-balancing strategy of its own, `failover`: every request goes
//! to the backend of highest weight that is up (ties by address), the next one takes over while
//! it is down (health checks, outlier ejection and retries decide "up", as for the built-in
//! strategies).
//!
//! ```yaml
//! upstreams:
//!   app:
//!     strategy: failover
//!     backends: [{addr: "10.0.0.1:8080", weight: 10}, {addr: "10.0.0.2:8080"}]
//!     health_check: {kind: http, path: /health, interval: 2s}
//! ```
//!
//! Run it like the gateway: `cargo run --example custom_balancer -- -c gateway.yaml`.

use api_gateway::plugin::{Balancer, Member};
use std::process::ExitCode;

/// Member indexes by weight, highest first (the order of equal weights, by address, is kept);
/// the first accepted wins.
struct Failover {
    order: Vec<usize>,
}

impl Balancer for Failover {
    fn build(members: &[Member]) -> Self {
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(members[i].weight));
        Failover { order }
    }

    fn pick(&self, _key: &[u8], accept: &mut dyn FnMut(usize) -> bool) -> Option<usize> {
        self.order.iter().copied().find(|&i| accept(i))
    }
}

fn main() -> ExitCode {
    api_gateway::Launcher::new()
        .balancer::<Failover>("failover")
        .run()
}
