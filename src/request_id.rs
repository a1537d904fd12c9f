//! `X-Request-Id`: kept when the client's is well formed, otherwise generated. Stored inline.

use http::{HeaderMap, HeaderName, HeaderValue};

const MAX_LEN: usize = 128;

/// The header's name, parsed once: looking a header up by `&str` parses the name each time.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// A request id of 1 to 128 characters from `A-Z a-z 0-9 . _ -`.
#[derive(Clone, Copy)]
pub struct RequestId {
    buf: [u8; MAX_LEN],
    len: u8,
}

impl RequestId {
    /// No id yet: `early_request_filter` keeps the client's or generates one.
    pub const EMPTY: RequestId = RequestId {
        buf: [0; MAX_LEN],
        len: 0,
    };

    /// The client's id (the first `X-Request-Id` it sent) when well formed, else a new one.
    /// Generated only when needed.
    pub fn from_request(headers: &HeaderMap) -> RequestId {
        headers
            .get(HEADER)
            .and_then(|v| RequestId::parse(v.as_bytes()))
            .unwrap_or_else(RequestId::generate)
    }

    /// The client's value, when it is well formed.
    fn parse(value: &[u8]) -> Option<RequestId> {
        if !is_valid(value) {
            return None;
        }
        let mut buf = [0; MAX_LEN];
        buf[..value.len()].copy_from_slice(value);
        Some(RequestId {
            buf,
            len: value.len() as u8,
        })
    }

    /// 32 random lowercase hex digits.
    fn generate() -> RequestId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0; MAX_LEN];
        let mut n = fastrand::u128(..);
        for b in buf.iter_mut().take(32) {
            *b = HEX[(n & 0xf) as usize];
            n >>= 4;
        }
        RequestId { buf, len: 32 }
    }

    /// The id as a header value.
    pub fn header_value(&self) -> HeaderValue {
        // Only bytes valid in a header value are ever stored.
        HeaderValue::from_bytes(&self.buf[..self.len as usize])
            .unwrap_or(HeaderValue::from_static("-"))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored.
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("-")
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_valid(v: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&v.len())
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_well_formed_ids() {
        let id = RequestId::parse(b"abc-1.2_3").expect("valid");
        assert_eq!(id.as_str(), "abc-1.2_3");
        let long = [b'a'; 128];
        assert_eq!(RequestId::parse(&long).expect("valid").as_str().len(), 128);
        for bad in [&b""[..], b"a b", b"<script>", &[b'a'; 129], "é".as_bytes()] {
            assert!(RequestId::parse(bad).is_none(), "{bad:?}");
        }
        let generated = RequestId::generate();
        assert_eq!(generated.as_str().len(), 32);
        assert!(generated.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(
            RequestId::generate().as_str(),
            RequestId::generate().as_str()
        );
    }
}
