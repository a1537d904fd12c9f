//! A global allocator that counts allocations, so the benches (and `tests/allocations.rs`) can
//! say how many heap allocations one call of a per-request piece makes. Each thread counts its
//! own, so another thread (the test harness's, for one) allocating meanwhile is not counted.
//! It hands the work to mimalloc, the binary's allocator, so timings are those of the gateway.
//! A global allocator cannot be written without `unsafe`.
#![allow(unsafe_code)]
#![allow(dead_code)]

use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

pub struct Counting;

thread_local! {
    // Const-initialised and without a destructor: using it never allocates.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

fn counted() -> usize {
    ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}

/// Allocations (and reallocations) of this thread per call of `f`, averaged over 1 000 calls
/// after one call that may bind or warm what later calls reuse.
pub fn per_call(mut f: impl FnMut()) -> f64 {
    f();
    let before = counted();
    for _ in 0..1000 {
        f();
    }
    (counted() - before) as f64 / 1000.0
}

/// Prints the allocations per call of `f` under `name`, beside criterion's timings.
pub fn report(name: &str, f: impl FnMut()) {
    println!("{name}: {} allocations per call", per_call(f));
}
