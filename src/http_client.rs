//! A small HTTP(S) client on pingora's own connector, for the gateway's outbound calls (a JWKS,
//! the admin API's PromQL pass-through, trace export). Bounded in time and size.

use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use std::sync::LazyLock;
use std::time::Duration;

/// One connector for every call: making one loads the system's CA certificates (milliseconds
/// of ASN.1 parsing, which made trace export cost 6% of a busy core). Each call still has a
/// connection of its own, closed after the answer.
static CONNECTOR: LazyLock<Connector> = LazyLock::new(|| Connector::new(None));

/// An answer of any status.
#[derive(Debug)]
pub struct Fetched {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

/// The request could not be made or its answer not read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("bad URL: {0}")]
    BadUrl(String),
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("{0}")]
    Http(#[from] Box<pingora::Error>),
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
}

/// `GET url` (its path and query), waiting at most `timeout` for the connection and for each
/// read, reading at most `max_body` bytes.
pub async fn get(
    url: &str,
    accept: &str,
    timeout: Duration,
    max_body: usize,
) -> Result<Fetched, FetchError> {
    send("GET", url, accept, &[], None, timeout, max_body).await
}

/// `GET url` with `headers` beside `Accept: */*`; otherwise as [`get`].
pub async fn get_with(
    url: &str,
    headers: &[(http::HeaderName, http::HeaderValue)],
    timeout: Duration,
    max_body: usize,
) -> Result<Fetched, FetchError> {
    send("GET", url, "*/*", headers, None, timeout, max_body).await
}

/// `method url` with exactly `headers` (a copy of a request: no `Accept` is added) and no
/// body; otherwise as [`get`].
pub async fn send_copy(
    method: &str,
    url: &str,
    headers: &[(http::HeaderName, http::HeaderValue)],
    timeout: Duration,
    max_body: usize,
) -> Result<Fetched, FetchError> {
    send(method, url, "", headers, None, timeout, max_body).await
}

/// `POST url` with `body` of `content_type`; otherwise as [`get`].
pub async fn post(
    url: &str,
    content_type: &str,
    body: bytes::Bytes,
    timeout: Duration,
    max_body: usize,
) -> Result<Fetched, FetchError> {
    let accept = content_type;
    send(
        "POST",
        url,
        accept,
        &[],
        Some((content_type, body)),
        timeout,
        max_body,
    )
    .await
}

/// Whether `url` is one this client can call: `http://` or `https://`, a host, and
/// well-formed credentials if it has any (checked with the config, before any call).
pub fn check_url(url: &str) -> Result<(), FetchError> {
    let (uri, _) = target(url)?;
    if let Some((userinfo, _)) = uri.authority().and_then(|a| a.as_str().rsplit_once('@')) {
        basic_auth(userinfo)?;
    }
    Ok(())
}

/// The parsed URL and whether it is HTTPS.
fn target(url: &str) -> Result<(http::Uri, bool), FetchError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| FetchError::BadUrl(e.to_string()))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(FetchError::BadUrl("not http:// or https://".into())),
    };
    if uri.host().is_none_or(str::is_empty) {
        return Err(FetchError::BadUrl("no host".into()));
    }
    Ok((uri, tls))
}

async fn send(
    method: &str,
    url: &str,
    accept: &str,
    headers: &[(http::HeaderName, http::HeaderValue)],
    body: Option<(&str, bytes::Bytes)>,
    timeout: Duration,
    max_body: usize,
) -> Result<Fetched, FetchError> {
    let (uri, tls) = target(url)?;
    let host = uri
        .host()
        .ok_or_else(|| FetchError::BadUrl("no host".into()))?
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| FetchError::Resolve(format!("{host}: {e}")))?
        .next()
        .ok_or_else(|| FetchError::Resolve(format!("{host}: no address")))?;
    let mut peer = HttpPeer::new(addr, tls, host.clone());
    peer.options.connection_timeout = Some(timeout);
    peer.options.read_timeout = Some(timeout);
    let (mut session, _) = CONNECTOR.get_http_session(&peer).await?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = RequestHeader::build(method, path.as_bytes(), None)?;
    let authority = uri.authority().map_or(host.as_str(), |a| a.as_str());
    // Credentials in the URL are sent as Basic authentication, never in the Host header.
    let (userinfo, authority) = match authority.rsplit_once('@') {
        Some((userinfo, rest)) => (Some(userinfo), rest),
        None => (None, authority),
    };
    req.insert_header("host", authority)?;
    if let Some(userinfo) = userinfo {
        req.insert_header(http::header::AUTHORIZATION, basic_auth(userinfo)?)?;
    }
    if !accept.is_empty() {
        req.insert_header("accept", accept)?;
    }
    for (name, value) in headers {
        req.append_header(name.clone(), value.clone())?;
    }
    if let Some((content_type, _)) = &body {
        req.insert_header("content-type", *content_type)?;
        req.insert_header("content-length", body.as_ref().map_or(0, |(_, b)| b.len()))?;
    }
    session.write_request_header(Box::new(req)).await?;
    if let Some((_, bytes)) = body {
        session.write_request_body(bytes, true).await?;
    }
    session.finish_request_body().await?;
    session.read_response_header().await?;
    let status = session.response_header().map_or(0, |h| h.status.as_u16());
    let answer_headers = session
        .response_header()
        .map(|h| h.headers.clone())
        .unwrap_or_default();
    let mut body = Vec::new();
    while let Some(chunk) = session.read_response_body().await? {
        if body.len() + chunk.len() > max_body {
            return Err(FetchError::TooLarge(max_body));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        status,
        headers: answer_headers,
        body,
    })
}

/// `Basic <base64(user:password)>` from a URL's `user:password` (percent-encoded, RFC 3986).
fn basic_auth(userinfo: &str) -> Result<String, FetchError> {
    use base64::Engine;
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let malformed = || FetchError::BadUrl("a malformed %-escape in the credentials".into());
    let mut pair = percent_decode(user).ok_or_else(malformed)?;
    pair.push(b':');
    pair.extend(percent_decode(password).ok_or_else(malformed)?);
    Ok(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
}

/// `text` with its `%XX` escapes decoded (RFC 3986); `None` for a `%` not followed by two hex
/// digits.
pub fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let digit = |b: u8| char::from(b).to_digit(16);
            out.push(u8::try_from(digit(hex[0])? * 16 + digit(hex[1])?).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{basic_auth, percent_decode};

    #[test]
    fn url_credentials_become_basic_authentication() {
        let auth = |u: &str| basic_auth(u).ok();
        // base64("ops:s@cret"), base64("ops:"), base64("a b:+")
        assert_eq!(
            auth("ops:s%40cret").as_deref(),
            Some("Basic b3BzOnNAY3JldA==")
        );
        assert_eq!(auth("ops").as_deref(), Some("Basic b3BzOg=="));
        assert_eq!(auth("a%20b:%2b").as_deref(), Some("Basic YSBiOis="));
        // A malformed escape is an error, not credentials sent as written.
        for bad in ["ops:%zz", "o%4:x", "ops:%", "ops:%+1"] {
            assert!(basic_auth(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percent_escapes_are_decoded_strictly() {
        assert_eq!(
            percent_decode("a%2Fb%2fc+").as_deref(),
            Some(&b"a/b/c+"[..])
        );
        assert_eq!(percent_decode("%ff").as_deref(), Some(&[0xff][..]));
        for bad in ["%", "%4", "%g0", "%+1", "%-1"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }
}
