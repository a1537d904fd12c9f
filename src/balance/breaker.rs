//! Circuit breaking per upstream: caps on requests in flight and on connects under way, and a
//! breaker over the failure
//! share of a sliding window. Closed: every request goes. Open (the share passed
//! `failure_percent` with at least `min_requests` in the window): none goes, for `open_for`.
//! Half-open: `half_open_requests` trial requests go; all succeeding closes the breaker, one
//! failing opens it again. Lock-free: a request costs a few atomic operations.

use super::window::Window;
use crate::config::file::BreakerConfig;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_FAILURE_PERCENT: u8 = 50;
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
pub const DEFAULT_MIN_REQUESTS: u32 = 20;
pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(5);
pub const DEFAULT_HALF_OPEN: u32 = 3;

/// The breaker's state, as exported in `circuit_state` (0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            1 => State::Open,
            2 => State::HalfOpen,
            _ => State::Closed,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

/// Why a request was not let through; the client may retry after `retry_after` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub retry_after: u64,
    /// The breaker is open (otherwise: the concurrency cap).
    pub open: bool,
}

/// Holds a request's place under the cap until dropped; says whether it is a trial.
#[derive(Debug)]
pub struct Slot {
    shared: Arc<Shared>,
    trial: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One connect under way to a backend of the upstream, until dropped (connected or failed).
#[derive(Debug)]
pub struct Connecting(Arc<Shared>);

impl Drop for Connecting {
    fn drop(&mut self) {
        self.0.connecting.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct Shared {
    in_flight: AtomicUsize,
    connecting: AtomicUsize,
}

#[derive(Debug)]
pub struct Breaker {
    max_requests: Option<usize>,
    max_pending_connects: Option<usize>,
    failure_percent: u64,
    min_requests: u64,
    open_for_ms: u64,
    half_open: u32,
    shared: Arc<Shared>,
    state: AtomicU8,
    open_until: AtomicU64,
    trials: AtomicU32,
    trials_ok: AtomicU32,
    /// Successes and failures.
    window: Window,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Breaker {
    pub fn new(cfg: &BreakerConfig) -> Breaker {
        let window = ms(cfg.window.map_or(DEFAULT_WINDOW, |d| d.0));
        Breaker {
            max_requests: cfg.max_requests,
            max_pending_connects: cfg.max_pending_connects,
            failure_percent: u64::from(cfg.failure_percent.unwrap_or(DEFAULT_FAILURE_PERCENT)),
            min_requests: u64::from(cfg.min_requests.unwrap_or(DEFAULT_MIN_REQUESTS)),
            open_for_ms: ms(cfg.open_for.map_or(DEFAULT_OPEN_FOR, |d| d.0)),
            half_open: cfg.half_open_requests.unwrap_or(DEFAULT_HALF_OPEN),
            shared: Arc::new(Shared::default()),
            state: AtomicU8::new(State::Closed as u8),
            open_until: AtomicU64::new(0),
            trials: AtomicU32::new(0),
            trials_ok: AtomicU32::new(0),
            window: Window::new(window),
        }
    }

    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Lets a request through at `now` (Unix ms), or says why not. `Ok` carries the transition
    /// to half-open when this call made it.
    pub fn admit(&self, now: u64) -> Result<(Slot, Option<State>), Refusal> {
        let slot = self.take_slot()?;
        match self.state() {
            State::Closed => Ok((slot, None)),
            State::Open => {
                let until = self.open_until.load(Ordering::Acquire);
                if now < until {
                    return Err(Refusal {
                        retry_after: (until - now).div_ceil(1000).max(1),
                        open: true,
                    });
                }
                let moved = self
                    .state
                    .compare_exchange(
                        State::Open as u8,
                        State::HalfOpen as u8,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok();
                if moved {
                    self.trials.store(0, Ordering::Release);
                    self.trials_ok.store(0, Ordering::Release);
                }
                self.trial(slot)
                    .map(|s| (s, moved.then_some(State::HalfOpen)))
            }
            State::HalfOpen => self.trial(slot).map(|s| (s, None)),
        }
    }

    /// Counts a connect attempt until the guard is dropped; refused past `max_pending_connects`.
    /// `Ok(None)` without that cap.
    pub fn start_connect(&self) -> Result<Option<Connecting>, Refusal> {
        let Some(max) = self.max_pending_connects else {
            return Ok(None);
        };
        let n = self.shared.connecting.fetch_add(1, Ordering::Relaxed) + 1;
        let guard = Connecting(Arc::clone(&self.shared));
        if n > max {
            return Err(Refusal {
                retry_after: 1,
                open: false,
            });
        }
        Ok(Some(guard))
    }

    /// Connects under way, when they are capped.
    pub fn connecting(&self) -> Option<usize> {
        self.max_pending_connects?;
        Some(self.shared.connecting.load(Ordering::Relaxed))
    }

    fn take_slot(&self) -> Result<Slot, Refusal> {
        let n = self.shared.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let slot = Slot {
            shared: Arc::clone(&self.shared),
            trial: false,
        };
        if self.max_requests.is_some_and(|max| n > max) {
            return Err(Refusal {
                retry_after: 1,
                open: false,
            });
        }
        Ok(slot)
    }

    fn trial(&self, mut slot: Slot) -> Result<Slot, Refusal> {
        if self.trials.fetch_add(1, Ordering::AcqRel) < self.half_open {
            slot.trial = true;
            return Ok(slot);
        }
        Err(Refusal {
            retry_after: 1,
            open: true,
        })
    }

    /// Records how the request that held `slot` ended; the transition it caused, if any.
    pub fn record(&self, slot: &Slot, failed: bool, now: u64) -> Option<State> {
        if slot.trial {
            if failed {
                return self.open(State::HalfOpen, now);
            }
            if self.trials_ok.fetch_add(1, Ordering::AcqRel) + 1 >= self.half_open {
                return self.close();
            }
            return None;
        }
        self.window.add(failed, now);
        if !failed || self.state() != State::Closed {
            return None;
        }
        let (ok, bad) = self.window.totals(now);
        let total = ok + bad;
        if total >= self.min_requests && bad * 100 >= self.failure_percent * total {
            return self.open(State::Closed, now);
        }
        None
    }

    fn open(&self, from: State, now: u64) -> Option<State> {
        self.open_until
            .store(now.saturating_add(self.open_for_ms), Ordering::Release);
        self.state
            .compare_exchange(
                from as u8,
                State::Open as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .ok()
            .map(|_| State::Open)
    }

    fn close(&self) -> Option<State> {
        self.window.clear();
        self.state
            .compare_exchange(
                State::HalfOpen as u8,
                State::Closed as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .ok()
            .map(|_| State::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::PositiveDuration;

    fn breaker(max: Option<usize>) -> Breaker {
        Breaker::new(&BreakerConfig {
            max_requests: max,
            max_pending_connects: None,
            failure_percent: Some(50),
            window: Some(PositiveDuration(Duration::from_secs(10))),
            min_requests: Some(4),
            open_for: Some(PositiveDuration(Duration::from_secs(2))),
            half_open_requests: Some(2),
        })
    }

    fn run(b: &Breaker, failed: bool, now: u64) -> Option<State> {
        let (slot, _) = b.admit(now).expect("admitted");
        b.record(&slot, failed, now)
    }

    #[test]
    fn the_cap_refuses_past_max_requests_and_frees_on_drop() {
        let b = breaker(Some(2));
        let first = b.admit(0).expect("one");
        let _second = b.admit(0).expect("two");
        let refused = b.admit(0).expect_err("three is over the cap");
        assert_eq!(
            refused,
            Refusal {
                retry_after: 1,
                open: false
            }
        );
        drop(first);
        assert!(b.admit(0).is_ok());
    }

    #[test]
    fn opens_on_a_failure_burst_half_opens_and_closes() {
        let b = breaker(None);
        let t = 1_000_000;
        assert_eq!(run(&b, false, t), None);
        assert_eq!(run(&b, true, t), None, "1 of 2: under min_requests");
        assert_eq!(run(&b, false, t), None);
        assert_eq!(run(&b, true, t + 1), Some(State::Open), "2 of 4 failed");
        let refused = b.admit(t + 500).expect_err("open");
        assert_eq!(
            refused,
            Refusal {
                retry_after: 2,
                open: true
            }
        );
        // After open_for: two trials; a third waits.
        let (trial1, moved) = b.admit(t + 2_001).expect("trial");
        assert_eq!(moved, Some(State::HalfOpen));
        let (trial2, _) = b.admit(t + 2_001).expect("trial");
        assert!(b.admit(t + 2_001).is_err(), "only two trials");
        assert_eq!(b.record(&trial1, false, t + 2_002), None);
        assert_eq!(b.record(&trial2, false, t + 2_002), Some(State::Closed));
        assert_eq!(b.state(), State::Closed);
        // The old failures were forgotten with the close.
        assert_eq!(run(&b, true, t + 2_003), None);
    }

    #[test]
    fn a_failed_trial_opens_it_again_and_old_buckets_expire() {
        let b = breaker(None);
        let t = 5_000_000;
        for failed in [false, false, true, true] {
            run(&b, failed, t);
        }
        assert_eq!(b.state(), State::Open);
        let (trial, _) = b.admit(t + 2_000).expect("trial");
        assert_eq!(b.record(&trial, true, t + 2_000), Some(State::Open));
        assert!(b.admit(t + 3_000).is_err());

        let b = breaker(None);
        for _ in 0..3 {
            run(&b, true, t);
        }
        // Ten seconds later those failures are out of the window.
        for _ in 0..3 {
            assert_eq!(run(&b, false, t + 11_000), None);
        }
        assert_eq!(run(&b, true, t + 11_000), None, "1 of 4 failed");
    }

    #[test]
    fn connects_under_way_are_capped_until_they_end() {
        let cfg = |yaml: &str| -> BreakerConfig { serde_yaml::from_str(yaml).expect("yaml") };
        let b = Breaker::new(&cfg("{max_pending_connects: 2}"));
        let first = b.start_connect().expect("one").expect("counted");
        let _second = b.start_connect().expect("two");
        let refused = b.start_connect().expect_err("three is over the cap");
        assert_eq!(
            refused,
            Refusal {
                retry_after: 1,
                open: false
            }
        );
        drop(first);
        assert!(b.start_connect().is_ok());
        let uncapped = Breaker::new(&cfg("{}"));
        assert!(uncapped.start_connect().expect("no cap").is_none());
    }
}
