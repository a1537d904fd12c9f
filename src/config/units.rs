//! Human-friendly scalar types used in the config file: durations (`250ms`, `5s`, `15m`, `7d`),
//! sizes (`512KiB`, `10MiB`) and rates (`100/s`, `6000/m`).

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A duration written as one or more `<integer><unit>` parts, e.g. `1m30s`.
/// Units: `ms`, `s`, `m`, `h`, `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

/// A duration that must be more than zero (a timeout, a lifetime, an interval): `0s` is a
/// problem reported where the file says it, when the file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PositiveDuration(pub Duration);

/// A byte size that must be more than zero (a bound, a limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PositiveSize(pub u64);

/// A byte size: a plain integer, or an integer with `B`, `KB`, `MB`, `GB` (powers of 1000) or
/// `KiB`, `MiB`, `GiB` (powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// A rate such as `100/s`: `count` events per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rate {
    pub count: u64,
    pub per: Duration,
}

/// A value that is not a duration, size or rate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("invalid duration {0:?}: expected e.g. 250ms, 5s, 15m, 2h, 7d")]
    Duration(String),
    #[error("invalid size {0:?}: expected e.g. 4096, 512KiB, 10MiB, 1GB")]
    Size(String),
    #[error("invalid rate {0:?}: expected e.g. 100/s, 6000/m, 50000/h")]
    Rate(String),
    #[error("invalid rate {0:?}: count and period must be positive")]
    RateNotPositive(String),
}

/// Parses a duration such as `250ms`, `5s`, `1m30s`.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let expected = || UnitError::Duration(text.to_owned());
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(expected());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(expected());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| expected())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            "d" => Duration::from_secs(value.saturating_mul(86_400)),
            _ => return Err(expected()),
        };
        rest = &rest[unit_len..];
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// Parses a size such as `512KiB`, `10MiB` or `4096`.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let expected = || UnitError::Size(text.to_owned());
    let trimmed = text.trim();
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(expected());
    }
    let value: u64 = trimmed[..digits].parse().map_err(|_| expected())?;
    let factor: u64 = match trimmed[digits..].trim_start() {
        "" | "B" => 1,
        "KB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(expected()),
    };
    value.checked_mul(factor).ok_or_else(expected)
}

/// Parses a rate such as `100/s`, `6000/m`, `10/2s`.
pub fn parse_rate(text: &str) -> Result<Rate, UnitError> {
    let expected = || UnitError::Rate(text.to_owned());
    let (count, per) = text.trim().split_once('/').ok_or_else(expected)?;
    let count: u64 = count.trim().parse().map_err(|_| expected())?;
    let per = per.trim();
    let per = if per.starts_with(|c: char| c.is_ascii_digit()) {
        parse_duration(per).map_err(|_| expected())?
    } else {
        parse_duration(&format!("1{per}")).map_err(|_| expected())?
    };
    if count == 0 || per.is_zero() {
        return Err(UnitError::RateNotPositive(text.to_owned()));
    }
    Ok(Rate { count, per })
}

/// Formats a duration back into the config syntax (`1500ms`, `5s`, `2m`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    for (unit, secs) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s != 0 && s % secs == 0 {
            return format!("{}{unit}", s / secs);
        }
    }
    format!("{s}s")
}

struct StrOrInt<F>(F, &'static str);

impl<'de, T, F: Fn(&str) -> Result<T, UnitError>> Visitor<'de> for StrOrInt<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.1)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        (self.0)(&v.to_string()).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrOrInt(
            |s: &str| parse_duration(s).map(HumanDuration),
            "a duration such as 5s",
        ))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrOrInt(
            |s: &str| parse_size(s).map(ByteSize),
            "a size such as 10MiB",
        ))
    }
}

impl<'de> Deserialize<'de> for PositiveDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let HumanDuration(v) = HumanDuration::deserialize(d)?;
        positive(v.is_zero()).map(|()| PositiveDuration(v))
    }
}

impl<'de> Deserialize<'de> for PositiveSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ByteSize(v) = ByteSize::deserialize(d)?;
        positive(v == 0).map(|()| PositiveSize(v))
    }
}

fn positive<E: de::Error>(zero: bool) -> Result<(), E> {
    if zero {
        Err(E::custom("must be positive"))
    } else {
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrOrInt(parse_rate, "a rate such as 100/s"))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl Serialize for PositiveDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        HumanDuration(self.0).serialize(s)
    }
}

impl Serialize for PositiveSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}/{}", self.count, format_duration(self.per)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_units_refuse_zero_when_read() {
        let d =
            |text: &str| serde_yaml::from_str::<PositiveDuration>(text).map_err(|e| e.to_string());
        assert_eq!(d("5s"), Ok(PositiveDuration(Duration::from_secs(5))));
        assert!(d("0s").is_err_and(|e| e.contains("must be positive")));
        assert!(d("0ms").is_err());
        let s = |text: &str| serde_yaml::from_str::<PositiveSize>(text).map_err(|e| e.to_string());
        assert_eq!(s("1KiB"), Ok(PositiveSize(1024)));
        assert!(s("0").is_err_and(|e| e.contains("must be positive")));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        for bad in ["", "5", "s", "5x", "-1s", "1.5s", "5 s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in ["", "MiB", "10XB", "99999999999999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn rates() {
        let r = parse_rate("100/s").expect("valid");
        assert_eq!((r.count, r.per), (100, Duration::from_secs(1)));
        let r = parse_rate("6000/m").expect("valid");
        assert_eq!((r.count, r.per), (6000, Duration::from_secs(60)));
        let r = parse_rate("10/2s").expect("valid");
        assert_eq!(r.per, Duration::from_secs(2));
        for bad in ["100", "0/s", "x/s", "10/", "10/q"] {
            assert!(parse_rate(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn duration_round_trip() {
        for text in ["250ms", "5s", "15m", "2h", "7d", "90s"] {
            let d = parse_duration(text).expect("valid");
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
