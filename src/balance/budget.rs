//! The retry budget of an upstream (as Linkerd and Envoy have it): over the last 10 s, retries
//! stay below `min_per_second` × 10 plus `percent` of the requests that could be retried (those
//! of routes with `retry`, or of an upstream with `retries`), so retries cannot multiply an
//! outage.

use super::window::Window;
use crate::config::file::RetryBudgetConfig;

pub const DEFAULT_PERCENT: u8 = 20;
pub const DEFAULT_MIN_PER_SECOND: u32 = 5;
const WINDOW_MS: u64 = 10_000;

#[derive(Debug)]
pub struct RetryBudget {
    percent: u64,
    floor: u64,
    /// Requests and retries.
    window: Window,
}

impl RetryBudget {
    pub fn new(cfg: Option<&RetryBudgetConfig>) -> RetryBudget {
        let percent = cfg.and_then(|c| c.percent).unwrap_or(DEFAULT_PERCENT);
        let min = cfg
            .and_then(|c| c.min_per_second)
            .unwrap_or(DEFAULT_MIN_PER_SECOND);
        RetryBudget {
            percent: u64::from(percent),
            floor: u64::from(min) * WINDOW_MS / 1000,
            window: Window::new(WINDOW_MS),
        }
    }

    /// Counts a request (its first try) at `now` (ms).
    pub fn request(&self, now: u64) {
        self.window.add(false, now);
    }

    /// Takes one retry from the budget at `now`; false when it is spent.
    pub fn retry(&self, now: u64) -> bool {
        let (requests, retries) = self.window.totals(now);
        if retries * 100 >= self.floor * 100 + self.percent * requests {
            return false;
        }
        self.window.add(true, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stay_within_the_floor_plus_a_share_of_the_requests() {
        let budget = RetryBudget::new(Some(&RetryBudgetConfig {
            percent: Some(20),
            min_per_second: Some(1),
        }));
        let t = 1_000_000;
        for _ in 0..50 {
            budget.request(t);
        }
        // 10 (1/s over 10 s) + 20% of 50 = 20 retries.
        let granted = (0..100).filter(|_| budget.retry(t)).count();
        assert_eq!(granted, 20);
        // Ten seconds on, the window is empty again.
        assert!(budget.retry(t + 10_000));
    }
}
