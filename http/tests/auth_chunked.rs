//! The aws-chunked decoder: arbitrary splits, every framing error, limits, truncation, the
//! unsigned trailer mode with checksums end to end, and fuzz-style inputs that must never
//! panic.

use proptest::prelude::*;
use tessera_http::aws_chunked::{
    ChunkedDecoder, CHUNK_LINE_BYTES_MAX, CHUNK_SIZE_MAX, TRAILER_BYTES_MAX,
};
use tessera_http::checksum::{BodyVerifier, ChecksumAlgorithm, ChecksumHasher, IntegrityHeaders};
use tessera_http::sigv4::{AuthError, PayloadMode, SignatureChain, Signer};
use tessera_http::S3ErrorCode;

fn chain() -> SignatureChain {
    let signer = Signer {
        access_key: "AK",
        secret: "SK",
        region: "eu-west-1",
        service: "s3",
    };
    signer
        .sign_headers(
            "PUT",
            "/b/k",
            "",
            &[("host", "h")],
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            1_700_000_000,
        )
        .chain
}

/// A signed aws-chunked body of `payload` in chunks of `chunk` bytes, with optional trailers.
fn signed_body(payload: &[u8], chunk: usize, trailers: Option<&[(&str, &str)]>) -> Vec<u8> {
    let mut signing = chain();
    let mut body = Vec::new();
    for piece in payload.chunks(chunk) {
        body.extend_from_slice(signing.sign_chunk(piece).as_bytes());
        body.extend_from_slice(piece);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(signing.sign_chunk(&[]).as_bytes());
    match trailers {
        Some(t) => body.extend_from_slice(signing.sign_trailers(t).as_bytes()),
        None => body.extend_from_slice(b"\r\n"),
    }
    body
}

/// An unsigned aws-chunked body with a CRC32 trailer.
fn unsigned_body(payload: &[u8], chunk: usize, crc32_b64: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for piece in payload.chunks(chunk) {
        body.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        body.extend_from_slice(piece);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("0\r\nx-amz-checksum-crc32:{crc32_b64}\r\n\r\n").as_bytes());
    body
}

/// Feeds `pieces` in order (as a socket would deliver them), returns the payload or error.
fn run(decoder: &mut ChunkedDecoder, pieces: &[&[u8]]) -> Result<Vec<u8>, AuthError> {
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for piece in pieces {
        pending.extend_from_slice(piece);
        let mut pos = 0;
        while pos < pending.len() && !decoder.is_done() {
            let step = decoder.decode(&pending[pos..])?;
            assert!(step.consumed <= pending.len() - pos);
            assert!(step.data.end <= step.consumed);
            out.extend_from_slice(&pending[pos..][step.data.clone()]);
            if step.consumed == 0 {
                break;
            }
            pos += step.consumed;
        }
        pending.drain(..pos);
    }
    decoder.finish()?;
    Ok(out)
}

fn signed_decoder(len: u64, trailers: bool, expected: Option<ChecksumAlgorithm>) -> ChunkedDecoder {
    ChunkedDecoder::new(Some(chain()), trailers, Some(len), expected)
}

/// A signed body split at every single position decodes to the same payload: the decoder
/// keeps state across a split inside a size line, inside data, and inside each CRLF.
#[test]
fn signed_body_split_at_every_position() {
    let payload: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
    let crc = ChecksumHasher::digest(ChecksumAlgorithm::Crc32c, &payload).to_base64();
    let body = signed_body(&payload, 128, Some(&[("x-amz-checksum-crc32c", &crc)]));
    for split in 0..=body.len() {
        let mut d = signed_decoder(300, true, Some(ChecksumAlgorithm::Crc32c));
        let out = run(&mut d, &[&body[..split], &body[split..]]).unwrap();
        assert_eq!(out, payload, "split at {split}");
        assert_eq!(d.trailer_checksum().unwrap().to_base64(), crc);
    }
    let mut d = signed_decoder(300, true, Some(ChecksumAlgorithm::Crc32c));
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(run(&mut d, &bytes).unwrap(), payload);
}

/// Payload comes back as ranges of the input: one large chunk fed whole yields one range that
/// points into the caller's buffer, with no copy.
#[test]
fn payload_is_a_range_of_the_input() {
    let payload = vec![7u8; 10_000];
    let body = signed_body(&payload, 10_000, None);
    let mut d = signed_decoder(10_000, false, None);
    let step = d.decode(&body).unwrap();
    assert_eq!(step.data.len(), 10_000);
    assert_eq!(&body[step.data.clone()], &payload[..]);
    let rest = d.decode(&body[step.consumed..]).unwrap();
    assert!(rest.data.is_empty());
    assert!(d.is_done());
    assert_eq!(step.consumed + rest.consumed, body.len());
}

/// `data_remaining` tells how many of the next input bytes are all payload: a caller that
/// reads exactly that many elsewhere and decodes them there gets them whole, and the body
/// still verifies (chunk signatures included) when fed that way throughout.
#[test]
fn data_remaining_lets_payload_be_read_elsewhere() {
    let payload: Vec<u8> = (0..1000u32).map(|i| (i * 13) as u8).collect();
    let body = signed_body(&payload, 300, None);
    let mut d = signed_decoder(1000, false, None);
    assert_eq!(d.data_remaining(), 0);
    let (mut pos, mut out) = (0, Vec::new());
    while !d.is_done() {
        let direct = usize::try_from(d.data_remaining()).unwrap().min(77);
        if direct > 0 {
            // The payload lands in a separate buffer, decoded there.
            let elsewhere = body[pos..pos + direct].to_vec();
            let step = d.decode(&elsewhere).unwrap();
            assert_eq!((step.consumed, step.data), (direct, 0..direct));
            out.extend_from_slice(&elsewhere);
            pos += direct;
        } else {
            // Framing goes a byte at a time, as the smallest reads would bring it.
            let step = d.decode(&body[pos..=pos]).unwrap();
            out.extend_from_slice(&body[pos..][step.data.clone()]);
            pos += step.consumed;
        }
    }
    d.finish().unwrap();
    assert_eq!(out, payload);
    assert_eq!(pos, body.len());
    // A flipped payload byte read the same way fails its chunk signature.
    let mut bad = body.clone();
    bad[body.len() / 2] ^= 1;
    let mut d = signed_decoder(1000, false, None);
    let mut pos = 0;
    let failed = loop {
        if d.is_done() {
            break false;
        }
        let direct = usize::try_from(d.data_remaining()).unwrap();
        let end = if direct > 0 { pos + direct } else { pos + 1 };
        match d.decode(&bad[pos..end]) {
            Ok(step) => pos += step.consumed,
            Err(_) => break true,
        }
    };
    assert!(failed, "a corrupt chunk read directly was accepted");
}

/// Bytes after the end of the body (a pipelined request) are left unconsumed.
#[test]
fn bytes_after_the_body_are_not_consumed() {
    let mut body = signed_body(b"hello", 5, None);
    let body_len = body.len();
    body.extend_from_slice(b"GET / HTTP/1.1\r\n");
    let mut d = signed_decoder(5, false, None);
    let mut pos = 0;
    while !d.is_done() {
        pos += d.decode(&body[pos..]).unwrap().consumed;
    }
    assert_eq!(pos, body_len);
    assert_eq!(d.decode(&body[pos..]).unwrap().consumed, 0);
}

/// Truncating a signed body anywhere is never accepted: `finish` says `IncompleteBody`,
/// except right before the final empty line of a signed trailer section (some clients omit
/// it; the trailer signature has been verified by then).
#[test]
fn truncation_anywhere_is_incomplete() {
    let body = signed_body(
        b"hello world",
        4,
        Some(&[("x-amz-checksum-crc32", "DUoRhQ==")]),
    );
    for cut in 0..body.len() {
        let mut d = signed_decoder(11, true, Some(ChecksumAlgorithm::Crc32));
        let result = run(&mut d, &[&body[..cut]]);
        if cut == body.len() - 2 {
            assert!(result.is_ok(), "cut {cut}");
        } else {
            assert_eq!(
                result.unwrap_err().s3_error().code,
                S3ErrorCode::IncompleteBody,
                "cut {cut}"
            );
        }
    }
}

/// Signed mode: a chunk line without a signature, a bad signature, and a reordered chunk are
/// refused; errors are sticky.
#[test]
fn chunk_signature_errors() {
    let body = signed_body(b"abcdefgh", 4, None);
    let text = String::from_utf8(body.clone()).unwrap();
    let unsigned = text.replacen(";chunk-signature=", ";chunk-signatur=", 1);
    let mut d = signed_decoder(8, false, None);
    assert!(matches!(
        run(&mut d, &[unsigned.as_bytes()]),
        Err(AuthError::ChunkedMalformed(_))
    ));

    let mut swapped = body.clone();
    // Swap the two data chunks' bytes: same lengths, wrong order.
    let first = text.find("abcd").unwrap();
    let second = text.find("efgh").unwrap();
    swapped[first..first + 4].copy_from_slice(b"efgh");
    swapped[second..second + 4].copy_from_slice(b"abcd");
    let mut d = signed_decoder(8, false, None);
    let err = run(&mut d, &[&swapped]).unwrap_err();
    assert_eq!(err, AuthError::ChunkSignatureMismatch);
    assert_eq!(
        d.decode(b"anything").unwrap_err(),
        AuthError::ChunkSignatureMismatch
    );
}

/// Framing errors, one per rule: bad hex, too many digits, data not followed by CRLF, a line
/// ending in bare LF, a size above the limit, an overlong line, trailers where none are
/// allowed.
#[test]
fn framing_errors() {
    let too_big = format!("{:x}\r\n", CHUNK_SIZE_MAX + 1);
    let long_line = format!("1;{}\r\n", "x".repeat(CHUNK_LINE_BYTES_MAX));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad hex", b"zz\r\nhello\r\n0\r\n\r\n".to_vec()),
        ("empty size", b"\r\n".to_vec()),
        (
            "17 digits",
            b"00000000000000005\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
        ("no CRLF after data", b"5\r\nhelloXX0\r\n\r\n".to_vec()),
        ("bare LF", b"5\nhello\r\n0\r\n\r\n".to_vec()),
        ("too big", too_big.into_bytes()),
        ("long line", long_line.into_bytes()),
        (
            "trailer not allowed",
            b"5\r\nhello\r\n0\r\nx-amz-meta-a:b\r\n\r\n".to_vec(),
        ),
    ];
    for (what, body) in cases {
        let mut d = ChunkedDecoder::new(None, false, Some(5), None);
        let err = run(&mut d, &[&body]).unwrap_err();
        assert!(
            matches!(err, AuthError::ChunkedMalformed(_)),
            "{what}: {err:?}"
        );
        assert_eq!(err.s3_error().code, S3ErrorCode::InvalidRequest);
    }
}

/// The decoded length must equal `x-amz-decoded-content-length`: shorter is
/// `IncompleteBody`, longer is refused as soon as the excess byte arrives.
#[test]
fn decoded_length_must_match() {
    let body = b"5\r\nhello\r\n0\r\n\r\n";
    let mut short = ChunkedDecoder::new(None, false, Some(6), None);
    assert_eq!(
        run(&mut short, &[body]).unwrap_err(),
        AuthError::IncompleteBody
    );
    let mut long = ChunkedDecoder::new(None, false, Some(4), None);
    assert_eq!(
        run(&mut long, &[body]).unwrap_err(),
        AuthError::DecodedLengthExceeded
    );
    let mut exact = ChunkedDecoder::new(None, false, Some(5), None);
    assert_eq!(run(&mut exact, &[body]).unwrap(), b"hello");
}

/// Trailer rules: the total is bounded, the checksum trailer must be the one announced and
/// must arrive, the trailer signature must come last and is not accepted in unsigned mode.
#[test]
fn trailer_rules() {
    let many = format!(
        "5\r\nhello\r\n0\r\n{}\r\n",
        "x-amz-meta-a:0123456789\r\n".repeat(TRAILER_BYTES_MAX / 20)
    );
    let mut d = ChunkedDecoder::new(None, true, Some(5), None);
    assert!(matches!(
        run(&mut d, &[many.as_bytes()]),
        Err(AuthError::ChunkedMalformed(_))
    ));

    let crc = ChecksumHasher::digest(ChecksumAlgorithm::Crc32, b"hello").to_base64();
    let body = unsigned_body(b"hello", 5, &crc);
    let mut undeclared = ChunkedDecoder::new(None, true, Some(5), None);
    assert!(matches!(
        run(&mut undeclared, &[&body]),
        Err(AuthError::InvalidChecksum(_))
    ));
    let mut other = ChunkedDecoder::new(None, true, Some(5), Some(ChecksumAlgorithm::Crc32c));
    assert!(matches!(
        run(&mut other, &[&body]),
        Err(AuthError::InvalidChecksum(_))
    ));
    let missing = b"5\r\nhello\r\n0\r\n\r\n";
    let mut absent = ChunkedDecoder::new(None, true, Some(5), Some(ChecksumAlgorithm::Crc32));
    assert!(matches!(
        run(&mut absent, &[missing]),
        Err(AuthError::InvalidChecksum(_))
    ));

    let signed_in_unsigned = format!(
        "5\r\nhello\r\n0\r\nx-amz-trailer-signature:{}\r\n\r\n",
        "0".repeat(64)
    );
    let mut d = ChunkedDecoder::new(None, true, Some(5), None);
    assert!(matches!(
        run(&mut d, &[signed_in_unsigned.as_bytes()]),
        Err(AuthError::ChunkedMalformed(_))
    ));

    // Signed trailers without the signature line are refused.
    let mut body = signed_body(b"hello", 5, None);
    body.truncate(body.len() - 2);
    body.extend_from_slice(b"x-amz-checksum-crc32:NhCmhg==\r\n\r\n");
    let mut d = signed_decoder(5, true, Some(ChecksumAlgorithm::Crc32));
    assert!(matches!(
        run(&mut d, &[&body]),
        Err(AuthError::ChunkedMalformed(_))
    ));
}

/// `STREAMING-UNSIGNED-PAYLOAD-TRAILER` with a CRC32 trailer, end to end through the
/// `BodyVerifier`: the right value is accepted and returned, a wrong one is `BadDigest`.
#[test]
fn unsigned_trailer_crc32_end_to_end() {
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let crc = ChecksumHasher::digest(ChecksumAlgorithm::Crc32, &payload).to_base64();
    let mode = PayloadMode::StreamingUnsignedTrailer {
        decoded_content_length: 100_000,
    };
    let headers = [
        ("x-amz-trailer", "x-amz-checksum-crc32"),
        ("x-amz-sdk-checksum-algorithm", "CRC32"),
    ];
    let integrity = IntegrityHeaders::parse(&headers).unwrap();
    for (value, ok) in [(crc.as_str(), true), ("AAAAAA==", false)] {
        let body = unsigned_body(&payload, 65_536, value);
        let mut d = ChunkedDecoder::for_payload(&mode, integrity.trailer).unwrap();
        let mut verifier = BodyVerifier::new(&mode, &integrity, true).unwrap();
        let mut pos = 0;
        while !d.is_done() {
            let step = d.decode(&body[pos..]).unwrap();
            verifier.update(&body[pos..][step.data]);
            pos += step.consumed;
        }
        let result = verifier.finish(d.trailer_checksum());
        if ok {
            let digest = result.unwrap();
            assert_eq!(digest.checksum.unwrap().to_base64(), crc);
            assert_eq!(digest.length, 100_000);
        } else {
            assert_eq!(result.unwrap_err().s3_error().code, S3ErrorCode::BadDigest);
        }
    }
}

proptest! {
    /// Any bytes, split anywhere, never make the decoder panic, in any mode.
    #[test]
    fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..600), split in 0usize..600, signed in any::<bool>(), trailers in any::<bool>()) {
        let mut d = ChunkedDecoder::new(signed.then(chain), trailers, Some(10), Some(ChecksumAlgorithm::Crc32));
        let split = split.min(body.len());
        let _ = run(&mut d, &[&body[..split], &body[split..]]);
    }

    /// Mutations of a valid framed body (byte flips, insertions) never panic.
    #[test]
    fn mutated_bodies_never_panic(at in 0usize..200, byte in any::<u8>(), insert in any::<bool>()) {
        let crc = ChecksumHasher::digest(ChecksumAlgorithm::Crc32, b"0123456789").to_base64();
        let mut body = unsigned_body(b"0123456789", 3, &crc);
        let at = at % body.len();
        if insert { body.insert(at, byte) } else { body[at] = byte }
        let mut d = ChunkedDecoder::new(None, true, Some(10), Some(ChecksumAlgorithm::Crc32));
        let _ = run(&mut d, &[&body]);
    }

    /// Valid signed bodies of any content and chunking decode exactly, however split.
    #[test]
    fn valid_bodies_decode(payload in proptest::collection::vec(any::<u8>(), 0..2000), chunk in 1usize..700, cuts in proptest::collection::vec(0usize..3000, 0..6)) {
        let body = signed_body(&payload, chunk, None);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
        cuts.sort_unstable();
        let mut pieces = Vec::new();
        let mut last = 0;
        for c in cuts { pieces.push(&body[last..c]); last = c; }
        pieces.push(&body[last..]);
        let mut d = signed_decoder(payload.len() as u64, false, None);
        prop_assert_eq!(run(&mut d, &pieces).unwrap(), payload);
    }
}
