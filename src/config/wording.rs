//! Problems worded for the person who wrote the file: a likely key for a misspelt one, and
//! plain words for the Rust types serde names (`expected usize`).

use serde_path_to_error::Segment;
use serde_yaml::Value;

/// For serde's `unknown field `x`, expected one of `a`, `b`` (or `expected `a` or `b``): the
/// unknown key, and the closest allowed key when one is close enough to be a slip.
pub fn unknown_field(message: &str) -> Option<(String, Option<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, expected) = rest.split_once('`')?;
    let closest = closest(field, expected.split('`').skip(1).step_by(2)).map(str::to_owned);
    Some((field.to_owned(), closest))
}

/// The candidate `word` is most likely a slip for: within a third of its length in edits
/// (at least one).
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|candidate| (strsim::damerau_levenshtein(word, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(1))
        .min()
        .map(|(_, candidate)| candidate)
}

/// The message with `(did you mean `y`?)` added when there is a suggestion.
pub fn with_suggestion(message: &str, suggestion: Option<&str>) -> String {
    match suggestion {
        Some(s) => format!("{message} (did you mean `{s}`?)"),
        None => message.to_owned(),
    }
}

/// Removes `field` from the mapping at `path` inside `value` (serde's path of an unknown key
/// ends with the key itself); whether it was there.
pub fn remove_field<'a>(
    value: &mut Value,
    path: impl Iterator<Item = &'a Segment>,
    field: &str,
) -> bool {
    let mut segments: Vec<&Segment> = path.collect();
    if matches!(segments.last(), Some(Segment::Map { key }) if key == field) {
        segments.pop();
    }
    let mut at = value;
    for segment in segments {
        let next = match (segment, at) {
            (Segment::Seq { index }, Value::Sequence(items)) => items.get_mut(*index),
            (Segment::Map { key }, Value::Mapping(map)) => map.get_mut(key.as_str()),
            _ => None,
        };
        match next {
            Some(v) => at = v,
            None => return false,
        }
    }
    match at {
        Value::Mapping(map) => map.remove(field).is_some(),
        _ => false,
    }
}

/// Rust type names in serde's messages, in the words of the config's schema.
const TYPES: [(&str, &str); 14] = [
    ("usize", "a whole number, 0 or more"),
    ("u8", "a whole number, 0 or more"),
    ("u16", "a whole number, 0 or more"),
    ("u32", "a whole number, 0 or more"),
    ("u64", "a whole number, 0 or more"),
    ("u128", "a whole number, 0 or more"),
    ("isize", "a whole number"),
    ("i8", "a whole number"),
    ("i16", "a whole number"),
    ("i32", "a whole number"),
    ("i64", "a whole number"),
    ("f32", "a number"),
    ("f64", "a number"),
    (
        "any YAML value",
        "a value this key takes (the number is too large)",
    ),
];

/// `message` with Rust type names replaced (`expected u32` → `expected a whole number, 0 or
/// more`; `integer `5` as u128` → `integer `5``).
pub fn plain(message: &str) -> String {
    let mut out = message.to_owned();
    for (rust, words) in TYPES {
        out = out.replace(&format!(" as {rust},"), ",");
        for end in ["", ",", " at "] {
            let from = format!("expected {rust}{end}");
            if end.is_empty() && !out.ends_with(&from) {
                continue;
            }
            out = out.replace(&from, &format!("expected {words}{end}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slip_gets_a_suggestion_and_a_stranger_none() {
        let m = "unknown field `upstrem`, expected one of `name`, `path`, `upstream`, `methods`";
        assert_eq!(
            unknown_field(m),
            Some(("upstrem".into(), Some("upstream".into())))
        );
        let m = "unknown field `colour`, expected one of `name`, `path`, `upstream`";
        assert_eq!(unknown_field(m), Some(("colour".into(), None)));
        let m = "unknown field `stratgey`, expected `strategy` or `backends`";
        assert_eq!(
            unknown_field(m),
            Some(("stratgey".into(), Some("strategy".into())))
        );
        assert_eq!(unknown_field("invalid type: string"), None);
    }

    #[test]
    fn rust_types_become_words() {
        assert_eq!(
            plain("invalid type: string \"two\", expected usize"),
            "invalid type: string \"two\", expected a whole number, 0 or more"
        );
        assert_eq!(
            plain("invalid value: integer `-1`, expected u32 at line 3 column 2"),
            "invalid value: integer `-1`, expected a whole number, 0 or more at line 3 column 2"
        );
        assert_eq!(
            plain("invalid type: integer `123` as u128, expected any YAML value at line 2"),
            "invalid type: integer `123`, expected a value this key takes (the number is too large) at line 2"
        );
        assert_eq!(plain("expected a string"), "expected a string");
    }

    #[test]
    fn fields_are_removed_where_the_path_leads() {
        let mut v: Value = serde_yaml::from_str("a: [{x: 1, bad: 2}]").expect("yaml");
        let path = [Segment::Map { key: "a".into() }, Segment::Seq { index: 0 }];
        assert!(remove_field(&mut v, path.iter(), "bad"));
        assert_eq!(
            v,
            serde_yaml::from_str::<Value>("a: [{x: 1}]").expect("yaml")
        );
        assert!(!remove_field(&mut v, path.iter(), "bad"));
        // The path serde gives ends with the unknown key.
        let mut v: Value = serde_yaml::from_str("a: {x: 1, bad: 2}").expect("yaml");
        let path = [
            Segment::Map { key: "a".into() },
            Segment::Map { key: "bad".into() },
        ];
        assert!(remove_field(&mut v, path.iter(), "bad"));
        assert_eq!(v, serde_yaml::from_str::<Value>("a: {x: 1}").expect("yaml"));
    }
}
