//! `SigV4` in the Authorization header:
//! `AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,
//! SignedHeaders=host;x-amz-date, Signature=<64 hex>`.

use super::canonical::{
    self, canonical_query, canonical_request, canonical_uri, constant_time_eq, format_amz_date,
    header, parse_amz_date, parse_hex32, parse_http_date, string_to_sign, REQUEST_SKEW_MAX_S,
};
use super::{AuthError, AuthForm, AuthInput, Credentials, PayloadMode, SignatureChain, Verified};

/// The parts of a `SigV4` credential (`AK/date/region/service/aws4_request`).
pub(super) struct Credential<'a> {
    pub access_key: &'a str,
    pub date8: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

impl<'a> Credential<'a> {
    /// Parses `AK/YYYYMMDD/region/service/aws4_request`.
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut parts = text.split('/');
        let credential = Credential {
            access_key: parts.next().filter(|s| !s.is_empty())?,
            date8: parts
                .next()
                .filter(|s| s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()))?,
            region: parts.next().filter(|s| !s.is_empty())?,
            service: parts.next().filter(|s| !s.is_empty())?,
        };
        (parts.next() == Some("aws4_request") && parts.next().is_none()).then_some(credential)
    }

    /// `date/region/service/aws4_request`.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date8, self.region, self.service
        )
    }
}

/// Whether a `SignedHeaders` list is well formed: non-empty lower-case names separated by `;`.
pub(super) fn signed_headers_valid(list: &str) -> bool {
    !list.is_empty()
        && list.split(';').all(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase() && b != b':')
        })
}

/// Parses `x-amz-decoded-content-length`.
fn decoded_length(headers: &[(&str, &str)]) -> Result<u64, AuthError> {
    let value = header(headers, "x-amz-decoded-content-length").ok_or(
        AuthError::MissingSecurityHeader("x-amz-decoded-content-length"),
    )?;
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| AuthError::InvalidArgument("x-amz-decoded-content-length is not a number"))
}

/// What `x-amz-content-sha256` asks of the body. `chain` is built only for signed streaming.
pub(super) fn payload_mode(
    content_sha256: &str,
    headers: &[(&str, &str)],
    chain: impl FnOnce() -> SignatureChain,
) -> Result<PayloadMode, AuthError> {
    Ok(match content_sha256 {
        "UNSIGNED-PAYLOAD" => PayloadMode::Unsigned,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => PayloadMode::StreamingSigned {
            decoded_content_length: decoded_length(headers)?,
            chain: chain(),
        },
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => PayloadMode::StreamingSignedTrailer {
            decoded_content_length: decoded_length(headers)?,
            chain: chain(),
        },
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => PayloadMode::StreamingUnsignedTrailer {
            decoded_content_length: decoded_length(headers)?,
        },
        literal => PayloadMode::Sha256(parse_hex32(literal.as_bytes()).ok_or(
            AuthError::InvalidArgument(
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a STREAMING-* value we support, \
                 or a valid sha256 value.",
            ),
        )?),
    })
}

/// The request time of a `SigV4` header-auth request in ISO 8601 basic form and Unix seconds:
/// `x-amz-date`, or the `Date` header when there is none.
pub(super) fn request_time(headers: &[(&str, &str)]) -> Result<(String, i64), AuthError> {
    if let Some(value) = header(headers, "x-amz-date") {
        let value = value.trim();
        let unix_s = parse_amz_date(value).ok_or(AuthError::AuthorizationHeaderMalformed(
            "x-amz-date is not a valid date",
        ))?;
        return Ok((value.to_owned(), unix_s));
    }
    let value = header(headers, "date").ok_or(AuthError::MissingSecurityHeader("x-amz-date"))?;
    let unix_s = parse_http_date(value).ok_or(AuthError::AuthorizationHeaderMalformed(
        "Date is not a valid date",
    ))?;
    Ok((format_amz_date(unix_s), unix_s))
}

