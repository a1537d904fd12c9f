//! `compression`: gzip, brotli or zstd for answers whose client accepts it (`Accept-Encoding`,
//! q-values honoured, ties to the order of `algorithms`), whose type is in `content_types` and
//! whose size is at least `min_size` (answers of unknown length are compressed). Answers the
//! backend already encoded, partial answers, `Cache-Control: no-transform`, HEAD requests and
//! bodiless statuses pass as they are. Every answer of a listed type gets
//! `Vary: Accept-Encoding`.
//!
//! With the cache: entries are stored as the backend sent them and encoded per client when
//! served, so one entry serves every encoding (and clients that accept none).

use crate::plugin::{
    BodyTransform, BuildContext, BuildError, Middleware, ResponseHead, ResponseView,
};
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde::Deserialize;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Gzip,
    Br,
    Zstd,
}

impl Algorithm {
    fn token(self) -> &'static str {
        match self {
            Algorithm::Gzip => "gzip",
            Algorithm::Br => "br",
            Algorithm::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// In order of preference. Default `[zstd, br, gzip]`.
    #[serde(default)]
    algorithms: Option<Vec<Algorithm>>,
    /// gzip level 1-9 (default 6).
    #[serde(default)]
    gzip_level: Option<u32>,
    /// brotli quality 0-11 (default 4).
    #[serde(default)]
    brotli_level: Option<u32>,
    /// zstd level 1-19 (default 3).
    #[serde(default)]
    zstd_level: Option<i32>,
    /// Smaller answers (by `Content-Length`) are sent as they are. Default 1024.
    #[serde(default)]
    min_size: Option<u64>,
    /// Media types compressed; `type/*` takes a whole type. Default: text/*, JSON, JavaScript,
    /// XML, SVG, WebAssembly.
    #[serde(default)]
    content_types: Option<Vec<String>>,
}

const DEFAULT_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/wasm",
    "application/problem+json",
    "image/svg+xml",
];

pub struct Compression {
    algorithms: Vec<Algorithm>,
    gzip: u32,
    brotli: u32,
    zstd: i32,
    min_size: u64,
    types: Vec<String>,
}

/// The encoding chosen for this answer (in the request's slot, from `response` to
/// `body_transform`).
#[derive(Clone, Copy)]
struct Chosen(Algorithm);

#[async_trait::async_trait]
impl Middleware for Compression {
    type Settings = Settings;
    const REQUEST_PHASE: bool = false;
    const LOGGING_PHASE: bool = false;

    fn build(s: Settings, _ctx: &BuildContext) -> Result<Self, BuildError> {
        let algorithms = s
            .algorithms
            .unwrap_or_else(|| vec![Algorithm::Zstd, Algorithm::Br, Algorithm::Gzip]);
        if algorithms.is_empty() {
            return Err(BuildError::at("algorithms", "must not be empty"));
        }
        let gzip = s.gzip_level.unwrap_or(6);
        if !(1..=9).contains(&gzip) {
            return Err(BuildError::at("gzip_level", "must be 1 to 9"));
        }
        let brotli = s.brotli_level.unwrap_or(4);
        if brotli > 11 {
            return Err(BuildError::at("brotli_level", "must be 0 to 11"));
        }
        let zstd = s.zstd_level.unwrap_or(3);
        if !(1..=19).contains(&zstd) {
            return Err(BuildError::at("zstd_level", "must be 1 to 19"));
        }
        let types: Vec<String> = match s.content_types {
            Some(t) if t.is_empty() => {
                return Err(BuildError::at("content_types", "must not be empty"))
            }
            Some(t) => t.iter().map(|t| t.trim().to_ascii_lowercase()).collect(),
            None => DEFAULT_TYPES.iter().map(|t| (*t).to_owned()).collect(),
        };
        Ok(Compression {
            algorithms,
            gzip,
            brotli,
            zstd,
            min_size: s.min_size.unwrap_or(1024),
            types,
        })
    }

