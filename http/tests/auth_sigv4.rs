//! Verifier behaviour beyond the AWS examples: every error answer, clock skew and expiry,
//! S3's canonicalisation of hostile keys and queries, and sign → verify round trips.

use std::fmt::Write as _;

use proptest::prelude::*;
use tessera_http::sigv4::{verify, AuthError, AuthInput, PayloadMode, Signer, EMPTY_SHA256_HEX};
use tessera_http::S3ErrorCode;

const AK: &str = "AKIDTESSERA";
const SK: &str = "tessera/secret+key";
const CREDS: &[(&str, &str)] = &[(AK, SK)];
const NOW: i64 = 1_700_000_000;
const HOST: &str = "127.0.0.1:9000";

fn signer() -> Signer<'static> {
    Signer {
        access_key: AK,
        secret: SK,
        region: "us-east-1",
        service: "s3",
    }
}

/// Signs a request and returns its full header list as a client would send it.
fn signed_headers(
    method: &str,
    path: &str,
    query: &str,
    extra: &[(&'static str, &'static str)],
    payload: &str,
    at: i64,
) -> Vec<(String, String)> {
    let mut headers: Vec<(&str, &str)> = vec![("Host", HOST)];
    headers.extend_from_slice(extra);
    let signed = signer().sign_headers(method, path, query, &headers, payload, at);
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    out.push(("x-amz-date".into(), signed.amz_date));
    out.push(("x-amz-content-sha256".into(), signed.content_sha256));
    out.push(("Authorization".into(), signed.authorization));
    out
}

fn check(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    now: i64,
) -> Result<tessera_http::sigv4::Verified, AuthError> {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let input = AuthInput {
        method,
        raw_path: path,
        raw_query: query,
        headers: &pairs,
        virtual_host_bucket: None,
    };
    verify(&input, now, CREDS)
}

fn replace(headers: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            if n.eq_ignore_ascii_case(name) {
                (n.clone(), value.to_owned())
            } else {
                (n.clone(), v.clone())
            }
        })
        .collect()
}

/// A request with no auth at all is anonymous: `AccessDenied`.
#[test]
fn anonymous_is_access_denied() {
    let headers = vec![("Host".to_owned(), HOST.to_owned())];
    let err = check("GET", "/b/k", "", &headers, NOW).unwrap_err();
    assert_eq!(err, AuthError::Anonymous);
    assert_eq!(err.s3_error().code, S3ErrorCode::AccessDenied);
}

/// An unknown access key is `InvalidAccessKeyId`, a wrong secret `SignatureDoesNotMatch`
/// whose message carries the string to sign.
#[test]
fn unknown_key_and_wrong_secret() {
    let headers = signed_headers("GET", "/b/k", "", &[], EMPTY_SHA256_HEX, NOW);
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let input = AuthInput {
        method: "GET",
        raw_path: "/b/k",
        raw_query: "",
        headers: &pairs,
        virtual_host_bucket: None,
    };
    let other: &[(&str, &str)] = &[("SOMEONE", SK)];
    let err = verify(&input, NOW, other).unwrap_err();
    assert_eq!(err.s3_error().code, S3ErrorCode::InvalidAccessKeyId);
    let wrong: &[(&str, &str)] = &[(AK, "not the secret")];
    let err = verify(&input, NOW, wrong).unwrap_err();
    assert_eq!(err.s3_error().code, S3ErrorCode::SignatureDoesNotMatch);
    assert!(
        err.s3_error().message.contains("AWS4-HMAC-SHA256\n"),
        "{err}"
    );
}

