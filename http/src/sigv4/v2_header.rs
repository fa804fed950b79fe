//! `SigV2` in the Authorization header: `AWS <access key>:<base64 HMAC-SHA1>` (old clients,
//! s3cmd with `signature_v2 = True`).

use super::canonical::{constant_time_eq, header, parse_http_date, REQUEST_SKEW_MAX_S};
use super::{v2, AuthError, AuthForm, AuthInput, Credentials, PayloadMode, Verified};

/// Verifies `SigV2` header auth; `rest` is the Authorization value after `AWS `.
pub(super) fn verify<C: Credentials + ?Sized>(
    input: &AuthInput<'_>,
    rest: &str,
    now_unix_s: i64,
    credentials: &C,
) -> Result<Verified, AuthError> {
    let (access_key, signature) =
        rest.trim()
            .rsplit_once(':')
            .ok_or(AuthError::AuthorizationHeaderMalformed(
                "expecting \"AWS <AccessKeyId>:<Signature>\"",
            ))?;
    if access_key.is_empty() {
        return Err(AuthError::AuthorizationHeaderMalformed(
            "the access key id is empty",
        ));
    }
    let signature = v2::decode_signature(signature).ok_or(
        AuthError::AuthorizationHeaderMalformed("the signature is not base64 of 20 bytes"),
    )?;
    let amz_date = header(input.headers, "x-amz-date").map(str::trim);
    let date = header(input.headers, "date").map(str::trim);
    let date_value = amz_date
        .or(date)
        .ok_or(AuthError::MissingSecurityHeader("Date"))?;
    let request_unix_s = parse_http_date(date_value).ok_or(
        AuthError::AuthorizationHeaderMalformed("Date is not a valid HTTP date"),
    )?;
    let secret = credentials
        .secret(access_key)
        .ok_or(AuthError::InvalidAccessKeyId)?;
    if request_unix_s.abs_diff(now_unix_s) > REQUEST_SKEW_MAX_S.unsigned_abs() {
        return Err(AuthError::RequestTimeTooSkewed);
    }
    // Without x-amz-date the date line is the Date header. With it, clients differ: botocore
    // and most libraries leave the date line empty and sign x-amz-date among the x-amz-*
    // lines; the AWS documentation's DELETE example puts its value on the date line instead.
    // Both forms cover the date, so both are accepted.
    let to_sign = v2::string_to_sign(
        input,
        if amz_date.is_some() { "" } else { date_value },
        false,
        false,
    );
    let matches = |text: &str| constant_time_eq(&v2::signature(secret, text), &signature);
    let date_line = if amz_date.is_some() { "" } else { date_value };
    let accepted = matches(&to_sign)
        || (amz_date.is_some() && matches(&v2::string_to_sign(input, date_value, true, false)))
        || (v2::is_bucket_root(input)
            && matches(&v2::string_to_sign(input, date_line, false, true)));
    if !accepted {
        return Err(AuthError::SignatureDoesNotMatch {
            string_to_sign: to_sign,
        });
    }
    Ok(Verified {
        access_key: access_key.to_owned(),
        region: None,
        form: AuthForm::HeaderV2,
        payload: PayloadMode::Unsigned,
    })
}
