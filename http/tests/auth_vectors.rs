//! The AWS documentation examples for S3 authentication, run through the verifier and the
//! signer. Each test is named by its source page and example.
//!
//! Sources (all with access key `AKIAIOSFODNN7EXAMPLE`, secret
//! `wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`, region us-east-1):
//! - "Signature Calculations for the Authorization Header: Transferring Payload in a Single
//!   Chunk" (`sig-v4-header-based-auth`): GET Object, PUT Object, GET Bucket Lifecycle,
//!   GET Bucket (List Objects).
//! - "Authenticating Requests: Using Query Parameters" (`sigv4-query-string-auth`): GET Object.
//! - "Transferring Payload in Multiple Chunks" (`sigv4-streaming`): PUT Object.
//! - "Including Trailing Headers" (`sigv4-streaming-trailers`): PUT Object.
//! - "Signing and Authenticating REST Requests" (`RESTAuthentication`, `SigV2`): Object GET,
//!   Object PUT, List, Fetch, Delete, and the query string authentication example.

use tessera_http::aws_chunked::ChunkedDecoder;
use tessera_http::checksum::{BodyVerifier, ChecksumAlgorithm, ChecksumHasher, IntegrityHeaders};
use tessera_http::sigv4::{
    signing_key, verify, AuthError, AuthForm, AuthInput, PayloadMode, SignatureChain, Signer,
    EMPTY_SHA256_HEX,
};
use tessera_http::S3ErrorCode;

const AK: &str = "AKIAIOSFODNN7EXAMPLE";
const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const CREDS: &[(&str, &str)] = &[(AK, SK)];
/// `20130524T000000Z`, the time of every `SigV4` example.
const T2013: i64 = 1_369_353_600;
const HOST: &str = "examplebucket.s3.amazonaws.com";

fn signer() -> Signer<'static> {
    Signer {
        access_key: AK,
        secret: SK,
        region: "us-east-1",
        service: "s3",
    }
}

fn input<'a>(
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a [(&'a str, &'a str)],
) -> AuthInput<'a> {
    AuthInput {
        method,
        raw_path: path,
        raw_query: query,
        headers,
        virtual_host_bucket: None,
    }
}

fn v4_auth(signed_headers: &str, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={AK}/20130524/us-east-1/s3/aws4_request,\
         SignedHeaders={signed_headers},Signature={signature}"
    )
}

/// `sig-v4-header-based-auth`, "Example: GET Object": a Range header is signed; the verifier
/// accepts the documented signature and the signer reproduces it.
#[test]
fn aws_doc_sigv4_header_get_object() {
    let sig = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
    let auth = v4_auth("host;range;x-amz-content-sha256;x-amz-date", sig);
    let headers = [
        ("Host", HOST),
        ("Range", "bytes=0-9"),
        ("x-amz-content-sha256", EMPTY_SHA256_HEX),
        ("x-amz-date", "20130524T000000Z"),
        ("Authorization", auth.as_str()),
    ];
    let verified = verify(&input("GET", "/test.txt", "", &headers), T2013, CREDS).unwrap();
    assert_eq!(verified.access_key, AK);
    assert_eq!(verified.form, AuthForm::HeaderV4);
    assert_eq!(verified.region.as_deref(), Some("us-east-1"));
    assert!(matches!(verified.payload, PayloadMode::Sha256(_)));

    let signed = signer().sign_headers(
        "GET",
        "/test.txt",
        "",
        &[("Host", HOST), ("Range", "bytes=0-9")],
        EMPTY_SHA256_HEX,
        T2013,
    );
    assert!(
        signed.authorization.ends_with(sig),
        "{}",
        signed.authorization
    );
    assert_eq!(signed.amz_date, "20130524T000000Z");
}

