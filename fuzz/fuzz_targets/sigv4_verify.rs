//! Splits arbitrary bytes into a method, path, query, Authorization value and date, and runs
//! the verifier: it must never panic, and with a made-up secret it must never accept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_http::sigv4::{verify, AuthInput};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut fields = text.split('\n');
    let method = fields.next().unwrap_or("GET");
    let path = fields.next().unwrap_or("/");
    let query = fields.next().unwrap_or("");
    let auth = fields.next().unwrap_or("");
    let date = fields.next().unwrap_or("");
    let headers = [
        ("host", "h"),
        ("authorization", auth),
        ("x-amz-date", date),
        ("date", date),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
    ];
    let creds: &[(&str, &str)] = &[("AKID", "fuzzing-secret")];
    let input = AuthInput {
        method,
        raw_path: path,
        raw_query: query,
        headers: &headers,
        virtual_host_bucket: Some("b"),
    };
    for now in [0, 1_700_000_000, i64::MAX, i64::MIN] {
        assert!(verify(&input, now, creds).is_err());
    }
});
