//! Logs on the `log` crate through `env_logger`, with a format of ours: one JSON object (or one
//! text line) per record on stderr. `log.level` is the default; `RUST_LOG` takes env_logger's
//! directives and overrides it (`RUST_LOG=api_gateway::auth=debug,pingora=warn`). Pingora's
//! records come too. Access lines are batched (see [`emit_batched`]) so the request path makes
//! no system call for them.

use crate::config::file::{LogConfig, LogFormat, LogLevel};
use crate::ip_text::IpText;
use log::{LevelFilter, Record};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Batched access lines are written once this many bytes are waiting...
const BATCH_BYTES: usize = 32 * 1024;
/// ...or after this long, whichever comes first.
const BATCH_EVERY: Duration = Duration::from_millis(100);

static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static FLUSHER: Once = Once::new();

static JSON: AtomicBool = AtomicBool::new(true);

thread_local! {
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
}

/// Installs the logger; a second call (tests) changes nothing.
pub fn init(cfg: &LogConfig) {
    JSON.store(cfg.format == LogFormat::Json, Ordering::Relaxed);
    let mut builder = env_logger::Builder::new();
    builder.filter_level(match cfg.level {
        LogLevel::Trace => LevelFilter::Trace,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Error => LevelFilter::Error,
    });
    if let Ok(directives) = std::env::var("RUST_LOG") {
        builder.parse_filters(&directives);
    }
    builder.format(|out, record| {
        // Batched access lines go first, so the order of lines holds.
        flush();
        LINE.with(|cell| {
            let Ok(mut line) = cell.try_borrow_mut() else {
                return Ok(());
            };
            line.clear();
            format_record(&mut line, record);
            line.push('\n');
            out.write_all(line.as_bytes())
        })
    });
    let logger = Benign {
        inner: builder.build(),
    };
    let max = logger.inner.filter();
    match log::set_boxed_logger(Box::new(logger)) {
        Ok(()) => log::set_max_level(max),
        Err(e) => log::debug!("logger already installed: {e}"),
    }
}

/// Messages pingora logs at ERROR for what is routine (target prefix, message): a pooled
/// upstream connection taken by another request at the same moment (the request then opens a
/// new one). They are written at DEBUG instead, so ERROR keeps meaning something.
const BENIGN: [(&str, &str); 1] = [(
    "pingora_core::connectors",
    "failed to acquire reusable stream",
)];

/// One of [`BENIGN`], at WARN or ERROR.
fn is_benign(record: &Record<'_>) -> bool {
    record.level() <= log::Level::Warn
        && record.args().as_str().is_some_and(|message| {
            BENIGN
                .iter()
                .any(|(target, m)| record.target().starts_with(target) && *m == message)
        })
}

/// env_logger's logger, with [`BENIGN`] messages lowered to DEBUG.
struct Benign {
    inner: env_logger::Logger,
}