/// `sig-v4-header-based-auth`, "Example: PUT Object": `$` in the key is encoded `%24` in the
/// canonical URI whether sent raw or escaped; the literal payload hash is then checked against
/// the body by the `BodyVerifier`.
#[test]
fn aws_doc_sigv4_header_put_object() {
    let sig = "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd";
    let body = b"Welcome to Amazon S3.";
    let body_sha = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    let auth = v4_auth(
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
        sig,
    );
    let headers = [
        ("Host", HOST),
        ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("x-amz-content-sha256", body_sha),
        ("Authorization", auth.as_str()),
    ];
    for path in ["/test$file.text", "/test%24file.text"] {
        let verified = verify(&input("PUT", path, "", &headers), T2013, CREDS).unwrap();
        let integrity = IntegrityHeaders::parse(&headers).unwrap();
        let mut body_ok = BodyVerifier::new(&verified.payload, &integrity, true).unwrap();
        body_ok.update(&body[..7]);
        body_ok.update(&body[7..]);
        let digest = body_ok.finish(None).unwrap();
        assert_eq!(digest.length, body.len() as u64);
        assert!(digest.md5.is_some());

        let mut body_bad = BodyVerifier::new(&verified.payload, &integrity, true).unwrap();
        body_bad.update(b"Welcome to Amazon S4.");
        let err = body_bad.finish(None).unwrap_err();
        assert_eq!(err, AuthError::ContentSha256Mismatch);
        assert_eq!(err.s3_error().code, S3ErrorCode::XAmzContentSHA256Mismatch);
    }
    let signed = signer().sign_headers(
        "PUT",
        "/test$file.text",
        "",
        &[
            ("Host", HOST),
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ],
        body_sha,
        T2013,
    );
    assert!(
        signed.authorization.ends_with(sig),
        "{}",
        signed.authorization
    );
}

/// `sig-v4-header-based-auth`, "Example: GET Bucket Lifecycle": a valueless query parameter
/// canonicalises as `lifecycle=`.
#[test]
fn aws_doc_sigv4_header_get_bucket_lifecycle() {
    let sig = "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543";
    let auth = v4_auth("host;x-amz-content-sha256;x-amz-date", sig);
    let headers = [
        ("Host", HOST),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-content-sha256", EMPTY_SHA256_HEX),
        ("Authorization", auth.as_str()),
    ];
    verify(&input("GET", "/", "lifecycle", &headers), T2013, CREDS).unwrap();
    let signed = signer().sign_headers(
        "GET",
        "/",
        "lifecycle",
        &[("host", HOST)],
        EMPTY_SHA256_HEX,
        T2013,
    );
    assert!(signed.authorization.ends_with(sig));
}

/// `sig-v4-header-based-auth`, "Example: GET Bucket (List Objects)": query parameters are
/// sorted, so the wire order does not matter; a changed value breaks the signature.
#[test]
fn aws_doc_sigv4_header_list_objects() {
    let sig = "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7";
    let auth = v4_auth("host;x-amz-content-sha256;x-amz-date", sig);
    let headers = [
        ("host", HOST),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-content-sha256", EMPTY_SHA256_HEX),
        ("authorization", auth.as_str()),
    ];
    verify(
        &input("GET", "/", "max-keys=2&prefix=J", &headers),
        T2013,
        CREDS,
    )
    .unwrap();
    verify(
        &input("GET", "/", "prefix=J&max-keys=2", &headers),
        T2013,
        CREDS,
    )
    .unwrap();
    let err = verify(
        &input("GET", "/", "prefix=K&max-keys=2", &headers),
        T2013,
        CREDS,
    );
    assert!(matches!(err, Err(AuthError::SignatureDoesNotMatch { .. })));
}

const PRESIGNED_QUERY: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256\
    &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
    &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
    &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

/// `sigv4-query-string-auth`, "Example: GET Object": the documented URL verifies during its
/// day of validity, is refused after, and the signer produces exactly the same query.
#[test]
fn aws_doc_sigv4_presigned_get_object() {
    let headers = [("Host", HOST)];
    let ok = verify(
        &input("GET", "/test.txt", PRESIGNED_QUERY, &headers),
        T2013 + 3600,
        CREDS,
    )
    .unwrap();
    assert_eq!(ok.form, AuthForm::PresignedV4);
    assert_eq!(ok.payload, PayloadMode::Unsigned);
    verify(
        &input("GET", "/test.txt", PRESIGNED_QUERY, &headers),
        T2013 + 86_400,
        CREDS,
    )
    .unwrap();

    let late = verify(
        &input("GET", "/test.txt", PRESIGNED_QUERY, &headers),
        T2013 + 86_401,
        CREDS,
    );
    let err = late.unwrap_err();
    assert_eq!(err, AuthError::Expired);
    assert_eq!(err.s3_error().code, S3ErrorCode::AccessDenied);
    assert_eq!(err.s3_error().message, "Request has expired");

    let query = signer().presign("GET", "/test.txt", "", &[("host", HOST)], 86_400, T2013);
    assert_eq!(query, PRESIGNED_QUERY);
}

