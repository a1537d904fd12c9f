//! Logs on the `log` crate through `env_logger`, with a format of ours: one JSON object (or one
//! text line) per record on stderr. `log.level` is the default; `RUST_LOG` takes env_logger's
//! directives and overrides it (`RUST_LOG=api_gateway::auth=debug,pingora=warn`). Pingora's
//! records come too. Access lines are batched (see [`emit_batched`]) so the request path makes
//! no system call for them.

use crate::config::file::{LogConfig, LogFormat, LogLevel};
use log::{LevelFilter, Record};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
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
    if let Err(e) = builder.try_init() {
        log::debug!("logger already installed: {e}");
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
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
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
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        now.subsec_millis()
    );
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
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn json_escaping() {
        let mut s = String::new();
        json_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
        let v: String = serde_json::from_str(&s).expect("valid JSON string");
        assert_eq!(v, "a\"b\\c\nd\u{1}é");
    }
}
