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
    let to_sign = v2::string_to_sign(input, &expires, false, false);
    let matches = |text: &str| constant_time_eq(&v2::signature(secret, text), &signature);
    let accepted = matches(&to_sign)
        || (v2::is_bucket_root(input)
            && matches(&v2::string_to_sign(input, &expires, false, true)));
    if !accepted {
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

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    /// botocore presigns a path-style bucket URL (`/pbx?location`) over the resource
    /// `/pbx/?location`; that form verifies, and a signature over another bucket does not.
    #[test]
    fn bucket_root_signed_with_trailing_slash() {
        let secret = "secret-key-0001";
        let expires = "1795310431";
        let signed = v2::signature(secret, &format!("GET\n\n\n{expires}\n/pbx/?location"));
        let encoded = base64::engine::general_purpose::STANDARD.encode(signed);
        let encoded = encoded
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        let query = format!("location&AWSAccessKeyId=AK&Signature={encoded}&Expires={expires}");
        let credentials: &[(&str, &str)] = &[("AK", secret)];
        let mut input = AuthInput {
            method: "GET",
            raw_path: "/pbx",
            raw_query: &query,
            headers: &[],
            virtual_host_bucket: None,
        };
        assert!(verify(&input, 1_795_310_000, credentials).is_ok());
        input.raw_path = "/pby";
        assert!(matches!(
            verify(&input, 1_795_310_000, credentials),
            Err(AuthError::SignatureDoesNotMatch { .. })
        ));
    }
}
