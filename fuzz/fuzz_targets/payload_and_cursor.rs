//! Payload validation and conversion, and cursor parsing: no panic, and
//! conversions between encodings keep the value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_core::cursor::{format_cursor, parse_cursor};
use livegate_core::Payload;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Payload::from_json(data.to_vec()) {
        let mp = Payload::from_msgpack(p.to_msgpack().into_owned()).expect("converted JSON is MessagePack");
        assert_eq!(mp.to_json_value(), p.to_json_value());
    }
    if let Ok(p) = Payload::from_msgpack(data.to_vec()) {
        let _ = p.to_json();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(entries) = parse_cursor(text) {
            let again = format_cursor(entries.iter().map(|(t, p)| (t.as_str(), p)));
            assert_eq!(parse_cursor(&again).ok(), Some(entries));
        }
    }
});
