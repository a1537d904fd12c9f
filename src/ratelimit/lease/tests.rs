use super::*;
use std::sync::Arc;

fn shared(allowed: bool) -> Decision {
    Decision {
        allowed,
        limit: 100,
        remaining: 50,
        reset: 1,
        retry_after: if allowed { 0 } else { 1 },
    }
}

fn ask(t: Take) -> Option<u64> {
    match t {
        Take::Ask { give_back, .. } => Some(give_back),
        Take::Local(_) | Take::Wait(_) => None,
    }
}

fn local(t: Take) -> Option<Decision> {
    match t {
        Take::Local(d) => Some(d),
        Take::Ask { .. } | Take::Wait(_) => None,
    }
}

fn waits(t: Take) -> bool {
    matches!(t, Take::Wait(_))
}

#[test]
fn lease_sizes_follow_the_rate_and_the_burst() {
    assert_eq!(lease_size(10_000_000.0, 10_000_000.0), MAX_LEASE);
    assert_eq!(lease_size(1000.0, 1000.0), 20);
    assert_eq!(lease_size(1000.0, 100.0), 5);
    assert_eq!(lease_size(100.0, 100.0), 2);
    assert_eq!(lease_size(100.0 / 60.0, 200.0), 1);
    assert_eq!(lease_size(5.0, 10.0), 1);
    assert_eq!(lease_size(f64::NAN, 10.0), 1);
    assert_eq!(lease_size(f64::INFINITY, f64::INFINITY), 1);
}

#[test]
fn leased_tokens_are_spent_locally_then_redis_is_asked_again() {
    let leases = Leases::new(100);
    let key = [1; 16];
    let now = Instant::now();
    assert_eq!(ask(leases.take(&key, now)), Some(0));
    leases.store(key, 5, shared(true), Duration::ZERO, now);
    let mut remaining = Vec::new();
    for _ in 0..4 {
        let d = local(leases.take(&key, now)).expect("spent locally");
        assert!(d.allowed);
        remaining.push(d.remaining);
    }
    assert_eq!(
        remaining,
        [53, 52, 51, 50],
        "shared remaining plus what is held"
    );
    assert_eq!(ask(leases.take(&key, now)), Some(0), "all spent");
    assert_eq!(
        ask(leases.take(&[2; 16], now)),
        Some(0),
        "another key has no lease"
    );
}

#[test]
fn an_expired_lease_hands_back_what_it_did_not_spend() {
    let leases = Leases::new(100);
    let key = [3; 16];
    let now = Instant::now();
    leases.store(key, 10, shared(true), Duration::ZERO, now);
    assert!(local(leases.take(&key, now)).is_some());
    let later = now + LEASE_TTL + Duration::from_millis(1);
    assert_eq!(ask(leases.take(&key, later)), Some(8));
    assert_eq!(ask(leases.take(&key, later)), Some(0), "handed back once");
}

#[test]
fn a_refusal_holds_until_redis_said_a_token_is_back() {
    let leases = Leases::new(100);
    let key = [4; 16];
    let now = Instant::now();
    leases.store(key, 0, shared(false), Duration::from_millis(1500), now);
    let d = local(leases.take(&key, now + Duration::from_millis(100))).expect("refused locally");
    assert!(!d.allowed);
    assert_eq!(d.retry_after, 1);
    assert_eq!(
        ask(leases.take(&key, now + Duration::from_millis(1600))),
        Some(0)
    );
}

#[test]
fn a_refusal_does_not_drop_tokens_leased_meanwhile() {
    let leases = Leases::new(100);
    let key = [5; 16];
    let now = Instant::now();
    leases.store(key, 3, shared(true), Duration::ZERO, now);
    leases.store(key, 0, shared(false), Duration::from_secs(1), now);
    assert!(local(leases.take(&key, now)).is_some_and(|d| d.allowed));
    leases.store(key, 4, shared(true), Duration::ZERO, now);
    let spent = (0..10)
        .filter(|_| local(leases.take(&key, now)).is_some())
        .count();
    assert_eq!(spent, 4, "1 left of the first lease and 3 of the second");
}

