use super::*;
use crate::config::file::UpstreamConfig;
use std::collections::BTreeSet;

fn upstreams(names: &[&str]) -> BTreeMap<String, Arc<Upstream>> {
    names
        .iter()
        .map(|n| {
            let cfg: UpstreamConfig =
                serde_yaml::from_str("backends: [{addr: 127.0.0.1:1}]").expect("yaml");
            let up = Upstream::build(n, &cfg, None).expect("builds");
            ((*n).to_owned(), Arc::new(up))
        })
        .collect()
}

fn split(weights: &[(&str, u32)], options: &str) -> Split {
    let known = upstreams(&["v1", "v2", "v3"]);
    let list: Vec<WeightedUpstream> = weights
        .iter()
        .map(|(n, w)| WeightedUpstream {
            name: (*n).to_owned(),
            weight: *w,
        })
        .collect();
    let cfg: SplitConfig = serde_yaml::from_str(options).expect("yaml");
    let mut errors = ConfigErrors::default();
    let s = Split::build(
        "r",
        None,
        Some(&list),
        Some(&cfg),
        &known,
        &BTreeSet::new(),
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors}");
    s.expect("built")
}

fn errors_of(one: Option<&str>, weights: Option<&[(&str, u32)]>, options: Option<&str>) -> String {
    let known = upstreams(&["v1", "v2"]);
    let list: Option<Vec<WeightedUpstream>> = weights.map(|w| {
        w.iter()
            .map(|(n, w)| WeightedUpstream {
                name: (*n).to_owned(),
                weight: *w,
            })
            .collect()
    });
    let cfg: Option<SplitConfig> = options.map(|o| serde_yaml::from_str(o).expect("yaml"));
    let one = one.map(str::to_owned);
    let mut errors = ConfigErrors::default();
    let built = Split::build(
        "routes[0]",
        one.as_ref(),
        list.as_ref(),
        cfg.as_ref(),
        &known,
        &BTreeSet::new(),
        &mut errors,
    );
    assert!(built.is_none(), "built despite {errors}");
    errors.to_string()
}

fn request(headers: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build("GET", b"/", None).expect("request");
    for (k, v) in headers {
        r.append_header(k.to_string(), *v).expect("header");
    }
    r
}

fn name(s: &Split, arm: usize) -> &str {
    s.upstream(arm).name.as_str()
}

fn ip(n: u32) -> Option<IpAddr> {
    Some(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n)))
}

fn pick(s: &Split, ip: Option<IpAddr>, user: Option<&str>, headers: &[(&str, &str)]) -> usize {
    let header = request(headers);
    s.pick(&Client {
        header: &header,
        ip,
        user,
    })
}

#[test]
fn distinct_clients_split_by_weight_and_each_stays_put() {
    let s = split(&[("v1", 95), ("v2", 5)], "{}");
    let header = request(&[]);
    let on_v2 = (0..20_000)
        .filter(|n| {
            let client = Client {
                header: &header,
                ip: ip(*n),
                user: None,
            };
            let arm = s.pick(&client);
            assert_eq!(arm, s.pick(&client), "client {n} moved");
            arm == 1
        })
        .count();
    let share = on_v2 as f64 / 20_000.0;
    assert!((0.04..0.06).contains(&share), "v2 took {share}");
}

#[test]
fn more_weight_only_moves_clients_towards_the_side_that_gained() {
    let before = split(&[("v1", 95), ("v2", 5)], "{}");
    let after = split(&[("v1", 80), ("v2", 20)], "{}");
    let mut moved = 0;
    for n in 0..5_000 {
        let (a, b) = (
            pick(&before, ip(n), None, &[]),
            pick(&after, ip(n), None, &[]),
        );
        assert!(!(a == 1 && b == 0), "client {n} left v2");
        moved += usize::from(a != b);
    }
    let share = moved as f64 / 5_000.0;
    assert!((0.12..0.18).contains(&share), "{share} moved");
}

#[test]
fn overrides_name_a_side_by_header_or_cookie() {
    let s = split(
        &[("v1", 95), ("v2", 5)],
        "{override_header: X-Canary, override_cookie: canary}",
    );
    let every = |headers: &[(&str, &str)]| -> Vec<&str> {
        (0..200)
            .map(|n| name(&s, pick(&s, ip(n), None, headers)))
            .collect()
    };
    assert!(every(&[("x-canary", "always")]).iter().all(|n| *n == "v2"));
    assert!(every(&[("x-canary", " ALWAYS ")])
        .iter()
        .all(|n| *n == "v2"));
    assert!(every(&[("x-canary", "never")]).iter().all(|n| *n == "v1"));
    assert!(every(&[("x-canary", "v2")]).iter().all(|n| *n == "v2"));
    assert!(every(&[("cookie", "a=b; canary=always")])
        .iter()
        .all(|n| *n == "v2"));
    // The header wins over the cookie; unknown values leave the normal assignment.
    assert!(every(&[("x-canary", "never"), ("cookie", "canary=always")])
        .iter()
        .all(|n| *n == "v1"));
    let plain = every(&[]);
    assert_eq!(every(&[("x-canary", "v9")]), plain);
    assert_eq!(every(&[("cookie", "canaryx=always")]), plain);
    assert!(plain.contains(&"v1"));
}

