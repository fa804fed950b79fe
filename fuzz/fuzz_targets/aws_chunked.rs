//! Feeds arbitrary bytes, split at a fuzzer-chosen point, to the aws-chunked decoder in every
//! mode: it must never panic, never hand out a range outside its input, and never hand out
//! more payload than `x-amz-decoded-content-length`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_http::aws_chunked::ChunkedDecoder;
use tessera_http::checksum::ChecksumAlgorithm;
use tessera_http::sigv4::Signer;

fuzz_target!(|data: &[u8]| {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let signed = control & 1 != 0;
    let trailers = control & 2 != 0;
    let declared = u64::from(control >> 2) * 17;
    let chain = signed.then(|| {
        let signer = Signer {
            access_key: "AK",
            secret: "SK",
            region: "us-east-1",
            service: "s3",
        };
        signer
            .sign_headers(
                "PUT",
                "/b/k",
                "",
                &[("host", "h")],
                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                0,
            )
            .chain
    });
    let mut decoder = ChunkedDecoder::new(
        chain,
        trailers,
        Some(declared),
        Some(ChecksumAlgorithm::Crc32),
    );
    let split = if body.is_empty() {
        0
    } else {
        usize::from(control) % body.len()
    };
    let mut payload = 0u64;
    for piece in [&body[..split], &body[split..]] {
        let mut pos = 0;
        while pos < piece.len() && !decoder.is_done() {
            let Ok(step) = decoder.decode(&piece[pos..]) else {
                return;
            };
            assert!(step.consumed <= piece.len() - pos);
            assert!(step.data.start <= step.data.end && step.data.end <= step.consumed);
            payload += step.data.len() as u64;
            assert!(payload <= declared);
            if step.consumed == 0 {
                break;
            }
            pos += step.consumed;
        }
    }
    let _ = decoder.finish();
});
