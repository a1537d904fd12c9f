//! The heads a middleware edits: what the backend gets and what the client gets. Each is either
//! pingora's message (which keeps every name's spelling in a second map, `server.header_case:
//! preserve`) or its plain parts (names in lower case, the default), edited the same way.

use crate::header_edit::HeaderEdit;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use pingora::http::{RequestHeader, ResponseHeader};

pub(crate) enum Message<'a, P, M> {
    Parts(&'a mut P),
    Pingora(&'a mut M),
}

/// The request on its way to the backend.
pub struct UpstreamHead<'a>(pub(crate) Message<'a, http::request::Parts, RequestHeader>);

/// The answer on its way to the client.
pub struct ResponseHead<'a>(pub(crate) Message<'a, http::response::Parts, ResponseHeader>);

/// Logs a header pingora refused (past its limits): the edit is left out.
fn refused(name: &HeaderName, e: impl std::fmt::Display) {
    log::debug!("header {name} left out: {e}");
}

/// The header methods both heads have, over the message's own form (`HeaderEdit`), and a
/// reborrow for one middleware at a time.
macro_rules! head_methods {
    ($head:ident) => {
        impl $head<'_> {
            /// The headers in whichever form the message is.
            pub(crate) fn edit(&mut self) -> &mut dyn HeaderEdit {
                match &mut self.0 {
                    Message::Parts(p) => &mut p.headers,
                    Message::Pingora(m) => &mut **m,
                }
            }

            /// The same head, borrowed for one middleware.
            pub(crate) fn reborrow(&mut self) -> $head<'_> {
                $head(match &mut self.0 {
                    Message::Parts(p) => Message::Parts(&mut **p),
                    Message::Pingora(m) => Message::Pingora(&mut **m),
                })
            }

            pub fn headers(&self) -> &HeaderMap {
                match &self.0 {
                    Message::Parts(p) => &p.headers,
                    Message::Pingora(m) => &m.headers,
                }
            }

            /// Sets `name` to `value`, replacing any values it had.
            pub fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
                if let Err(e) = self.edit().set(name.clone(), value) {
                    refused(&name, e);
                }
            }

            /// Adds a value to `name`, beside any it has.
            pub fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
                if let Err(e) = self.edit().add(name.clone(), value) {
                    refused(&name, e);
                }
            }

            /// Removes every value of `name`.
            pub fn remove_header(&mut self, name: &HeaderName) {
                self.edit().unset(name);
            }
        }
    };
}

head_methods!(UpstreamHead);
head_methods!(ResponseHead);

impl UpstreamHead<'_> {
    pub fn method(&self) -> &Method {
        match &self.0 {
            Message::Parts(p) => &p.method,
            Message::Pingora(m) => &m.method,
        }
    }

    pub fn set_method(&mut self, method: Method) {
        match &mut self.0 {
            Message::Parts(p) => p.method = method,
            Message::Pingora(m) => m.set_method(method),
        }
    }

    /// The target: path and query (origin form).
    pub fn uri(&self) -> &Uri {
        match &self.0 {
            Message::Parts(p) => &p.uri,
            Message::Pingora(m) => &m.uri,
        }
    }

    pub fn set_uri(&mut self, uri: Uri) {
        match &mut self.0 {
            Message::Parts(p) => p.uri = uri,
            Message::Pingora(m) => m.set_uri(uri),
        }
    }
}

impl ResponseHead<'_> {
    pub fn status(&self) -> StatusCode {
        match &self.0 {
            Message::Parts(p) => p.status,
            Message::Pingora(m) => m.status,
        }
    }

    pub fn set_status(&mut self, status: StatusCode) {
        match &mut self.0 {
            Message::Parts(p) => p.status = status,
            Message::Pingora(m) => {
                if let Err(e) = m.set_status(status) {
                    log::debug!("status {status} left out: {e}");
                }
            }
        }
    }
}
