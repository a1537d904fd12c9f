//! Pingora's own log lines about failed upstream attempts, folded: with a backend down, every
//! request would otherwise add a multi-line ERROR beside its access line (tens of thousands a
//! second). The first failure of each (upstream, kind) in a [`WINDOW`] is logged as pingora
//! writes it; the others of that window are counted, and the count is written as one line with
//! the first failure of a later window. The access lines still record every request.

use super::ctx::RequestCtx;
use pingora::prelude::*;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// How long one logged failure stands for the others of its kind.
pub const WINDOW: Duration = Duration::from_secs(10);

/// (upstream, what failed) → when its window began, and the failures folded into it.
type Windows = HashMap<(Box<str>, &'static str), (Instant, u64)>;

static WINDOWS: LazyLock<Mutex<Windows>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Whether pingora's line about `error` is left out: failures on the upstream side are folded
/// by the route's upstream and the error's kind (`retried` for attempts that are retried).
pub fn upstream_failure(ctx: &RequestCtx, error: &Error, retried: bool) -> bool {
    if *error.esource() != ErrorSource::Upstream {
        return false;
    }
    let upstream = ctx
        .route
        .as_ref()
        .map_or("-", |r| r.upstream(ctx.arm.unwrap_or(0)).name.as_str());
    let kind = if retried {
        "retried"
    } else {
        error.etype().as_str()
    };
    fold(upstream, kind)
}

/// Whether pingora's line about this failure is left out: `false` for the first of its
/// (upstream, kind) in a window, which also writes how many the previous window folded.
pub fn fold(upstream: &str, kind: &'static str) -> bool {
    let Ok(mut windows) = WINDOWS.lock() else {
        return false;
    };
    let now = Instant::now();
    match windows.get_mut(&(Box::from(upstream), kind)) {
        Some((started, folded)) if now.duration_since(*started) < WINDOW => {
            *folded += 1;
            true
        }
        Some((started, folded)) => {
            if *folded > 0 {
                log::error!(
                    "upstream {upstream}: {folded} more {kind} failures in the {} s after the one logged before",
                    WINDOW.as_secs()
                );
            }
            (*started, *folded) = (now, 0);
            false
        }
        None => {
            // Upstream names come from the config, kinds from pingora's fixed list: bounded.
            windows.insert((Box::from(upstream), kind), (now, 0));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fold;

    #[test]
    fn the_first_of_a_window_is_logged_and_the_rest_folded() {
        assert!(!fold("fold-test", "ConnectRefused"));
        assert!(fold("fold-test", "ConnectRefused"));
        assert!(fold("fold-test", "ConnectRefused"));
        assert!(!fold("fold-test", "ConnectTimedout"), "each kind apart");
        assert!(
            !fold("fold-test-2", "ConnectRefused"),
            "each upstream apart"
        );
    }
}
