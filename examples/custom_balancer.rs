//! The stock gateway with a load-balancing strategy of its own, `failover`: every request goes
//! to the first backend (by address) that is up, the next one takes over while it is down
//! (health checks, outlier ejection and retries decide "up", as for the built-in strategies).
//!
//! ```yaml
//! upstreams:
//!   app:
//!     strategy: failover
//!     backends: [{addr: "10.0.0.1:8080"}, {addr: "10.0.0.2:8080"}]
//!     health_check: {kind: http, path: /health, interval: 2s}
//! ```
//!
//! Run it like the gateway: `cargo run --example custom_balancer -- -c gateway.yaml`.

use api_gateway::plugin::{Balancer, Member};
use std::process::ExitCode;

/// Members in address order; the first accepted wins.
struct Failover {
    members: usize,
}

impl Balancer for Failover {
    fn build(members: &[Member]) -> Self {
        Failover {
            members: members.len(),
        }
    }

    fn pick(&self, _key: &[u8], accept: &mut dyn FnMut(usize) -> bool) -> Option<usize> {
        (0..self.members).find(|&i| accept(i))
    }
}

fn main() -> ExitCode {
    api_gateway::Launcher::new()
        .balancer::<Failover>("failover")
        .run()
}
