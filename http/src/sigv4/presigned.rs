//! `SigV4` in the query string (presigned URLs): `X-Amz-Algorithm`, `X-Amz-Credential`,
//! `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Signature`.

use super::canonical::{
    self, canonical_query, canonical_request, canonical_uri, constant_time_eq, parse_amz_date,
    parse_hex32, query_param, string_to_sign, ALGORITHM_V4, REQUEST_SKEW_MAX_S,
};
use super::header::{signed_headers_valid, Credential};
use super::{AuthError, AuthForm, AuthInput, Credentials, PayloadMode, Verified};

/// The shortest lifetime of a presigned URL, in seconds (S3 refuses 0).
pub const PRESIGNED_EXPIRES_MIN_S: u32 = 1;
/// The longest lifetime of a presigned URL, in seconds: seven days, as S3 enforces.
pub const PRESIGNED_EXPIRES_MAX_S: u32 = 7 * 24 * 3600;

/// Verifies a presigned `SigV4` URL.
pub(super) fn verify<C: Credentials + ?Sized>(
    input: &AuthInput<'_>,
    now_unix_s: i64,
    credentials: &C,
) -> Result<Verified, AuthError> {
    use AuthError::AuthorizationQueryParametersError as Malformed;
    let q = |name: &str| query_param(input.raw_query, name);
    let algorithm = q("X-Amz-Algorithm").ok_or(Malformed(
        "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, \
         X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
    ))?;
    if algorithm != ALGORITHM_V4 {
        return Err(Malformed(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
        ));
    }
    let missing = "Query-string authentication version 4 requires the X-Amz-Algorithm, \
                   X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and \
                   X-Amz-Expires parameters.";
    let credential_text = q("X-Amz-Credential").ok_or(Malformed(missing))?;
    let amz_date = q("X-Amz-Date").ok_or(Malformed(missing))?;
    let expires = q("X-Amz-Expires").ok_or(Malformed(missing))?;
    let signed_headers = q("X-Amz-SignedHeaders").ok_or(Malformed(missing))?;
    let signature = q("X-Amz-Signature").ok_or(Malformed(missing))?;

    let credential = Credential::parse(&credential_text).ok_or(Malformed(
        "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting \
         \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".",
    ))?;
    if credential.service != "s3" {
        return Err(Malformed(
            "Error parsing the X-Amz-Credential parameter; incorrect service; expecting 's3'.",
        ));
    }
    let request_unix_s = parse_amz_date(&amz_date).ok_or(Malformed(
        "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
    ))?;
    if !amz_date.starts_with(credential.date8) {
        return Err(Malformed(
            "Error parsing the X-Amz-Credential parameter; the credential date does not match \
             X-Amz-Date.",
        ));
    }
    let expires_s: u32 = expires
        .parse()
        .map_err(|_| Malformed("X-Amz-Expires should be a number"))?;
    if expires_s < PRESIGNED_EXPIRES_MIN_S {
        return Err(Malformed("X-Amz-Expires must be non-negative"));
    }
    if expires_s > PRESIGNED_EXPIRES_MAX_S {
        return Err(Malformed(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        ));
    }
    if !signed_headers_valid(&signed_headers) {
        return Err(Malformed("X-Amz-SignedHeaders is malformed"));
    }
    let signature =
        parse_hex32(signature.as_bytes()).ok_or(Malformed("X-Amz-Signature is malformed"))?;
    let key = credentials
        .signing_key(
            credential.access_key,
            credential.date8,
            credential.region,
            credential.service,
        )
        .ok_or(AuthError::InvalidAccessKeyId)?;
    if request_unix_s.saturating_sub(now_unix_s) > REQUEST_SKEW_MAX_S {
        // Signed in the future beyond the allowed clock skew: not valid yet.
        return Err(AuthError::RequestTimeTooSkewed);
    }
    if now_unix_s > request_unix_s.saturating_add(i64::from(expires_s)) {
        return Err(AuthError::Expired);
    }
    // A presigned URL signs no body unless the signer put a hash in the query.
    let payload_hash = q("X-Amz-Content-Sha256").unwrap_or_else(|| "UNSIGNED-PAYLOAD".to_owned());
    let payload = match payload_hash.as_str() {
        "UNSIGNED-PAYLOAD" => PayloadMode::Unsigned,
        literal => PayloadMode::Sha256(parse_hex32(literal.as_bytes()).ok_or(
            AuthError::InvalidArgument("X-Amz-Content-Sha256 must be UNSIGNED-PAYLOAD or a sha256"),
        )?),
    };
    let canonical = canonical_request(
        input.method,
        &canonical_uri(input.raw_path),
        &canonical_query(input.raw_query, Some("X-Amz-Signature")),
        input.headers,
        &signed_headers,
        &payload_hash,
    );
    let to_sign = string_to_sign(&amz_date, &credential.scope(), &canonical);
    let expected = canonical::hmac_sha256(&key, to_sign.as_bytes());
    if !constant_time_eq(&expected, &signature) {
        return Err(AuthError::SignatureDoesNotMatch {
            string_to_sign: to_sign,
        });
    }
    Ok(Verified {
        access_key: credential.access_key.to_owned(),
        region: Some(credential.region.to_owned()),
        form: AuthForm::PresignedV4,
        payload,
    })
}
