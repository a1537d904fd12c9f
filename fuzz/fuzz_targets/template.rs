//! Any text as a middleware template (header values, redirect targets, path rewrites): parsing
//! and rendering never panic; text without `$` is itself; what a render adds comes from the
//! variables and captures, never from anywhere else.
#![no_main]

use api_gateway::fuzzing::template;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let captures = first % 2 == 0;
    let Some(out) = template(text, captures) else {
        assert!(text.contains('$'), "only a $ can make a template fail: {text:?}");
        return;
    };
    if !text.contains('$') {
        assert_eq!(out, text);
    }
    // Every variable and capture value is made of these, so a render holds nothing else.
    let allowed = |c: char| text.contains(c) || "192.0.2.1ridalicerhuGETp/q=1httpab".contains(c);
    assert!(out.chars().all(allowed), "{text:?} rendered {out:?}");
});