/// The request time may differ from the server clock by 15 minutes, not one second more.
#[test]
fn clock_skew_limit_is_fifteen_minutes() {
    let headers = signed_headers("GET", "/b/k", "", &[], EMPTY_SHA256_HEX, NOW);
    check("GET", "/b/k", "", &headers, NOW + 900).unwrap();
    check("GET", "/b/k", "", &headers, NOW - 900).unwrap();
    for now in [NOW + 901, NOW - 901] {
        let err = check("GET", "/b/k", "", &headers, now).unwrap_err();
        assert_eq!(err.s3_error().code, S3ErrorCode::RequestTimeTooSkewed);
    }
}

/// Malformed Authorization headers are `AuthorizationHeaderMalformed`, one case per part.
#[test]
fn malformed_authorization_headers() {
    let headers = signed_headers("GET", "/b/k", "", &[], EMPTY_SHA256_HEX, NOW);
    let auth = headers
        .iter()
        .find(|(n, _)| n == "Authorization")
        .unwrap()
        .1
        .clone();
    let cases = [
        auth.replace("Credential=", "Credentials="),
        auth.replace("/s3/", "/ec2/"),
        auth.replace("/aws4_request", "/aws5_request"),
        auth.replace("SignedHeaders=host;", "SignedHeaders=HOST;"),
        auth.replace("SignedHeaders=host;", "SignedHeaders="),
        auth[..auth.len() - 1].to_owned(),
        auth.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
        auth.replace(&format!("/{}/", &headers[1].1[..8]), "/20000101/"),
    ];
    for bad in cases {
        let err = check(
            "GET",
            "/b/k",
            "",
            &replace(&headers, "Authorization", &bad),
            NOW,
        )
        .unwrap_err();
        assert_eq!(
            err.s3_error().code,
            S3ErrorCode::AuthorizationHeaderMalformed,
            "{bad}: {err}"
        );
    }
}

/// Header auth needs `x-amz-content-sha256`, and streaming needs the decoded length.
#[test]
fn missing_security_headers() {
    let headers = signed_headers("GET", "/b/k", "", &[], EMPTY_SHA256_HEX, NOW);
    let without: Vec<_> = headers
        .iter()
        .filter(|(n, _)| n != "x-amz-content-sha256")
        .cloned()
        .collect();
    let err = check("GET", "/b/k", "", &without, NOW).unwrap_err();
    assert_eq!(err.s3_error().code, S3ErrorCode::MissingSecurityHeader);

    let streaming = signed_headers(
        "PUT",
        "/b/k",
        "",
        &[],
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        NOW,
    );
    let err = check("PUT", "/b/k", "", &streaming, NOW).unwrap_err();
    assert_eq!(
        err,
        AuthError::MissingSecurityHeader("x-amz-decoded-content-length")
    );
}

/// An `x-amz-*` header the signature does not cover is refused (it would change semantics).
#[test]
fn unsigned_amz_header_is_refused() {
    let mut headers = signed_headers("PUT", "/b/k", "", &[], "UNSIGNED-PAYLOAD", NOW);
    headers.push(("X-Amz-Meta-Owner".into(), "mallory".into()));
    let err = check("PUT", "/b/k", "", &headers, NOW).unwrap_err();
    assert_eq!(err, AuthError::HeadersNotSigned);
    assert_eq!(err.s3_error().code, S3ErrorCode::AccessDenied);
}

