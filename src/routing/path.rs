//! Request paths brought to one spelling before route lookup, so that every way of writing a
//! path a backend would read as the same resource matches the same route. The backend then gets
//! exactly the path that was matched.
//!
//! - `%XX` of an unreserved character (`A-Z a-z 0-9 - . _ ~`) is decoded; other escapes are kept
//!   with upper-case hex digits.
//! - Runs of `/` become one.
//! - Refused (400): an encoded `/` or `\`, a raw `\`, NUL and other control bytes (raw or
//!   encoded), a malformed escape, `.` and `..` segments (also `%2e`), a segment ending in `.`
//!   or in encoded whitespace (Windows and some frameworks drop those, reaching another file).
//!
//! `;` is kept here; a route that does not allow it refuses it (see `Route::allows`).

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPath {
    NotAbsolute,
    BadEscape,
    EncodedSeparator,
    ControlByte,
    DotSegment,
    TrailingDotOrSpace,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The canonical form of `path` (no query). Borrowed when it is already canonical, which is
/// the common case: no allocation then.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, BadPath> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(BadPath::NotAbsolute);
    }
    // Written only once the first change is found.
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (emit, used): (Emit, usize) = match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(BadPath::BadEscape);
                };
                let v = h << 4 | l;
                match v {
                    b'/' | b'\\' => return Err(BadPath::EncodedSeparator),
                    0..=0x1f | 0x7f => return Err(BadPath::ControlByte),
                    v if unreserved(v) => (Emit::Byte(v), 3),
                    v => (Emit::Escape(v), 3),
                }
            }
            b'\\' => return Err(BadPath::EncodedSeparator),
            0..=0x1f | 0x7f => return Err(BadPath::ControlByte),
            b'/' if i > 0 && bytes[i - 1] == b'/' => (Emit::Nothing, 1),
            b => (Emit::Byte(b), 1),
        };
        let same = match emit {
            Emit::Byte(v) => used == 1 && v == b,
            Emit::Escape(v) => bytes[i + 1..i + 3] == upper_hex(v),
            Emit::Nothing => false,
        };
        if !same && out.is_none() {
            out = Some(bytes[..i].to_vec());
        }
        if let Some(o) = out.as_mut() {
            match emit {
                Emit::Byte(v) => o.push(v),
                Emit::Escape(v) => {
                    o.push(b'%');
                    o.extend_from_slice(&upper_hex(v));
                }
                Emit::Nothing => {}
            }
        }
        i += used;
    }
    let normalized = match out {
        // Only ASCII was changed, and `path` was valid UTF-8; a decoded escape is ASCII.
        Some(o) => Cow::Owned(String::from_utf8(o).map_err(|_| BadPath::BadEscape)?),
        None => Cow::Borrowed(path),
    };
    check_segments(&normalized)?;
    Ok(normalized)
}

enum Emit {
    Byte(u8),
    Escape(u8),
    Nothing,
}

fn upper_hex(v: u8) -> [u8; 2] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    [HEX[usize::from(v >> 4)], HEX[usize::from(v & 15)]]
}