#[test]
fn the_table_stays_bounded() {
    let leases = Leases::new(32);
    let now = Instant::now();
    for i in 0..1000u32 {
        let mut key = [0; 16];
        key[..4].copy_from_slice(&i.to_le_bytes());
        leases.store(key, 5, shared(true), Duration::ZERO, now);
    }
    let held: usize = leases
        .shards
        .iter()
        .map(|s| s.map.lock().map_or(0, |m| m.len()))
        .sum();
    assert!(held <= 32 + SHARDS, "{held}");
}

#[test]
fn while_one_request_asks_the_others_wait_for_its_lease() {
    let leases = Leases::new(100);
    let key = [6; 16];
    let now = Instant::now();
    let first = leases.take(&key, now);
    assert!(matches!(first, Take::Ask { give_back: 0, .. }));
    assert!(waits(leases.take(&key, now)), "a second request waits");
    assert!(waits(leases.take(&key, now)), "and a third");
    assert!(
        ask(leases.take(&[7; 16], now)).is_some(),
        "another key does not"
    );
    leases.store(key, 5, shared(true), Duration::ZERO, now);
    drop(first);
    let spent = (0..10)
        .filter(|_| local(leases.take(&key, now)).is_some())
        .count();
    assert_eq!(spent, 4, "the waiting requests spend the lease");
    // Spent: the next request asks, and the others wait again.
    let next = leases.take(&key, now);
    assert!(ask(next).is_some());
}

#[test]
fn an_asker_that_gives_up_lets_the_next_request_ask() {
    let leases = Leases::new(100);
    let key = [8; 16];
    let now = Instant::now();
    let first = leases.take(&key, now);
    assert!(waits(leases.take(&key, now)));
    drop(first); // a Redis error or timeout: nothing stored
    assert_eq!(ask(leases.take(&key, now)), Some(0));
}

#[tokio::test]
async fn waiting_ends_when_the_lease_is_stored() {
    let leases = std::sync::Arc::new(Leases::new(100));
    let key = [9; 16];
    let now = Instant::now();
    // Nobody asks: no wait at all.
    let started = Instant::now();
    leases
        .wait(&key, &Notify::new(), Duration::from_secs(5))
        .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    let Take::Ask { asking, .. } = leases.take(&key, now) else {
        panic!("the first request asks");
    };
    drop(asking);
    let Take::Ask { asking, .. } = leases.take(&key, now) else {
        panic!("asks again once the first gave up");
    };
    let Take::Wait(waiters) = leases.take(&key, now) else {
        panic!("the next request waits");
    };
    let storer = {
        let leases = leases.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            leases.store(key, 5, shared(true), Duration::ZERO, Instant::now());
        })
    };
    let started = Instant::now();
    leases.wait(&key, &waiters, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "woken by the stored lease, not the limit"
    );
    drop(asking);
    storer.await.expect("stored");
    assert!(local(leases.take(&key, Instant::now())).is_some());
}

#[tokio::test]
async fn waiting_ends_when_the_asker_gives_up() {
    let leases = Leases::new(100);
    let key = [10; 16];
    let Take::Ask { asking, .. } = leases.take(&key, Instant::now()) else {
        panic!("the first request asks");
    };
    let Take::Wait(waiters) = leases.take(&key, Instant::now()) else {
        panic!("the next request waits");
    };
    let gives_up = async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(asking); // a Redis error or timeout
    };
    let started = Instant::now();
    tokio::join!(
        leases.wait(&key, &waiters, Duration::from_secs(5)),
        gives_up
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "woken when the asker gave up, not by the limit"
    );
    assert_eq!(ask(leases.take(&key, Instant::now())), Some(0));
}

