//! Setting and removing the headers of a message, whichever form it is in: pingora's
//! `RequestHeader` or `ResponseHeader`, which keep each name's spelling in a second map and parse
//! every name they are given, or a plain `http::HeaderMap` (a message whose spellings were
//! dropped, `server.header_case: lower`), where a name is inserted as it is.

use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;

pub trait HeaderEdit {
    fn headers(&self) -> &HeaderMap;
    /// Sets `name` to `value`, replacing every value it had.
    fn set(&mut self, name: HeaderName, value: HeaderValue) -> Result<()>;
    /// Adds `value` to `name`, beside any values it has.
    fn add(&mut self, name: HeaderName, value: HeaderValue) -> Result<()>;
    /// Removes every value of `name`.
    fn unset(&mut self, name: &HeaderName);
}

impl HeaderEdit for HeaderMap {
    fn headers(&self) -> &HeaderMap {
        self
    }

    fn set(&mut self, name: HeaderName, value: HeaderValue) -> Result<()> {
        self.try_insert(name, value)
            .or_err(InvalidHTTPHeader, "too many headers")?;
        Ok(())
    }

    fn add(&mut self, name: HeaderName, value: HeaderValue) -> Result<()> {
        // Through an entry: `try_append` would be a second copy of the code pingora inlines
        // where it reads a message, and it stops inlining it there.
        match self
            .try_entry(name)
            .or_err(InvalidHTTPHeader, "too many headers")?
        {
            http::header::Entry::Occupied(mut e) => e.append(value),
            http::header::Entry::Vacant(e) => {
                e.try_insert(value)
                    .or_err(InvalidHTTPHeader, "too many headers")?;
            }
        }
        Ok(())
    }

    fn unset(&mut self, name: &HeaderName) {
        self.remove(name);
    }
}

/// Pingora's message types: each name set is parsed, and its spelling stored beside it.
macro_rules! through_pingora {
    ($($message:ty),*) => {$(
        impl HeaderEdit for $message {
            fn headers(&self) -> &HeaderMap {
                &self.headers
            }

            fn set(&mut self, name: HeaderName, value: HeaderValue) -> Result<()> {
                self.insert_header(name, value)
            }

            fn add(&mut self, name: HeaderName, value: HeaderValue) -> Result<()> {
                self.append_header(name, value).map(|_| ())
            }

            fn unset(&mut self, name: &HeaderName) {
                self.remove_header(name);
            }
        }
    )*};
}

through_pingora!(RequestHeader, ResponseHeader);

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: HeaderName = HeaderName::from_static("x-thing");

    fn edit<H: HeaderEdit>(h: &mut H) {
        h.set(NAME, HeaderValue::from_static("1")).expect("set");
        h.set(NAME, HeaderValue::from_static("2")).expect("set");
        h.set(http::header::VARY, HeaderValue::from_static("Origin"))
            .expect("set");
        h.unset(&http::header::VARY);
    }

    #[test]
    fn every_form_ends_with_the_same_headers() {
        let mut map = HeaderMap::new();
        let mut req = RequestHeader::build("GET", b"/", None).expect("request");
        let mut resp = ResponseHeader::build(200, None).expect("response");
        edit(&mut map);
        edit(&mut req);
        edit(&mut resp);
        for h in [&map, HeaderEdit::headers(&req), HeaderEdit::headers(&resp)] {
            assert_eq!(h.len(), 1, "{h:?}");
            assert_eq!(h.get(NAME).map(|v| v.as_bytes()), Some(&b"2"[..]));
        }
        // The spelling maps stay in step: the wire form has the one header.
        let mut wire = Vec::new();
        req.header_to_h1_wire(&mut wire);
        assert_eq!(wire, b"x-thing: 2\r\n");
    }
}