fn check_segments(path: &str) -> Result<(), BadPath> {
    for seg in path[1..].split('/') {
        if seg == "." || seg == ".." {
            return Err(BadPath::DotSegment);
        }
        if seg.ends_with('.') || seg.ends_with("%20") || seg.ends_with("%09") {
            return Err(BadPath::TrailingDotOrSpace);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, BadPath> {
        normalize(p).map(Cow::into_owned)
    }

    #[test]
    fn canonical_paths_are_borrowed() {
        for p in [
            "/",
            "/api/users/7",
            "/a-b_c~d/%C3%A9",
            "/x;y",
            "/files/v1.2/x",
        ] {
            assert!(matches!(normalize(p), Ok(Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn variants_become_one_spelling() {
        assert_eq!(n("/api/%61dmin"), Ok("/api/admin".into()));
        assert_eq!(n("/api//admin"), Ok("/api/admin".into()));
        assert_eq!(n("///api///admin//"), Ok("/api/admin/".into()));
        assert_eq!(n("/%7euser/%2Dx"), Ok("/~user/-x".into()));
        assert_eq!(
            n("/a%c3%a9"),
            Ok("/a%C3%A9".into()),
            "escapes get upper-case hex"
        );
        assert_eq!(
            n("/a%3fb"),
            Ok("/a%3Fb".into()),
            "reserved characters stay encoded"
        );
    }

    #[test]
    fn tricks_are_refused() {
        for (p, why) in [
            ("api", BadPath::NotAbsolute),
            ("/api%2fadmin", BadPath::EncodedSeparator),
            ("/api%2Fadmin", BadPath::EncodedSeparator),
            ("/api\\admin", BadPath::EncodedSeparator),
            ("/api%5cadmin", BadPath::EncodedSeparator),
            ("/x/..%2fadmin", BadPath::EncodedSeparator),
            ("/a%00b", BadPath::ControlByte),
            ("/a%0d%0ab", BadPath::ControlByte),
            ("/a%7f", BadPath::ControlByte),
            ("/a%zz", BadPath::BadEscape),
            ("/a%4", BadPath::BadEscape),
            ("/a/../b", BadPath::DotSegment),
            ("/a/%2e%2E/b", BadPath::DotSegment),
            ("/a/.%2e", BadPath::DotSegment),
            ("/./a", BadPath::DotSegment),
            ("/api/admin.", BadPath::TrailingDotOrSpace),
            ("/api/admin%20", BadPath::TrailingDotOrSpace),
            ("/api/admin%2e", BadPath::TrailingDotOrSpace),
        ] {
            assert_eq!(n(p), Err(why), "{p}");
        }
        assert!(n("/a/...b").is_ok());
        assert!(n("/a/.hidden").is_ok());
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for p in ["/api/%61dmin", "//a//b/", "/%7e%41%c3%a9", "/x;y/%3f"] {
            let once = n(p).expect("valid");
            assert_eq!(n(&once), Ok(once.clone()), "{p}");
            assert!(matches!(normalize(&once), Ok(Cow::Borrowed(_))));
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Paths made of the characters path tricks are made of.
        fn tricky_path() -> impl Strategy<Value = String> {
            let piece = prop::sample::select(vec![
                "/", "//", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "\\", "%00", "%41", "%61",
                "%7e", "%c3%a9", "%", "%4", "%zz", ";", "a", "A", "admin", "~", "-", "_", "%20",
                "%09", "?",
            ]);
            prop::collection::vec(piece, 0..12).prop_map(|p| format!("/{}", p.concat()))
        }

        proptest! {
            #[test]
            fn normalizing_is_idempotent_and_leaves_no_tricks(path in tricky_path()) {
                if let Ok(once) = normalize(&path) {
                    let twice = normalize(&once);
                    prop_assert_eq!(twice.as_deref(), Ok(once.as_ref()));
                    prop_assert!(matches!(normalize(&once), Ok(Cow::Borrowed(_))));
                    prop_assert!(once.starts_with('/'));
                    prop_assert!(!once.contains("//"), "{}", once);
                    prop_assert!(!once.contains('\\'), "{}", once);
                    let lower = once.to_ascii_lowercase();
                    for encoded in ["%2f", "%5c", "%00", "%2e"] {
                        prop_assert!(!lower.contains(encoded), "{} in {}", encoded, once);
                    }
                    for seg in once[1..].split('/') {
                        prop_assert!(seg != "." && seg != "..", "{}", once);
                    }
                }
            }

            #[test]
            fn decoding_unreserved_escapes_never_changes_the_route(path in "(/[a-zA-Z0-9~_-]{1,6}){1,4}") {
                // Escaping any unreserved character gives the same normalized path.
                let escaped: String = path
                    .bytes()
                    .map(|b| if b == b'/' { "/".to_owned() } else { format!("%{b:02x}") })
                    .collect();
                prop_assert_eq!(normalize(&escaped).map(Cow::into_owned), Ok(path));
            }
        }
    }
}