/// Starts `n` requests of `key` waiting (another is asking); returns how many have woken.
async fn start_waiting(
    leases: &Arc<Leases>,
    key: [u8; 16],
    n: usize,
) -> Arc<std::sync::atomic::AtomicUsize> {
    let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..n {
        let Take::Wait(waiters) = leases.take(&key, Instant::now()) else {
            panic!("waits while another request asks");
        };
        let (leases, woken) = (Arc::clone(leases), Arc::clone(&woken));
        tokio::spawn(async move {
            leases.wait(&key, &waiters, Duration::from_secs(30)).await;
            woken.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
    }
    settle().await;
    woken
}

/// Lets the spawned waiters run (single-threaded test runtime).
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_stored_lease_wakes_one_waiter_per_token_and_one_more() {
    use std::sync::atomic::Ordering::SeqCst;
    let leases = Arc::new(Leases::new(100));
    let key = [11; 16];
    let Take::Ask { asking, .. } = leases.take(&key, Instant::now()) else {
        panic!("the first request asks");
    };
    let woken = start_waiting(&leases, key, 10).await;
    assert_eq!(woken.load(SeqCst), 0, "nobody wakes while the asker asks");
    // 4 granted: the asker spends one, 3 are left for waiters, and one more wakes to ask.
    leases.store(key, 4, shared(true), Duration::ZERO, Instant::now());
    drop(asking);
    settle().await;
    assert_eq!(woken.load(SeqCst), 4);
    // That one asks and gives up (a Redis error): the next waiter wakes to ask.
    let Take::Ask { asking, .. } = leases.take(&[11; 16], Instant::now() + LEASE_TTL) else {
        panic!("asks once the lease is spent");
    };
    drop(asking);
    settle().await;
    assert_eq!(woken.load(SeqCst), 5);
    // A refusal wakes every waiter: they are refused locally.
    let Take::Ask { asking, .. } = leases.take(&key, Instant::now() + LEASE_TTL) else {
        panic!("asks again");
    };
    leases.store(
        key,
        0,
        shared(false),
        Duration::from_secs(1),
        Instant::now(),
    );
    drop(asking);
    settle().await;
    assert_eq!(woken.load(SeqCst), 10);
}

/// Another key that lands in `key`'s shard.
fn key_in_the_shard_of(leases: &Leases, key: &[u8; 16]) -> [u8; 16] {
    (0u32..)
        .map(|i| {
            let mut k = [0; 16];
            k[..4].copy_from_slice(&i.to_le_bytes());
            k
        })
        .find(|k| k != key && std::ptr::eq(leases.shard(k), leases.shard(key)))
        .expect("a key in the same shard")
}

#[tokio::test]
async fn a_waiter_of_a_key_dropped_to_make_room_does_not_wait_for_the_limit() {
    let leases = Leases::new(1); // one key per shard
    let key = [12; 16];
    let same_shard = key_in_the_shard_of(&leases, &key);
    let now = Instant::now();
    let first = leases.take(&key, now);
    let Take::Wait(waiters) = leases.take(&key, now) else {
        panic!("waits while the first asks");
    };
    // Another key takes the shard, then the first key is asked for again.
    assert!(ask(leases.take(&same_shard, now)).is_some());
    let again = leases.take(&key, now);
    assert!(matches!(again, Take::Ask { .. }), "asked for again");
    let started = Instant::now();
    leases.wait(&key, &waiters, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "its key's entry was made again, with other waiters"
    );
    drop((first, again));
}

#[test]
fn an_asker_whose_key_was_dropped_does_not_end_the_next_askers_asking() {
    let leases = Leases::new(1); // one key per shard
    let key = [13; 16];
    let same_shard = key_in_the_shard_of(&leases, &key);
    let now = Instant::now();
    let first = leases.take(&key, now);
    // Another key takes the shard, then the first key is asked for again.
    assert!(ask(leases.take(&same_shard, now)).is_some());
    let second = leases.take(&key, now);
    assert!(matches!(second, Take::Ask { .. }));
    drop(first); // the first asker gives up
    assert!(
        waits(leases.take(&key, now)),
        "the second is still asking: the next request waits for it"
    );
    drop(second);
    assert!(ask(leases.take(&key, now)).is_some(), "now it asks");
}