/// Verifies `SigV4` header auth; `rest` is the Authorization value after `AWS4-HMAC-SHA256`.
pub(super) fn verify<C: Credentials + ?Sized>(
    input: &AuthInput<'_>,
    rest: &str,
    now_unix_s: i64,
    credentials: &C,
) -> Result<Verified, AuthError> {
    if !rest.starts_with([' ', '\t']) {
        return Err(AuthError::AuthorizationHeaderMalformed(
            "Unsupported Authorization Type",
        ));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        } else if !part.is_empty() {
            return Err(AuthError::AuthorizationHeaderMalformed(
                "The authorization header is malformed; unknown component.",
            ));
        }
    }
    let credential =
        credential
            .and_then(Credential::parse)
            .ok_or(AuthError::AuthorizationHeaderMalformed(
                "The authorization header is malformed; the Credential is mal-formed; expecting \
             \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".",
            ))?;
    let signed_headers = signed_headers.filter(|s| signed_headers_valid(s)).ok_or(
        AuthError::AuthorizationHeaderMalformed(
            "The authorization header is malformed; SignedHeaders is missing or malformed.",
        ),
    )?;
    let signature = signature.and_then(|s| parse_hex32(s.as_bytes())).ok_or(
        AuthError::AuthorizationHeaderMalformed(
            "The authorization header is malformed; Signature is missing or malformed.",
        ),
    )?;
    if credential.service != "s3" {
        return Err(AuthError::AuthorizationHeaderMalformed(
            "The authorization header is malformed; incorrect service; expecting 's3'.",
        ));
    }
    if !signed_headers.split(';').any(|n| n == "host") {
        return Err(AuthError::AuthorizationHeaderMalformed(
            "The authorization header is malformed; the host header must be signed.",
        ));
    }
    let (amz_date, request_unix_s) = request_time(input.headers)?;
    if !amz_date.starts_with(credential.date8) {
        return Err(AuthError::AuthorizationHeaderMalformed(
            "The authorization header is malformed; the credential date does not match the \
             request date.",
        ));
    }
    let key = credentials
        .signing_key(
            credential.access_key,
            credential.date8,
            credential.region,
            credential.service,
        )
        .ok_or(AuthError::InvalidAccessKeyId)?;
    if request_unix_s.abs_diff(now_unix_s) > REQUEST_SKEW_MAX_S.unsigned_abs() {
        return Err(AuthError::RequestTimeTooSkewed);
    }
    let content_sha256 = header(input.headers, "x-amz-content-sha256")
        .ok_or(AuthError::MissingSecurityHeader("x-amz-content-sha256"))?
        .trim();
    // S3 refuses x-amz-* headers that the signature does not cover: they change semantics.
    for (name, _) in input.headers {
        let is_amz = name.len() >= 6 && name.as_bytes()[..6].eq_ignore_ascii_case(b"x-amz-");
        if is_amz
            && !signed_headers
                .split(';')
                .any(|n| n.eq_ignore_ascii_case(name))
        {
            return Err(AuthError::HeadersNotSigned);
        }
    }
    let canonical = canonical_request(
        input.method,
        &canonical_uri(input.raw_path),
        &canonical_query(input.raw_query, None),
        input.headers,
        signed_headers,
        content_sha256,
    );
    let scope = credential.scope();
    let to_sign = string_to_sign(&amz_date, &scope, &canonical);
    let expected = canonical::hmac_sha256(&key, to_sign.as_bytes());
    if !constant_time_eq(&expected, &signature) {
        return Err(AuthError::SignatureDoesNotMatch {
            string_to_sign: to_sign,
        });
    }
    let payload = payload_mode(content_sha256, input.headers, || {
        SignatureChain::new(key, &amz_date, &scope, expected)
    })?;
    Ok(Verified {
        access_key: credential.access_key.to_owned(),
        region: Some(credential.region.to_owned()),
        form: AuthForm::HeaderV4,
        payload,
    })
}
