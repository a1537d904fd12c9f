//! One pingora background service runs the active health checks of every upstream in the live
//! snapshot, each on its own interval, so upstreams added by a reload are probed too.

use crate::balance::HealthDue;
use crate::state::Shared;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest sleep between looks at the snapshot (a reload may bring new upstreams).
const MAX_NAP: Duration = Duration::from_millis(250);

pub struct HealthChecks {
    shared: Arc<Shared>,
}

impl HealthChecks {
    pub fn new(shared: Arc<Shared>) -> HealthChecks {
        HealthChecks { shared }
    }
}

#[async_trait]
impl BackgroundService for HealthChecks {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let snapshot = self.shared.snapshot.load_full();
            let now = Instant::now();
            let mut wake = now + MAX_NAP;
            for upstream in snapshot.upstreams.values() {
                match upstream.health_due(now) {
                    HealthDue::Never => {}
                    HealthDue::At(at) => wake = wake.min(at),
                    HealthDue::Now => {
                        let upstream = Arc::clone(upstream);
                        tokio::spawn(async move { upstream.run_health_check().await });
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = shutdown.changed() => break,
            }
        }
    }
}
