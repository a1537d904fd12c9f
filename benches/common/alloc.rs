//! A global allocator that counts allocations, so the benches (and `tests/allocations.rs`) can
//! say how many heap allocations one call of a per-request piece makes. It hands the work to
//! mimalloc, the binary's allocator, so timings are those of the gateway. A global allocator
//! cannot be written without `unsafe`.
#![allow(unsafe_code)]
#![allow(dead_code)]

use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}

/// Allocations (and reallocations) per call of `f`, averaged over 1 000 calls after one call
/// that may bind or warm what later calls reuse.
pub fn per_call(mut f: impl FnMut()) -> f64 {
    f();
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..1000 {
        f();
    }
    (ALLOCATIONS.load(Ordering::SeqCst) - before) as f64 / 1000.0
}

/// Prints the allocations per call of `f` under `name`, beside criterion's timings.
pub fn report(name: &str, f: impl FnMut()) {
    println!("{name}: {} allocations per call", per_call(f));
}