/// The doc chunked example's request head (`sigv4-streaming`, "Example: PUT Object").
const CHUNKED_SIGNED_HEADERS: &str = "content-encoding;content-length;host;x-amz-content-sha256;\
     x-amz-date;x-amz-decoded-content-length;x-amz-storage-class";

fn chunked_body(signatures: [&str; 3], tail: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(format!("10000;chunk-signature={}\r\n", signatures[0]).as_bytes());
    body.extend_from_slice(&vec![b'a'; 65_536]);
    body.extend_from_slice(format!("\r\n400;chunk-signature={}\r\n", signatures[1]).as_bytes());
    body.extend_from_slice(&[b'a'; 1024]);
    body.extend_from_slice(format!("\r\n0;chunk-signature={}\r\n", signatures[2]).as_bytes());
    body.extend_from_slice(tail.as_bytes());
    body
}

/// Feeds `body` to `decoder` in pieces of `piece` bytes, collecting the payload.
fn decode_all(
    decoder: &mut ChunkedDecoder,
    body: &[u8],
    piece: usize,
) -> Result<Vec<u8>, AuthError> {
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for part in body.chunks(piece) {
        pending.extend_from_slice(part);
        let mut pos = 0;
        while pos < pending.len() && !decoder.is_done() {
            let step = decoder.decode(&pending[pos..])?;
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

/// `sigv4-streaming`, "Example: PUT Object": the seed signature verifies the head, then the
/// three documented chunk signatures verify the 66560-byte body, however it is split; the
/// signer's chain reproduces every chunk line; one flipped payload byte is refused.
#[test]
fn aws_doc_sigv4_streaming_put_object() {
    let seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
    let chunk_sigs = [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ];
    let auth = v4_auth(CHUNKED_SIGNED_HEADERS, seed);
    let headers = [
        ("Host", "s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("Authorization", auth.as_str()),
        ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        ("Content-Encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"),
        ("Content-Length", "66824"),
    ];
    let verified = verify(
        &input("PUT", "/examplebucket/chunkObject.txt", "", &headers),
        T2013,
        CREDS,
    )
    .unwrap();
    assert!(matches!(
        verified.payload,
        PayloadMode::StreamingSigned {
            decoded_content_length: 66_560,
            ..
        }
    ));
    let body = chunked_body(chunk_sigs, "\r\n");
    assert_eq!(body.len(), 66_824);
    for piece in [1, 7, 100, 4096, body.len()] {
        let mut decoder = ChunkedDecoder::for_payload(&verified.payload, None).unwrap();
        let payload = decode_all(&mut decoder, &body, piece).unwrap();
        assert_eq!(payload.len(), 66_560);
        assert!(payload.iter().all(|&b| b == b'a'));
    }

    let mut tampered = body.clone();
    tampered[1000] = b'b';
    let mut decoder = ChunkedDecoder::for_payload(&verified.payload, None).unwrap();
    let err = decode_all(&mut decoder, &tampered, 4096).unwrap_err();
    assert_eq!(err, AuthError::ChunkSignatureMismatch);
    assert_eq!(err.s3_error().code, S3ErrorCode::SignatureDoesNotMatch);

    let signed = signer().sign_headers(
        "PUT",
        "/examplebucket/chunkObject.txt",
        "",
        &[
            ("Host", "s3.amazonaws.com"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("Content-Encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "66560"),
            ("Content-Length", "66824"),
        ],
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        T2013,
    );
    assert!(signed.authorization.ends_with(seed));
    let mut chain = signed.chain;
    assert_eq!(
        chain.sign_chunk(&vec![b'a'; 65_536]),
        format!("10000;chunk-signature={}\r\n", chunk_sigs[0])
    );
    assert_eq!(
        chain.sign_chunk(&[b'a'; 1024]),
        format!("400;chunk-signature={}\r\n", chunk_sigs[1])
    );
    assert_eq!(
        chain.sign_chunk(&[]),
        format!("0;chunk-signature={}\r\n", chunk_sigs[2])
    );
}

/// `sigv4-streaming-trailers`, "Example: PUT Object": the head verifies with the documented
/// seed signature, then the three documented chunk signatures and the trailer signature over
/// `x-amz-checksum-crc32c:sOO8/Q==` verify, and CRC32C of the 66560 `a` bytes is that value.
#[test]
fn aws_doc_sigv4_streaming_trailers_put_object() {
    let seed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e";
    let chunk_sigs = [
        "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
        "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
        "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
    ];
    let trailer_sig = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435";
    let auth = v4_auth(
        "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;\
         x-amz-storage-class;x-amz-trailer",
        seed,
    );
    let headers = [
        ("Host", "s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("Authorization", auth.as_str()),
        (
            "x-amz-content-sha256",
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        ),
        ("Content-Encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"),
        ("x-amz-trailer", "x-amz-checksum-crc32c"),
    ];
    let payload = verify(
        &input("PUT", "/examplebucket/chunkObject.txt", "", &headers),
        T2013,
        CREDS,
    )
    .unwrap()
    .payload;
    let key = signing_key(SK, "20130524", "us-east-1", "s3");
    let mut seed_bytes = [0u8; 32];
    for (i, b) in seed_bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&seed[2 * i..2 * i + 2], 16).unwrap();
    }
    let chain = SignatureChain::new(
        key,
        "20130524T000000Z",
        "20130524/us-east-1/s3/aws4_request",
        seed_bytes,
    );
    assert_eq!(
        payload,
        PayloadMode::StreamingSignedTrailer {
            chain: chain.clone(),
            decoded_content_length: 66_560
        }
    );
    let tail =
        format!("x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:{trailer_sig}\r\n\r\n");
    let body = chunked_body(chunk_sigs, &tail);
    for piece in [1, 13, 65_536, body.len()] {
        let mut decoder =
            ChunkedDecoder::for_payload(&payload, Some(ChecksumAlgorithm::Crc32c)).unwrap();
        let data = decode_all(&mut decoder, &body, piece).unwrap();
        assert_eq!(data.len(), 66_560);
        let trailer = *decoder.trailer_checksum().unwrap();
        assert_eq!(trailer.to_base64(), "sOO8/Q==");
        let integrity = IntegrityHeaders::parse(&headers).unwrap();
        let mut body_verifier = BodyVerifier::new(&payload, &integrity, true).unwrap();
        body_verifier.update(&data);
        let digest = body_verifier.finish(Some(&trailer)).unwrap();
        assert_eq!(digest.checksum, Some(trailer));
    }
    assert_eq!(
        ChecksumHasher::digest(ChecksumAlgorithm::Crc32c, &vec![b'a'; 66_560]).to_base64(),
        "sOO8/Q=="
    );

    // The same chain signs the same stream.
    let mut signing = chain;
    assert_eq!(
        signing.sign_chunk(&vec![b'a'; 65_536]),
        format!("10000;chunk-signature={}\r\n", chunk_sigs[0])
    );
    assert_eq!(
        signing.sign_chunk(&[b'a'; 1024]),
        format!("400;chunk-signature={}\r\n", chunk_sigs[1])
    );
    assert_eq!(
        signing.sign_chunk(&[]),
        format!("0;chunk-signature={}\r\n", chunk_sigs[2])
    );
    assert_eq!(
        signing.sign_trailers(&[("x-amz-checksum-crc32c", "sOO8/Q==")]),
        tail
    );

    // A different checksum value breaks the trailer signature.
    let forged = tail.replace("sOO8/Q==", "AAAAAA==");
    let mut decoder =
        ChunkedDecoder::for_payload(&payload, Some(ChecksumAlgorithm::Crc32c)).unwrap();
    let err = decode_all(&mut decoder, &chunked_body(chunk_sigs, &forged), 4096).unwrap_err();
    assert_eq!(err, AuthError::TrailerSignatureMismatch);
}

fn v2_input<'a>(
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a [(&'a str, &'a str)],
    bucket: Option<&'a str>,
) -> AuthInput<'a> {
    AuthInput {
        method,
        raw_path: path,
        raw_query: query,
        headers,
        virtual_host_bucket: bucket,
    }
}

/// `RESTAuthentication` (`SigV2`), the Object GET, Object PUT, List, Fetch and Delete examples:
/// virtual-host and path style resources, sub-resources, and `x-amz-date` on the date line.
#[test]
fn aws_doc_sigv2_header_examples() {
    let at = |t: &str| tessera_http::sigv4::parse_http_date(t).unwrap();
    let get_auth = format!("AWS {AK}:bWq2s1WEIj+Ydj0vQ697zp+IXMU=");
    let get = [
        ("Host", "johnsmith.s3.amazonaws.com"),
        ("Date", "Tue, 27 Mar 2007 19:36:42 +0000"),
        ("Authorization", get_auth.as_str()),
    ];
    let ok = verify(
        &v2_input("GET", "/photos/puppy.jpg", "", &get, Some("johnsmith")),
        at("Tue, 27 Mar 2007 19:36:42 +0000"),
        CREDS,
    )
    .unwrap();
    assert_eq!(ok.form, AuthForm::HeaderV2);
    assert_eq!(ok.payload, PayloadMode::Unsigned);

    let put_auth = format!("AWS {AK}:MyyxeRY7whkBe+bq8fHCL/2kKUg=");
    let put = [
        ("Content-Type", "image/jpeg"),
        ("Content-Length", "94328"),
        ("Host", "johnsmith.s3.amazonaws.com"),
        ("Date", "Tue, 27 Mar 2007 21:15:45 +0000"),
        ("Authorization", put_auth.as_str()),
    ];
    verify(
        &v2_input("PUT", "/photos/puppy.jpg", "", &put, Some("johnsmith")),
        at("Tue, 27 Mar 2007 21:15:45 +0000"),
        CREDS,
    )
    .unwrap();

    let list_auth = format!("AWS {AK}:htDYFYduRNen8P9ZfE/s9SuKy0U=");
    let list = [
        ("User-Agent", "Mozilla/5.0"),
        ("Host", "johnsmith.s3.amazonaws.com"),
        ("Date", "Tue, 27 Mar 2007 19:42:41 +0000"),
        ("Authorization", list_auth.as_str()),
    ];
    verify(
        &v2_input(
            "GET",
            "/",
            "prefix=photos&max-keys=50&marker=puppy",
            &list,
            Some("johnsmith"),
        ),
        at("Tue, 27 Mar 2007 19:42:41 +0000"),
        CREDS,
    )
    .unwrap();

    let acl_auth = format!("AWS {AK}:c2WLPFtWHVgbEmeEG93a4cG37dM=");
    let acl = [
        ("Host", "johnsmith.s3.amazonaws.com"),
        ("Date", "Tue, 27 Mar 2007 19:44:46 +0000"),
        ("Authorization", acl_auth.as_str()),
    ];
    verify(
        &v2_input("GET", "/", "acl", &acl, Some("johnsmith")),
        at("Tue, 27 Mar 2007 19:44:46 +0000"),
        CREDS,
    )
    .unwrap();

    let del_auth = format!("AWS {AK}:lx3byBScXR6KzyMaifNkardMwNk=");
    let del = [
        ("Host", "s3.amazonaws.com"),
        ("Date", "Tue, 27 Mar 2007 21:20:27 +0000"),
        ("x-amz-date", "Tue, 27 Mar 2007 21:20:26 +0000"),
        ("Authorization", del_auth.as_str()),
    ];
    verify(
        &v2_input("DELETE", "/johnsmith/photos/puppy.jpg", "", &del, None),
        at("Tue, 27 Mar 2007 21:20:26 +0000"),
        CREDS,
    )
    .unwrap();

    // The GET signature does not cover another key.
    let err = verify(
        &v2_input("GET", "/photos/kitten.jpg", "", &get, Some("johnsmith")),
        at("Tue, 27 Mar 2007 19:36:42 +0000"),
        CREDS,
    );
    assert!(matches!(err, Err(AuthError::SignatureDoesNotMatch { .. })));
}

/// `RESTAuthentication` (`SigV2`), "Query String Request Authentication Alternative": valid
/// before `Expires`, "Request has expired" after it.
#[test]
fn aws_doc_sigv2_query_string_example() {
    let query = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D";
    let headers = [("Host", "johnsmith.s3.amazonaws.com")];
    let ok = verify(
        &v2_input(
            "GET",
            "/photos/puppy.jpg",
            query,
            &headers,
            Some("johnsmith"),
        ),
        1_175_139_000,
        CREDS,
    )
    .unwrap();
    assert_eq!(ok.form, AuthForm::QueryV2);
    let late = verify(
        &v2_input(
            "GET",
            "/photos/puppy.jpg",
            query,
            &headers,
            Some("johnsmith"),
        ),
        1_175_139_621,
        CREDS,
    );
    assert_eq!(late.unwrap_err(), AuthError::Expired);
}