impl log::Log for Benign {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !is_benign(record) {
            return self.inner.log(record);
        }
        let lowered = Record::builder()
            .args(*record.args())
            .level(log::Level::Debug)
            .target(record.target())
            .module_path(record.module_path())
            .file(record.file())
            .line(record.line())
            .build();
        if self.inner.enabled(lowered.metadata()) {
            self.inner.log(&lowered);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

fn format_record(line: &mut String, record: &Record<'_>) {
    if json_format() {
        line.push_str("{\"timestamp\":\"");
        timestamp(line);
        let _ = write!(line, "\",\"level\":\"{}\",\"target\":", record.level());
        json_str(line, record.target());
        line.push_str(",\"message\":");
        json_str(line, &record.args().to_string());
        line.push('}');
    } else {
        timestamp(line);
        let _ = write!(
            line,
            " {:5} {}: {}",
            record.level(),
            record.target(),
            record.args()
        );
    }
}

/// True when lines are JSON (else text).
pub fn json_format() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Builds one line in a reused per-thread buffer and hands its bytes to `then`.
fn with_line(build: impl FnOnce(&mut String), then: impl FnOnce(&[u8])) {
    LINE.with(|cell| {
        let Ok(mut line) = cell.try_borrow_mut() else {
            return;
        };
        line.clear();
        build(&mut line);
        line.push('\n');
        then(line.as_bytes());
    });
}

/// Adds a line to a batch written when it reaches 32 KiB or 100 ms old (as
/// nginx's `access_log ... buffer= flush=`). A process killed outright loses at most the last
/// 100 ms of batched lines.
pub fn emit_batched(build: impl FnOnce(&mut String)) {
    FLUSHER.call_once(|| {
        // Started on first use, so after any daemon fork.
        let spawned = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(|| loop {
                std::thread::sleep(BATCH_EVERY);
                flush();
            });
        if let Err(e) = spawned {
            eprintln!("cannot start the log flusher, access lines are written one by one: {e}");
        }
    });
    with_line(build, |line| {
        let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
        pending.extend_from_slice(line);
        if pending.len() >= BATCH_BYTES {
            write_out(&mut pending);
        }
    });
}

/// Writes out the batched lines now.
pub fn flush() {
    let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
    write_out(&mut pending);
}

/// Written while the batch lock is held, so batches and single records never interleave.
fn write_out(pending: &mut Vec<u8>) {
    if !pending.is_empty() {
        let _ = std::io::stderr().lock().write_all(pending);
        pending.clear();
    }
}

/// Appends `s` as a JSON string (quoted and escaped).
pub fn json_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push('"');
    // Most values (ids, paths, names) need no escape: one scan, one copy.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    // Only ASCII bytes are escaped, so the runs between them are whole UTF-8 sequences and
    // go in at once.
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        if escaped.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        } else {
            out.push_str(escaped);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// Appends the current UTC time as RFC 3339 with milliseconds.
pub fn timestamp(out: &mut String) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    push_uint(out, y.max(0) as u64, 4);
    out.push('-');
    push_uint(out, m.into(), 2);
    out.push('-');
    push_uint(out, d.into(), 2);
    out.push('T');
    push_uint(out, rem / 3600, 2);
    out.push(':');
    push_uint(out, rem / 60 % 60, 2);
    out.push(':');
    push_uint(out, rem % 60, 2);
    out.push('.');
    push_uint(out, now.subsec_millis().into(), 3);
    out.push('Z');
}

/// `n` in decimal, left-padded with zeros to `width` digits (without `fmt`: the access line
/// writes a dozen numbers per request).
pub fn push_uint(out: &mut String, n: u64, width: usize) {
    let mut digits = itoa::Buffer::new();
    let text = digits.format(n);
    for _ in text.len()..width {
        out.push('0');
    }
    out.push_str(text);
}

/// An address as text, as its `Display` writes it.
pub fn push_ip(out: &mut String, ip: IpAddr) {
    out.push_str(IpText::new(ip).as_str());
}

/// A socket address as text, `1.2.3.4:80` or `[::1]:80`.
pub fn push_socket_addr(out: &mut String, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(_) => push_ip(out, addr.ip()),
        SocketAddr::V6(_) => {
            out.push('[');
            push_ip(out, addr.ip());
            out.push(']');
        }
    }
    out.push(':');
    push_uint(out, addr.port().into(), 1);
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pingoras_routine_pool_race_is_benign() {
        let record = |target: &'static str, level| {
            let is = |args: std::fmt::Arguments<'_>| {
                super::is_benign(
                    &Record::builder()
                        .args(args)
                        .target(target)
                        .level(level)
                        .build(),
                )
            };
            (
                is(format_args!("failed to acquire reusable stream")),
                is(format_args!("something else")),
            )
        };
        assert_eq!(
            record("pingora_core::connectors", log::Level::Error),
            (true, false)
        );
        assert_eq!(
            record("pingora_core::connectors::http", log::Level::Error),
            (true, false)
        );
        assert_eq!(record("api_gateway", log::Level::Error), (false, false));
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn numbers_and_addresses_read_as_fmt_writes_them() {
        for (n, width) in [
            (0, 1),
            (7, 2),
            (42, 2),
            (5, 3),
            (999, 3),
            (2026, 4),
            (u64::MAX, 1),
        ] {
            let mut s = String::new();
            push_uint(&mut s, n, width);
            assert_eq!(s, format!("{n:0width$}"));
        }
        for addr in [
            "10.0.0.1:80",
            "255.255.255.255:65535",
            "0.0.0.0:0",
            "[::1]:8080",
            "[2001:db8::7]:1",
        ] {
            let addr: SocketAddr = addr.parse().expect("address");
            let mut s = String::new();
            push_socket_addr(&mut s, addr);
            assert_eq!(s, addr.to_string());
            let mut s = String::new();
            push_ip(&mut s, addr.ip());
            assert_eq!(s, addr.ip().to_string());
        }
        let mut s = String::new();
        timestamp(&mut s);
        assert_eq!(s.len(), "2026-12-01T04:10:00.123Z".len(), "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'), "{s}");
    }

    #[test]
    fn json_escaping() {
        let mut s = String::new();
        json_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
        let v: String = serde_json::from_str(&s).expect("valid JSON string");
        assert_eq!(v, "a\"b\\c\nd\u{1}é");
        // Every ASCII byte, alone and between multi-byte characters: what the character by
        // character escaping wrote, and JSON that reads back as the same text.
        for b in 0u8..0x80 {
            let c = char::from(b);
            for text in [c.to_string(), format!("é{c}✓{c}{c}𝄞")] {
                let mut ours = String::new();
                json_str(&mut ours, &text);
                let mut expected = String::from('"');
                for c in text.chars() {
                    match c {
                        '"' => expected.push_str("\\\""),
                        '\\' => expected.push_str("\\\\"),
                        '\n' => expected.push_str("\\n"),
                        '\r' => expected.push_str("\\r"),
                        '\t' => expected.push_str("\\t"),
                        c if (c as u32) < 0x20 => {
                            expected.push_str(&format!("\\u{:04x}", c as u32))
                        }
                        c => expected.push(c),
                    }
                }
                expected.push('"');
                assert_eq!(ours, expected, "{b}");
                let back: String = serde_json::from_str(&ours).expect("valid JSON string");
                assert_eq!(back, text);
            }
        }
    }
}
