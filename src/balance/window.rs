//! Two counters over a sliding window of ten buckets, lock-free: a request costs one or two
//! atomic additions, and a bucket is reset by whoever first writes to it in a new period.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const BUCKETS: usize = 10;

#[derive(Debug, Default)]
struct Bucket {
    /// Which period it counts (`now / bucket_ms`).
    epoch: AtomicU64,
    a: AtomicU32,
    b: AtomicU32,
}

#[derive(Debug)]
pub struct Window {
    bucket_ms: u64,
    buckets: [Bucket; BUCKETS],
}

impl Window {
    /// A window of `ms` milliseconds.
    pub fn new(ms: u64) -> Window {
        Window {
            bucket_ms: (ms / BUCKETS as u64).max(1),
            buckets: Default::default(),
        }
    }

    /// Counts one event of the first (`second == false`) or second kind at `now` (ms).
    pub fn add(&self, second: bool, now: u64) {
        let epoch = now / self.bucket_ms;
        let b = &self.buckets[(epoch % BUCKETS as u64) as usize];
        let seen = b.epoch.load(Ordering::Acquire);
        if seen != epoch
            && b.epoch
                .compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            b.a.store(0, Ordering::Relaxed);
            b.b.store(0, Ordering::Relaxed);
        }
        let counter = if second { &b.b } else { &b.a };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Both counts over the window ending at `now`.
    pub fn totals(&self, now: u64) -> (u64, u64) {
        let epoch = now / self.bucket_ms;
        let oldest = epoch.saturating_sub(BUCKETS as u64 - 1);
        self.buckets
            .iter()
            .filter(|b| (oldest..=epoch).contains(&b.epoch.load(Ordering::Acquire)))
            .fold((0, 0), |(a, c), b| {
                (
                    a + u64::from(b.a.load(Ordering::Relaxed)),
                    c + u64::from(b.b.load(Ordering::Relaxed)),
                )
            })
    }

    /// Forgets everything counted.
    pub fn clear(&self) {
        for b in &self.buckets {
            b.a.store(0, Ordering::Relaxed);
            b.b.store(0, Ordering::Relaxed);
        }
    }
}
