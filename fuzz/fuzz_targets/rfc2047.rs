//! Feeds arbitrary text to the RFC 2047 decoder of user metadata values: it must never panic,
//! and what `encode` makes of any value must be a printable-ASCII field value that decodes
//! back to that value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_http::rfc2047::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let decoded = decode(text);
    for value in [text, decoded.as_ref()] {
        let field = encode(value);
        assert!(field.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)));
        if field != value {
            assert_eq!(decode(&field), value);
        }
    }
});