/// A payload declaration and a test of the mode it must yield.
type Expectation = (&'static str, fn(&PayloadMode) -> bool);

/// Each payload declaration yields its mode; an unknown one is `InvalidArgument`.
#[test]
fn payload_modes() {
    let extra = [("x-amz-decoded-content-length", "5")];
    let cases: [Expectation; 5] = [
        (EMPTY_SHA256_HEX, |m| matches!(m, PayloadMode::Sha256(_))),
        ("UNSIGNED-PAYLOAD", |m| matches!(m, PayloadMode::Unsigned)),
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", |m| {
            matches!(
                m,
                PayloadMode::StreamingSigned {
                    decoded_content_length: 5,
                    ..
                }
            )
        }),
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", |m| {
            matches!(
                m,
                PayloadMode::StreamingSignedTrailer {
                    decoded_content_length: 5,
                    ..
                }
            )
        }),
        ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", |m| {
            matches!(
                m,
                PayloadMode::StreamingUnsignedTrailer {
                    decoded_content_length: 5
                }
            )
        }),
    ];
    for (declared, is_expected) in cases {
        let headers = signed_headers("PUT", "/b/k", "", &extra, declared, NOW);
        let verified = check("PUT", "/b/k", "", &headers, NOW).unwrap();
        assert!(
            is_expected(&verified.payload),
            "{declared}: {:?}",
            verified.payload
        );
    }
    let headers = signed_headers("PUT", "/b/k", "", &extra, "STREAMING-WHATEVER", NOW);
    let err = check("PUT", "/b/k", "", &headers, NOW).unwrap_err();
    assert_eq!(err.s3_error().code, S3ErrorCode::InvalidArgument);
}

/// The `Date` header stands in for a missing `x-amz-date`.
#[test]
fn date_header_instead_of_amz_date() {
    let date = "Tue, 14 Nov 2023 22:13:20 GMT"; // NOW
    let signed = signer().sign_headers(
        "GET",
        "/b/k",
        "",
        &[("host", HOST), ("date", date)],
        EMPTY_SHA256_HEX,
        NOW,
    );
    // Drop x-amz-date from the signed list by re-signing a request that has only `date`:
    // the verifier must derive the ISO date from `Date`.
    let auth = signed.authorization.replace(";x-amz-date", "");
    let headers = vec![
        ("Host".to_owned(), HOST.to_owned()),
        ("Date".to_owned(), date.to_owned()),
        (
            "x-amz-content-sha256".to_owned(),
            EMPTY_SHA256_HEX.to_owned(),
        ),
        ("Authorization".to_owned(), auth),
    ];
    // The signature was made over x-amz-date too, so it must not match now...
    let err = check("GET", "/b/k", "", &headers, NOW).unwrap_err();
    assert!(matches!(err, AuthError::SignatureDoesNotMatch { .. }));
    // ...but the string to sign the server built uses the Date header's time.
    let AuthError::SignatureDoesNotMatch { string_to_sign } = err else {
        unreachable!()
    };
    assert!(
        string_to_sign.starts_with("AWS4-HMAC-SHA256\n20231114T221320Z\n"),
        "{string_to_sign}"
    );
}

/// Header auth and query auth together are refused.
#[test]
fn two_auth_mechanisms_refused() {
    let headers = signed_headers("GET", "/b/k", "", &[], EMPTY_SHA256_HEX, NOW);
    let err = check(
        "GET",
        "/b/k",
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        &headers,
        NOW,
    )
    .unwrap_err();
    assert_eq!(err.s3_error().code, S3ErrorCode::InvalidArgument);
}

fn presigned_check(query: &str, now: i64) -> Result<tessera_http::sigv4::Verified, AuthError> {
    let headers = vec![("Host".to_owned(), HOST.to_owned())];
    check("GET", "/b/k", query, &headers, now)
}

