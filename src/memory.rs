//! Memory a config load freed, handed back to the system.
//!
//! Loading a config allocates far more for a moment (the YAML tree, the new snapshot beside the
//! running one) than the gateway keeps. The allocator returns freed pages to the system only
//! after a delay, and only when it next frees a page: a gateway that is idle after a load or a
//! reload would hold that memory indefinitely. One large block allocated and freed after the
//! delay makes it return them.

use std::time::Duration;

/// A little longer than mimalloc's purge delay (1 s).
const AFTER: Duration = Duration::from_millis(1500);

/// Larger than mimalloc's largest size class, so it is a page of its own and freeing it frees
/// a page (which is when expired purges run). Never touched, so never resident.
const BLOCK: usize = 64 << 20;

/// After a load: returns the memory it freed once the allocator lets go of it.
pub fn release_after_load() {
    let spawned = std::thread::Builder::new()
        .name("memory-release".into())
        .spawn(|| {
            std::thread::sleep(AFTER);
            let block: Vec<u8> = Vec::with_capacity(BLOCK);
            drop(std::hint::black_box(block));
        });
    if let Err(e) = spawned {
        log::debug!("cannot start the memory release thread: {e}");
    }
}

/// Runs `load` (reading and compiling a config) on a thread of its own and returns what it
/// returns. What the load allocates and frees stays in that thread's pages, which the allocator
/// takes back whole when the thread ends, instead of keeping them for the calling thread.
pub fn on_own_thread<T: Send, F: FnOnce() -> T + Send>(load: F) -> std::io::Result<T> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("config-load".into())
            .spawn_scoped(scope, load)?;
        match handle.join() {
            Ok(out) => Ok(out),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