#[test]
fn without_an_override_setting_the_values_mean_nothing() {
    let s = split(&[("v1", 95), ("v2", 5)], "{}");
    let plain: Vec<usize> = (0..200).map(|n| pick(&s, ip(n), None, &[])).collect();
    let sent: Vec<usize> = (0..200)
        .map(|n| pick(&s, ip(n), None, &[("x-canary", "always")]))
        .collect();
    assert_eq!(plain, sent);
}

#[test]
fn sticky_keys_fall_back_to_the_client_address() {
    let by_user = split(&[("v1", 50), ("v2", 50)], "{sticky: user}");
    // One user from many addresses stays on one side; anonymous clients spread by address.
    let sides: BTreeSet<usize> = (0..100)
        .map(|n| pick(&by_user, ip(n), Some("alice"), &[]))
        .collect();
    assert_eq!(sides.len(), 1);
    let anonymous: BTreeSet<usize> = (0..100).map(|n| pick(&by_user, ip(n), None, &[])).collect();
    assert_eq!(anonymous.len(), 2);

    let by_header = split(&[("v1", 50), ("v2", 50)], "{sticky: 'header:X-Session'}");
    let sides: BTreeSet<usize> = (0..100)
        .map(|n| pick(&by_header, ip(n), None, &[("x-session", "s1")]))
        .collect();
    assert_eq!(sides.len(), 1);

    let by_cookie = split(&[("v1", 50), ("v2", 50)], "{sticky: 'cookie:sid'}");
    let sides: BTreeSet<usize> = (0..100)
        .map(|n| pick(&by_cookie, ip(n), None, &[("cookie", "x=1; sid=abc")]))
        .collect();
    assert_eq!(sides.len(), 1);
    let spread: BTreeSet<usize> = (0..100)
        .map(|n| pick(&by_cookie, ip(n), None, &[("cookie", "x=1")]))
        .collect();
    assert_eq!(spread.len(), 2);

    let none = split(&[("v1", 50), ("v2", 50)], "{sticky: none}");
    let sides: BTreeSet<usize> = (0..100).map(|_| pick(&none, ip(1), None, &[])).collect();
    assert_eq!(sides.len(), 2);
}

#[test]
fn a_zero_weight_takes_only_overrides() {
    let s = split(
        &[("v1", 1), ("v2", 0), ("v3", 1)],
        "{override_header: X-Side}",
    );
    assert!((0..500).all(|n| pick(&s, ip(n), None, &[]) != 1));
    assert_eq!(
        name(&s, pick(&s, ip(1), None, &[("x-side", "always")])),
        "v2"
    );
    assert_eq!(name(&s, pick(&s, ip(1), None, &[("x-side", "v3")])), "v3");
}

#[test]
fn one_upstream_is_not_a_split() {
    let known = upstreams(&["v1"]);
    let mut errors = ConfigErrors::default();
    let s = Split::build(
        "r",
        Some(&"v1".to_owned()),
        None,
        None,
        &known,
        &BTreeSet::new(),
        &mut errors,
    )
    .expect("built");
    assert!(!s.is_split());
    assert_eq!(pick(&s, ip(1), None, &[]), 0);
    assert_eq!(name(&s, 7), "v1");
}

#[test]
fn bad_lists_and_options_name_their_place() {
    let both = errors_of(Some("v1"), Some(&[("v2", 1)]), None);
    assert!(both.contains("routes[0].upstreams: give either"), "{both}");
    let neither = errors_of(None, None, None);
    assert!(neither.contains("routes[0].upstream: missing"), "{neither}");
    let unknown = errors_of(None, Some(&[("v1", 1), ("v9", 1)]), None);
    assert!(
        unknown.contains("routes[0].upstreams[1].name: unknown upstream \"v9\""),
        "{unknown}"
    );
    let twice = errors_of(None, Some(&[("v1", 1), ("v1", 2)]), None);
    assert!(twice.contains("routes[0].upstreams[1].name"), "{twice}");
    let zero = errors_of(None, Some(&[("v1", 0), ("v2", 0)]), None);
    assert!(zero.contains("weights add up to 0"), "{zero}");
    let empty = errors_of(None, Some(&[]), None);
    assert!(empty.contains("at least one"), "{empty}");
    let options = errors_of(
        None,
        Some(&[("v1", 1), ("v2", 1)]),
        Some("{sticky: cookie, override_header: 'a b', override_cookie: 'a;b'}"),
    );
    for want in [
        "routes[0].split.sticky",
        "routes[0].split.override_header",
        "routes[0].split.override_cookie",
    ] {
        assert!(options.contains(want), "{want} in {options}");
    }
    let unsplit = errors_of(Some("v1"), None, Some("{sticky: user}"));
    assert!(
        unsplit.contains("routes[0].split: only applies"),
        "{unsplit}"
    );
}
