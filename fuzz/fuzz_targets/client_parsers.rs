//! What drivers feed the sans-IO client from the network: SSE bodies in
//! chunks of any size, long-poll answers, `/wt/cert-hash` answers and HTTP
//! publish answers. None may panic; the SSE parser must give the same events
//! however the body is split, and never hold more than its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_core::client::{
    classify_response, CertHashInfo, Poller, Request, SseItem, SseParser,
};

const MAX: usize = 1024;

fn parse_all(chunks: &[&[u8]]) -> (Vec<SseItem>, bool) {
    let mut p = SseParser::new(MAX);
    let mut out = Vec::new();
    for c in chunks {
        match p.push(c) {
            Ok(items) => out.extend(items),
            Err(_) => return (out, true),
        }
        assert!(p.pending() <= MAX, "the parser holds at most its limit");
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    // SSE: whole, cut at a point chosen by the input, and byte by byte.
    let (whole, whole_failed) = parse_all(&[body]);
    let cut = usize::from(selector) * body.len() / 256;
    let (halves, halves_failed) = parse_all(&[&body[..cut], &body[cut..]]);
    if !whole_failed && !halves_failed {
        assert_eq!(whole, halves, "the split changed the events");
    }
    if body.len() <= 256 {
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        let (single, single_failed) = parse_all(&bytes);
        if !whole_failed && !single_failed {
            assert_eq!(whole, single, "byte by byte changed the events");
        }
    }
    // Long-poll answers: any status, any body.
    let status = 100 + u16::from(selector) * 2;
    let mut poller = Poller::new(Request::get("/poll").query("topic", "a"), 25_000);
    if let Ok(answer) = poller.handle_answer(200, body) {
        let cursor = answer.cursor.clone();
        assert!(answer.frames().count() <= body.len());
        assert_eq!(poller.cursor(), cursor);
        assert!(poller.answered());
    }
    let _ = poller.handle_answer(status, body);
    let _ = poller.next_request().path_and_query();
    // Discovery and publish answers.
    let _ = CertHashInfo::from_response(status, body);
    let _ = CertHashInfo::from_response(200, body);
    if let Err(e) = classify_response(status, body) {
        assert_eq!(e.retry, (500..600).contains(&status), "only 5xx is retried: {e:?}");
    }
});
