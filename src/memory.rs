//! Memory a config load freed, handed back to the system.
//!
//! Loading a config allocates far more for a moment (the YAML tree, the new snapshot beside the
//! running one) than the gateway keeps. The allocator returns freed pages to the system only
//! after a delay, and only when it next frees a page: a gateway that is idle after a load or a
//! reload would hold that memory indefinitely. One large block allocated and freed after the
//! delay makes it return them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A little longer than mimalloc's purge delay (1 s).
const AFTER: Duration = Duration::from_millis(1500);

/// Larger than mimalloc's largest size class, so it is a page of its own and freeing it frees
/// a page (which is when expired purges run). Never touched, so never resident.
const BLOCK: usize = 64 << 20;

/// Loads asked to be followed by a release, and whether a release thread is running.
static ASKED: AtomicU64 = AtomicU64::new(0);
static RUNNING: AtomicBool = AtomicBool::new(false);

/// After a load: returns the memory it freed once the allocator lets go of it. One thread at
/// most does this however often configs are loaded (a burst of etcd revisions): it releases
/// again while loads keep coming, then ends.
pub fn release_after_load() {
    ASKED.fetch_add(1, Ordering::SeqCst);
    if RUNNING.swap(true, Ordering::SeqCst) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("memory-release".into())
        .spawn(release_while_asked);
    if let Err(e) = spawned {
        RUNNING.store(false, Ordering::SeqCst);
        log::debug!("cannot start the memory release thread: {e}");
    }
}

fn release_while_asked() {
    loop {
        let seen = ASKED.load(Ordering::SeqCst);
        std::thread::sleep(AFTER);
        let block: Vec<u8> = Vec::with_capacity(BLOCK);
        drop(std::hint::black_box(block));
        if ASKED.load(Ordering::SeqCst) != seen {
            continue;
        }
        RUNNING.store(false, Ordering::SeqCst);
        // A load that came in just before the store saw a running thread and left its release
        // to it: take it on, unless another thread already has.
        if ASKED.load(Ordering::SeqCst) == seen || RUNNING.swap(true, Ordering::SeqCst) {
            return;
        }
    }
}

/// Runs `load` (reading and compiling a config) on a thread of its own and returns what it
/// returns. What the load allocates and frees stays in that thread's pages, which the allocator
/// takes back whole when the thread ends, instead of keeping them for the calling thread.
/// Called from a tokio runtime's thread, `load` runs in that runtime's context (a reload that
/// removes a user publishes the revocation from a task).
pub fn on_own_thread<T: Send, F: FnOnce() -> T + Send>(load: F) -> std::io::Result<T> {
    let runtime = tokio::runtime::Handle::try_current().ok();
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("config-load".into())
            .spawn_scoped(scope, move || {
                let _context = runtime.as_ref().map(tokio::runtime::Handle::enter);
                load()
            })?;
        match handle.join() {
            Ok(out) => Ok(out),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threads_named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .expect("tasks")
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim_end() == name)
            .count()
    }

    #[test]
    fn a_load_runs_on_a_thread_of_its_own_and_returns_its_value() {
        let here = std::thread::current().id();
        let (name, id) = on_own_thread(|| {
            let me = std::thread::current();
            (me.name().map(str::to_owned), me.id())
        })
        .expect("thread");
        assert_eq!(name.as_deref(), Some("config-load"));
        assert_ne!(id, here);
    }

    #[test]
    fn a_load_runs_in_the_callers_runtime() {
        assert!(!on_own_thread(|| tokio::runtime::Handle::try_current().is_ok()).expect("thread"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let inside = runtime.block_on(async {
            on_own_thread(|| tokio::runtime::Handle::try_current().is_ok()).expect("thread")
        });
        assert!(inside);
    }

    #[test]
    fn a_burst_of_loads_starts_one_release_thread_which_then_ends() {
        for _ in 0..50 {
            release_after_load();
        }
        assert!(RUNNING.load(Ordering::SeqCst));
        // The thread names itself once it runs.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while threads_named("memory-release") == 0 {
            assert!(std::time::Instant::now() < deadline, "no release thread");
            std::thread::sleep(Duration::from_millis(10));
        }
        release_after_load();
        assert_eq!(threads_named("memory-release"), 1);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while RUNNING.load(Ordering::SeqCst) || threads_named("memory-release") > 0 {
            assert!(threads_named("memory-release") <= 1);
            assert!(
                std::time::Instant::now() < deadline,
                "the release thread never ended"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
