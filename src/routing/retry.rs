//! A route's `retry` policy: how many tries, on what, how long each may take, how long to wait.

use crate::config::file::{RetryConfig, RetryOn};
use crate::config::ConfigErrors;
use std::time::Duration;

pub const DEFAULT_ATTEMPTS: usize = 2;
pub const MAX_ATTEMPTS: usize = 16;
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(25);
/// The longest wait between two tries, whatever the doubling gives.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: usize,
    pub on_connect: bool,
    pub on_timeout: bool,
    /// 5xx statuses that are retried.
    pub statuses: Vec<u16>,
    pub per_try_timeout: Option<Duration>,
    pub backoff: Duration,
}

impl RetryPolicy {
    /// Compiles `routes[i].retry` (at `path`), recording every problem.
    pub fn build(path: &str, cfg: &RetryConfig, errors: &mut ConfigErrors) -> RetryPolicy {
        let attempts = cfg.attempts.unwrap_or(DEFAULT_ATTEMPTS);
        if attempts == 0 || attempts > MAX_ATTEMPTS {
            errors.push(
                format!("{path}.attempts"),
                format!("must be 1 to {MAX_ATTEMPTS}"),
            );
        }
        let mut policy = RetryPolicy {
            attempts,
            on_connect: false,
            on_timeout: false,
            statuses: Vec::new(),
            per_try_timeout: cfg.per_try_timeout.map(|d| d.0),
            backoff: cfg.backoff.map_or(DEFAULT_BACKOFF, |d| d.0),
        };
        let default = [
            RetryOn::Word("connect".into()),
            RetryOn::Status(502),
            RetryOn::Status(503),
            RetryOn::Status(504),
        ];
        let on = cfg.on.as_deref().unwrap_or(&default);
        for (j, what) in on.iter().enumerate() {
            match what {
                RetryOn::Word(w) if w == "connect" => policy.on_connect = true,
                RetryOn::Word(w) if w == "timeout" => policy.on_timeout = true,
                RetryOn::Status(code) if (500..600).contains(code) => policy.statuses.push(*code),
                RetryOn::Status(code) => errors.push(
                    format!("{path}.on[{j}]"),
                    format!("{code} is not a 5xx status"),
                ),
                RetryOn::Word(w) => errors.push(
                    format!("{path}.on[{j}]"),
                    format!("unknown {w:?}: expected connect, timeout or a 5xx status"),
                ),
            }
        }
        if policy.per_try_timeout.is_some_and(|d| d.is_zero()) {
            errors.push(format!("{path}.per_try_timeout"), "must be positive");
        }
        policy
    }

    /// The wait before try number `n` (2 for the first retry): the backoff doubled for each
    /// earlier retry, at most 1 s, times a random factor in [0.5, 1.5).
    pub fn wait_before(&self, n: usize) -> Duration {
        let doublings = u32::try_from(n.saturating_sub(2))
            .unwrap_or(u32::MAX)
            .min(16);
        let base = self.backoff.saturating_mul(1 << doublings).min(MAX_BACKOFF);
        base.mul_f64(0.5 + fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bad_values() {
        let mut errors = ConfigErrors::default();
        let p = RetryPolicy::build(
            "r",
            &RetryConfig {
                attempts: None,
                on: None,
                per_try_timeout: None,
                backoff: None,
            },
            &mut errors,
        );
        assert!(errors.is_empty());
        assert_eq!((p.attempts, p.on_connect, p.on_timeout), (2, true, false));
        assert_eq!(p.statuses, [502, 503, 504]);
        let w = p.wait_before(2);
        assert!(w >= Duration::from_micros(12_500) && w < Duration::from_micros(37_500));
        assert!(p.wait_before(30) < Duration::from_millis(1500));

        let mut errors = ConfigErrors::default();
        RetryPolicy::build(
            "r",
            &RetryConfig {
                attempts: Some(0),
                on: Some(vec![
                    RetryOn::Status(404),
                    RetryOn::Word("soon".into()),
                    RetryOn::Word("timeout".into()),
                ]),
                per_try_timeout: None,
                backoff: None,
            },
            &mut errors,
        );
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["r.attempts", "r.on[0]", "r.on[1]"]);
    }
}