    fn response(&self, resp: &mut ResponseView<'_>) {
        if !self.listed(resp.head.headers().get(http::header::CONTENT_TYPE)) {
            return;
        }
        vary_on_accept_encoding(&mut resp.head);
        if !self.applies(resp) {
            return;
        }
        let Some(chosen) = negotiate(&self.algorithms, resp.request) else {
            return;
        };
        let h = &mut resp.head;
        h.insert_header(
            http::header::CONTENT_ENCODING,
            HeaderValue::from_static(chosen.token()),
        );
        h.remove_header(&http::header::CONTENT_LENGTH);
        h.remove_header(&http::header::ACCEPT_RANGES);
        // The encoded body is another representation: a strong validator becomes weak.
        if let Some(etag) = h.headers().get(http::header::ETAG).cloned() {
            if !etag.as_bytes().starts_with(b"W/") {
                let mut weak = b"W/".to_vec();
                weak.extend_from_slice(etag.as_bytes());
                if let Ok(v) = HeaderValue::from_bytes(&weak) {
                    h.insert_header(http::header::ETAG, v);
                }
            }
        }
        resp.slot.insert(Chosen(chosen));
    }

    fn body_transform(&self, resp: &ResponseView<'_>) -> Option<Box<dyn BodyTransform>> {
        let Chosen(algorithm) = *resp.slot.get::<Chosen>()?;
        let encoder = match algorithm {
            Algorithm::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(self.gzip),
            )),
            Algorithm::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                self.brotli,
                22,
            ))),
            Algorithm::Zstd => {
                Encoder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), self.zstd).ok()?)
            }
        };
        Some(Box::new(encoder))
    }
}

impl Compression {
    fn listed(&self, content_type: Option<&HeaderValue>) -> bool {
        let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        self.types.iter().any(|t| match t.strip_suffix("/*") {
            Some(kind) => media.split('/').next() == Some(kind),
            None => *t == media,
        })
    }

    /// Whether this answer may be compressed at all (the client's wishes aside).
    fn applies(&self, resp: &ResponseView<'_>) -> bool {
        let h = resp.head.headers();
        let status = resp.head.status();
        let bodiless = status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || status == StatusCode::PARTIAL_CONTENT;
        let encoded = h
            .get(http::header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        let no_transform = h.get_all(http::header::CACHE_CONTROL).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
            })
        });
        let small = h
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|len| len < self.min_size);
        !(bodiless || encoded || no_transform || small || resp.request.method == http::Method::HEAD)
    }
}

/// Adds `Accept-Encoding` to `Vary` unless it is there (or `Vary: *`).
fn vary_on_accept_encoding(h: &mut ResponseHead<'_>) {
    let present = h.headers().get_all(http::header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case("accept-encoding"))
        })
    });
    if !present {
        h.append_header(
            http::header::VARY,
            HeaderValue::from_static("Accept-Encoding"),
        );
    }
}

/// The algorithm for a request: the highest q-value the client gives one of `algorithms`
/// (directly or through `*`), ties to the earlier in `algorithms`; none when every q is 0.
pub(crate) fn negotiate(algorithms: &[Algorithm], req: &http::request::Parts) -> Option<Algorithm> {
    let mut listed: Vec<(&str, f32)> = Vec::new();
    for v in req.headers.get_all(http::header::ACCEPT_ENCODING) {
        let Ok(text) = v.to_str() else { continue };
        for item in text.split(',') {
            let mut parts = item.split(';');
            let token = parts.next().unwrap_or("").trim();
            if token.is_empty() {
                continue;
            }
            let q = parts
                .find_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("q")
                        .then(|| v.trim().parse::<f32>().ok())?
                })
                .unwrap_or(1.0);
            listed.push((token, q.clamp(0.0, 1.0)));
        }
    }
    let q_of = |name: &str| {
        let exact = listed.iter().find(|(t, _)| {
            t.eq_ignore_ascii_case(name) || (name == "gzip" && t.eq_ignore_ascii_case("x-gzip"))
        });
        exact
            .or_else(|| listed.iter().find(|(t, _)| *t == "*"))
            .map_or(0.0, |(_, q)| *q)
    };
    let mut best: Option<(Algorithm, f32)> = None;
    for a in algorithms {
        let q = q_of(a.token());
        if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((*a, q));
        }
    }
    best.map(|(a, _)| a)
}

enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    Done,
}

impl BodyTransform for Encoder {
    fn transform(&mut self, chunk: &[u8], end: bool) -> Bytes {
        let written = match self {
            Encoder::Gzip(e) => e.write_all(chunk),
            Encoder::Br(e) => e.write_all(chunk),
            Encoder::Zstd(e) => e.write_all(chunk),
            Encoder::Done => return Bytes::new(),
        };
        if written.is_err() {
            // Writing to a Vec does not fail; a broken encoder ends the body.
            *self = Encoder::Done;
            return Bytes::new();
        }
        if !end {
            let out = match self {
                Encoder::Gzip(e) => std::mem::take(e.get_mut()),
                Encoder::Br(e) => std::mem::take(e.get_mut()),
                Encoder::Zstd(e) => std::mem::take(e.get_mut()),
                Encoder::Done => Vec::new(),
            };
            return Bytes::from(out);
        }
        let finished = match std::mem::replace(self, Encoder::Done) {
            Encoder::Gzip(e) => e.finish().ok(),
            Encoder::Br(e) => Some(e.into_inner()),
            Encoder::Zstd(e) => e.finish().ok(),
            Encoder::Done => None,
        };
        finished.map_or_else(Bytes::new, Bytes::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(accept: &str) -> http::request::Parts {
        let req = http::Request::get("/").header("accept-encoding", accept);
        req.body(()).expect("request").into_parts().0
    }

    #[test]
    fn negotiation_follows_q_values_then_preference() {
        use Algorithm::*;
        let all = [Zstd, Br, Gzip];
        assert_eq!(negotiate(&all, &request("gzip, br")), Some(Br));
        assert_eq!(negotiate(&all, &request("gzip;q=1, br;q=0.5")), Some(Gzip));
        assert_eq!(negotiate(&all, &request("br;q=0, gzip;q=0")), None);
        assert_eq!(negotiate(&all, &request("*")), Some(Zstd));
        assert_eq!(negotiate(&all, &request("*;q=0.1, zstd;q=0")), Some(Br));
        assert_eq!(negotiate(&all, &request("identity")), None);
        assert_eq!(negotiate(&[Gzip], &request("X-GZIP")), Some(Gzip));
        assert_eq!(negotiate(&all, &request("deflate")), None);
    }

    #[test]
    fn each_encoder_round_trips_in_chunks() {
        use std::io::Read;
        let input: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        for a in [Algorithm::Gzip, Algorithm::Br, Algorithm::Zstd] {
            let mut e = match a {
                Algorithm::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                    Vec::new(),
                    flate2::Compression::new(6),
                )),
                Algorithm::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                    Vec::new(),
                    4096,
                    4,
                    22,
                ))),
                Algorithm::Zstd => {
                    Encoder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd"))
                }
            };
            let mut out = Vec::new();
            for chunk in input.chunks(7000) {
                out.extend_from_slice(&e.transform(chunk, false));
            }
            out.extend_from_slice(&e.transform(&[], true));
            assert!(out.len() < input.len() / 2, "{a:?} compresses");
            let mut back = Vec::new();
            match a {
                Algorithm::Gzip => {
                    flate2::read::GzDecoder::new(&out[..])
                        .read_to_end(&mut back)
                        .expect("gunzip");
                }
                Algorithm::Br => {
                    brotli::Decompressor::new(&out[..], 4096)
                        .read_to_end(&mut back)
                        .expect("unbrotli");
                }
                Algorithm::Zstd => back = zstd::decode_all(&out[..]).expect("unzstd"),
            }
            assert_eq!(back, input, "{a:?}");
        }
    }
}
