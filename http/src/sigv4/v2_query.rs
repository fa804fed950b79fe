//! `SigV2` in the query string: `AWSAccessKeyId`, `Signature`, `Expires` (Unix seconds).

use super::canonical::{constant_time_eq, query_param};
use super::{v2, AuthError, AuthForm, AuthInput, Credentials, PayloadMode, Verified};

/// Verifies a `SigV2` presigned URL.
pub(super) fn verify<C: Credentials + ?Sized>(
    input: &AuthInput<'_>,
    now_unix_s: i64,
    credentials: &C,
) -> Result<Verified, AuthError> {
    use AuthError::AuthorizationQueryParametersError as Malformed;
    let missing = "Query-string authentication requires the Signature, Expires and \
                   AWSAccessKeyId parameters";
    let access_key = query_param(input.raw_query, "AWSAccessKeyId").ok_or(Malformed(missing))?;
    let signature = query_param(input.raw_query, "Signature").ok_or(Malformed(missing))?;
    let expires = query_param(input.raw_query, "Expires").ok_or(Malformed(missing))?;
    let expires_unix_s: i64 = expires
        .parse()
        .map_err(|_| Malformed("Expires must be a number of seconds"))?;
    let signature =
        v2::decode_signature(&signature).ok_or(Malformed("Signature is not base64 of 20 bytes"))?;
    let secret = credentials
        .secret(&access_key)
        .ok_or(AuthError::InvalidAccessKeyId)?;
    if now_unix_s > expires_unix_s {
        return Err(AuthError::Expired);
    }
    let to_sign = v2::string_to_sign(input, &expires, false);
    if !constant_time_eq(&v2::signature(secret, &to_sign), &signature) {
        return Err(AuthError::SignatureDoesNotMatch {
            string_to_sign: to_sign,
        });
    }
    Ok(Verified {
        access_key,
        region: None,
        form: AuthForm::QueryV2,
        payload: PayloadMode::Unsigned,
    })
}