/// Presigned URLs: lifetime bounds, required parameters, not-yet-valid and expired URLs.
#[test]
fn presigned_limits_and_expiry() {
    let query = signer().presign("GET", "/b/k", "", &[("host", HOST)], 3600, NOW);
    presigned_check(&query, NOW).unwrap();
    presigned_check(&query, NOW + 3600).unwrap();
    assert_eq!(
        presigned_check(&query, NOW + 3601).unwrap_err(),
        AuthError::Expired
    );
    let early = presigned_check(&query, NOW - 901).unwrap_err();
    assert_eq!(early.s3_error().code, S3ErrorCode::RequestTimeTooSkewed);

    let week = signer().presign("GET", "/b/k", "", &[("host", HOST)], 604_800, NOW);
    presigned_check(&week, NOW + 604_800).unwrap();
    for bad in [
        query.replace("X-Amz-Expires=3600", "X-Amz-Expires=604801"),
        query.replace("X-Amz-Expires=3600", "X-Amz-Expires=0"),
        query.replace("X-Amz-Expires=3600", "X-Amz-Expires=-5"),
        query.replace("X-Amz-Date=", "X-Amz-Dote="),
        query.replace(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Algorithm=AWS4-HMAC-SHA1",
        ),
        query.replace("%2Fs3%2F", "%2Fiam%2F"),
        query.replace("X-Amz-Signature=", "X-Amz-Signature=00"),
    ] {
        let err = presigned_check(&bad, NOW).unwrap_err();
        assert_eq!(
            err.s3_error().code,
            S3ErrorCode::AuthorizationQueryParametersError,
            "{bad}"
        );
    }
    let tampered = query.replace("X-Amz-Expires=3600", "X-Amz-Expires=7200");
    assert!(matches!(
        presigned_check(&tampered, NOW),
        Err(AuthError::SignatureDoesNotMatch { .. })
    ));
}

/// Query parameters other than auth ones are signed too, and their wire escaping is free:
/// `/` raw or `%2F`, space as `%20` or `+`, in any order.
#[test]
fn presigned_with_extra_query_parameters() {
    let query = signer().presign(
        "GET",
        "/b/",
        "list-type=2&prefix=a%20b%2Fc&delimiter=%2F",
        &[("host", HOST)],
        60,
        NOW,
    );
    let headers = vec![("Host".to_owned(), HOST.to_owned())];
    check("GET", "/b/", &query, &headers, NOW).unwrap();
    let respelled = query.replace("prefix=a%20b%2Fc&delimiter=%2F", "delimiter=/&prefix=a+b/c");
    check("GET", "/b/", &respelled, &headers, NOW).unwrap();
    let changed = query.replace("prefix=a%20b%2Fc", "prefix=a%20b%2Fd");
    assert!(check("GET", "/b/", &changed, &headers, NOW).is_err());
}

/// Header values are compared after trimming and collapsing whitespace runs, and repeated
/// headers are joined with `,` in order.
#[test]
fn header_whitespace_and_repeats() {
    let headers = signed_headers(
        "PUT",
        "/b/k",
        "",
        &[("x-amz-meta-a", "one  two"), ("x-amz-meta-a", "three")],
        "UNSIGNED-PAYLOAD",
        NOW,
    );
    let mut spaced = headers.clone();
    spaced[1].1 = "   one two \t".into();
    check("PUT", "/b/k", "", &spaced, NOW).unwrap();
    let mut swapped = headers.clone();
    swapped.swap(1, 2);
    assert!(check("PUT", "/b/k", "", &swapped, NOW).is_err());
}

