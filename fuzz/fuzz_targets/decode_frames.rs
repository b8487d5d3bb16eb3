//! Any bytes given to the frame decoders: no panic, and whatever decodes
//! re-encodes to bytes that decode to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_core::Encoding;

fuzz_target!(|data: &[u8]| {
    for enc in Encoding::ALL {
        if let Ok(frame) = enc.decode_client(data) {
            let again = enc.encode_client(&frame);
            assert_eq!(enc.decode_client(&again).ok(), Some(frame));
        }
        if let Ok(frame) = enc.decode_server(data) {
            let again = enc.encode_server(&frame);
            assert_eq!(enc.decode_server(&again).ok(), Some(frame));
        }
    }
});
