//! `server.header_case: lower`: header names written in lower case.
//!
//! Pingora keeps, beside the headers of an HTTP/1 message it has read, a second map with each
//! name as it was spelled, and every header set afterwards is parsed and stored in both. A message
//! without that map is written with the names in lower case, as HTTP/2 always does (pingora
//! title-cases a dozen standard ones, such as `Host` and `Content-Length`). Here the message is
//! taken apart as it arrives: the gateway's headers go straight into its plain header map (no
//! name parsed, no spelling stored), and it is put back together without the spellings. Values
//! of one name keep their order; different names may be written in another order.

use http::request::Parts as RequestParts;
use http::response::Parts as ResponseParts;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;

/// Runs `edit` on the request's parts and puts the request back without the name spellings.
/// `None`, with nothing run, for a request whose target the URI does not hold byte for byte
/// (absolute-form, or not UTF-8): putting it back would rebuild the target from the URI.
pub fn edit_request<T>(
    req: &mut RequestHeader,
    edit: impl FnOnce(&mut RequestParts) -> T,
) -> Option<T> {
    let target_in_uri = req.uri.path_and_query().map(|p| p.as_str().as_bytes());
    if !req.raw_path_is_utf8() || target_in_uri != Some(req.raw_path()) {
        return None;
    }
    let end_stream = req.send_end_stream();
    let empty = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts: RequestParts = std::mem::replace(req, empty).into();
    let out = edit(&mut parts);
    *req = RequestHeader::from(parts);
    if let Some(end) = end_stream {
        req.set_send_end_stream(end);
    }
    Some(out)
}

/// Runs `edit` on the response's parts and puts the response back without the name spellings,
/// with the backend's reason phrase.
pub fn edit_response<T>(
    resp: &mut ResponseHeader,
    edit: impl FnOnce(&mut ResponseParts) -> T,
) -> Result<T> {
    let reason = resp
        .get_reason_phrase()
        .filter(|r| Some(*r) != resp.status.canonical_reason())
        .map(str::to_owned);
    let empty = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts: ResponseParts = std::mem::replace(resp, empty).into();
    let out = edit(&mut parts);
    *resp = ResponseHeader::from(parts);
    resp.set_reason_phrase(reason.as_deref())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn wire_request(req: &RequestHeader) -> String {
        let mut buf = Vec::new();
        req.header_to_h1_wire(&mut buf);
        String::from_utf8(buf).expect("utf-8")
    }

    fn request(target: &[u8]) -> RequestHeader {
        let mut req = RequestHeader::build("POST", target, None).expect("request");
        req.append_header("X-Mixed-Case", "a").expect("header");
        req.append_header("X-Mixed-Case", "b").expect("header");
        req.append_header("Host", "example.com").expect("header");
        req
    }

    #[test]
    fn a_request_keeps_everything_but_the_spelling() {
        let mut req = request(b"/api/items?page=2");
        assert!(wire_request(&req).contains("X-Mixed-Case: a"));
        let ran = edit_request(&mut req, |parts| {
            parts.headers.insert(
                http::HeaderName::from_static("x-forwarded-proto"),
                HeaderValue::from_static("http"),
            );
        });
        assert_eq!(ran, Some(()));
        assert!(!req.has_case());
        assert_eq!(req.method, http::Method::POST);
        assert_eq!(req.raw_path(), b"/api/items?page=2");
        // Pingora writes a dozen standard names (Host, Content-Length, Date...) title-cased.
        assert_eq!(
            wire_request(&req),
            "x-mixed-case: a\r\nx-mixed-case: b\r\nHost: example.com\r\nx-forwarded-proto: http\r\n"
        );
    }

    #[test]
    fn a_target_the_uri_does_not_hold_is_left_alone() {
        for target in [&b"http://example.com/a?b=1"[..], b"/caf\xe9"] {
            let mut req = request(target);
            assert_eq!(edit_request(&mut req, |_| ()), None);
            assert!(req.has_case(), "{:?}", String::from_utf8_lossy(target));
            assert_eq!(req.raw_path(), target);
        }
    }

    #[test]
    fn a_response_keeps_its_status_and_reason() {
        let mut resp = ResponseHeader::build(404, None).expect("response");
        resp.set_reason_phrase(Some("Gone Fishing"))
            .expect("reason");
        resp.append_header("X-Backend-Name", "b1").expect("header");
        edit_response(&mut resp, |_| ()).expect("lower");
        assert!(!resp.has_case());
        assert_eq!(resp.status, 404);
        assert_eq!(resp.get_reason_phrase(), Some("Gone Fishing"));
        let mut buf = Vec::new();
        resp.header_to_h1_wire(&mut buf);
        assert_eq!(buf, b"x-backend-name: b1\r\n");

        let mut ok = ResponseHeader::build(200, None).expect("response");
        edit_response(&mut ok, |_| ()).expect("lower");
        assert_eq!(ok.get_reason_phrase(), Some("OK"));
    }
}
