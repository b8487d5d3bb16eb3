//! Fixtures shared by the criterion benchmarks in `benches/` (see
//! `README.md`); the benchmarks themselves are the crate's bench targets.
#![forbid(unsafe_code)]

use std::time::Duration;

use criterion::Criterion;
use livegate_core::Payload;

/// The settings every benchmark here uses: short enough that the whole set
/// runs in a couple of minutes on two cores.
pub fn config(measurement_secs: u64) -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(measurement_secs))
        .without_plots()
}

/// A JSON object of exactly `size` bytes (at least 42): an `items` array of
/// small records, so transcoding sees a realistic mix of strings, integers,
/// floats, booleans and nesting, then a `pad` string that makes up the rest.
pub fn json_object(size: usize) -> String {
    const TAIL: usize = r#"],"pad":""}"#.len();
    let mut s = String::from(r#"{"id":12345,"ok":true,"items":["#);
    for i in 0u32.. {
        let sep = if i > 0 { "," } else { "" };
        let item = format!(
            r#"{sep}{{"n":{i},"name":"sensor-{i}","v":{}.25,"on":{}}}"#,
            i * 7,
            i % 2 == 0
        );
        if s.len() + item.len() + TAIL > size {
            break;
        }
        s.push_str(&item);
    }
    let pad = size.saturating_sub(s.len() + TAIL);
    s.push_str(r#"],"pad":""#);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str(r#""}"#);
    s
}

/// [`json_object`] as a JSON payload.
pub fn json_payload(size: usize) -> Payload {
    Payload::from_json(json_object(size)).expect("valid JSON")
}

/// The same value as a MessagePack payload (converted from [`json_payload`]).
pub fn msgpack_payload(size: usize) -> Payload {
    Payload::from_msgpack(json_payload(size).to_msgpack().into_owned()).expect("valid MessagePack")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_exact() {
        for size in [42, 100, 256, 64 * 1024] {
            assert_eq!(json_payload(size).len(), size);
            assert_eq!(msgpack_payload(size), json_payload(size));
        }
    }
}
