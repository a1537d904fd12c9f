//! A backend pick allocates nothing, for every strategy (counted by a global allocator).
//! The crate denies unsafe code; a global allocator cannot be written without it.
#![allow(unsafe_code)]

use api_gateway::Upstream;
use api_gateway::UpstreamConfig;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn picks_do_not_allocate() {
    for strategy in [
        "round_robin",
        "weighted_round",
        "least_conn",
        "ip_hash",
        "random",
    ] {
        for n in [3usize, 100] {
            let backends: Vec<String> = (0..n)
                .map(|i| {
                    format!(
                        "{{addr: \"127.0.0.1:{}\", weight: {}}}",
                        10_000 + i,
                        1 + i % 3
                    )
                })
                .collect();
            let yaml = format!("strategy: {strategy}\nbackends: [{}]", backends.join(", "));
            let cfg: UpstreamConfig = serde_yaml::from_str(&yaml).expect("valid upstream");
            let up = Upstream::build("u", &cfg, None).expect("builds");
            let excluded = [up.select(b"", &[]).expect("pick").stats];
            let before = ALLOCATIONS.load(Ordering::SeqCst);
            for i in 0u32..1000 {
                let key = i.to_be_bytes();
                let picked = up.select(&key, &excluded).expect("pick");
                assert_ne!(picked.addr, excluded[0].addr());
            }
            let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
            assert_eq!(
                allocations, 0,
                "{strategy} with {n} backends allocated {allocations} times in 1000 picks"
            );
        }
    }
}