/// Encodes a key the way SDKs put it on the wire (every byte but unreserved ones and `/`).
fn wire_encode(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Hostile keys (`+`, space, `%`, `=`, `~`, unicode, `//`, `.`, trailing `/`, control bytes)
/// verify whether the client escapes them fully or leaves safe characters raw, and S3 does
/// not normalise: `/b/a/../k` is not `/b/k`.
#[test]
fn hostile_keys_round_trip() {
    let long_key = "x".repeat(1024);
    let keys = [
        "a+b c",
        "100%=done",
        "~tilde~",
        "雪/だるま",
        "dir//double/./dot/",
        "ctrl\u{1}\u{7f}",
        "semi;colon,comma!'()*$&@:",
        long_key.as_str(),
    ];
    for key in keys {
        let path = format!("/bucket/{}", wire_encode(key));
        let headers = signed_headers("PUT", &path, "", &[], "UNSIGNED-PAYLOAD", NOW);
        check("PUT", &path, "", &headers, NOW).unwrap_or_else(|e| panic!("{key:?}: {e}"));
        // The same key with `~`, `!`, `$`, `'`, `(`, `)`, `*` sent raw or as escapes.
        let loose = path
            .replace("%24", "$")
            .replace("%21", "!")
            .replace('~', "%7E");
        check("PUT", &loose, "", &headers, NOW).unwrap_or_else(|e| panic!("{key:?}: {e}"));
    }
    let headers = signed_headers("GET", "/b/a/../k", "", &[], EMPTY_SHA256_HEX, NOW);
    check("GET", "/b/a/../k", "", &headers, NOW).unwrap();
    assert!(check("GET", "/b/k", "", &headers, NOW).is_err());
}

proptest! {
    /// Any key, signed as an SDK would send it, verifies; a different key does not.
    #[test]
    fn any_key_signs_and_verifies(key in "\\PC{1,40}", other in "[a-z]{1,8}") {
        let path = format!("/bucket/{}", wire_encode(&key));
        let headers = signed_headers("GET", &path, "", &[], EMPTY_SHA256_HEX, NOW);
        prop_assert!(check("GET", &path, "", &headers, NOW).is_ok());
        let elsewhere = format!("{path}{other}");
        prop_assert!(check("GET", &elsewhere, "", &headers, NOW).is_err());
    }
}

/// A `SigningKeyCache` verifies like the store it fronts, returns the derived key, still
/// verifies after `clear`, and a cache over a store without the key refuses it.
#[test]
fn signing_key_cache() {
    use std::collections::HashMap;
    use tessera_http::sigv4::{Credentials, SigningKeyCache};
    let mut store = HashMap::new();
    store.insert(AK.to_owned(), SK.to_owned());
    let cache = SigningKeyCache::new(store);
    let headers = signed_headers("GET", "/b/k", "", &[], EMPTY_SHA256_HEX, NOW);
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let input = AuthInput {
        method: "GET",
        raw_path: "/b/k",
        raw_query: "",
        headers: &pairs,
        virtual_host_bucket: None,
    };
    verify(&input, NOW, &cache).unwrap();
    verify(&input, NOW, &cache).unwrap();
    let direct = tessera_http::sigv4::signing_key(SK, "20231114", "us-east-1", "s3");
    assert_eq!(
        cache.signing_key(AK, "20231114", "us-east-1", "s3"),
        Some(direct)
    );
    assert_eq!(
        cache.signing_key("nobody", "20231114", "us-east-1", "s3"),
        None
    );

    let empty: HashMap<String, String> = HashMap::new();
    let revoked = SigningKeyCache::new(empty);
    assert_eq!(
        verify(&input, NOW, &revoked).unwrap_err(),
        AuthError::InvalidAccessKeyId
    );
    cache.clear();
    verify(&input, NOW, &cache).unwrap();
}

proptest! {
    /// Arbitrary Authorization values, queries, paths and clocks never make the verifier panic;
    /// they are refused (no credentials match them).
    #[test]
    fn verifier_never_panics(
        auth in "(AWS4-HMAC-SHA256 |AWS )?[ -~]{0,200}",
        query in "([A-Za-z-]{1,20}(=[ -~&&[^&]]{0,40})?&?){0,6}",
        path in "/[ -~]{0,60}",
        date in "[0-9TZ]{0,20}",
        now in any::<i64>(),
    ) {
        let headers = [("Host", HOST), ("x-amz-date", date.as_str()), ("Authorization", auth.as_str()), ("x-amz-content-sha256", "UNSIGNED-PAYLOAD")];
        let input = AuthInput { method: "GET", raw_path: &path, raw_query: &query, headers: &headers, virtual_host_bucket: Some("b") };
        prop_assert!(verify(&input, now, CREDS).is_err());
        let no_auth = [("Host", HOST)];
        let input = AuthInput { method: "GET", raw_path: &path, raw_query: &query, headers: &no_auth, virtual_host_bucket: None };
        let _ = verify(&input, now, CREDS);
    }
}
