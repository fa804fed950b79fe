//! Canonicalisation shared by the verifier and the signer: URI and query encoding, canonical
//! headers, the canonical request, the string to sign, key derivation and time formats.
//!
//! Verifier and signer call the same functions here, so the AWS documentation vectors (run
//! against both) guard against a bug that would otherwise cancel out between the two sides.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The `SigV4` algorithm name, as in the Authorization header and the string to sign.
pub const ALGORITHM_V4: &str = "AWS4-HMAC-SHA256";

/// SHA-256 of the empty string, in lower-case hex (the hash of an empty chunk or body).
pub const EMPTY_SHA256_HEX: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The largest difference between a request's time and the server's clock, in seconds.
/// S3 allows 15 minutes; a larger window widens the replay window of captured requests.
pub const REQUEST_SKEW_MAX_S: i64 = 15 * 60;

/// HMAC-SHA256 keyed state.
pub type HmacSha256 = Hmac<Sha256>;

/// `HMAC-SHA256(key, data)`.
#[must_use]
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The `SigV4` signing key: `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
/// "aws4_request")`.
#[must_use]
pub fn signing_key(secret: &str, date8: &str, region: &str, service: &str) -> [u8; 32] {
    let mut seed = Vec::with_capacity(4 + secret.len());
    seed.extend_from_slice(b"AWS4");
    seed.extend_from_slice(secret.as_bytes());
    let k_date = hmac_sha256(&seed, date8.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// Lower-case hex of a 32-byte digest, on the stack.
#[must_use]
pub fn hex32(bytes: &[u8; 32]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0x0f)];
    }
    out
}

/// Lower-case hex of a 32-byte digest as a `String`.
#[must_use]
pub fn hex32_string(bytes: &[u8; 32]) -> String {
    let digits = hex32(bytes);
    // Every byte written by `hex32` is an ASCII hex digit.
    String::from_utf8(digits.to_vec()).expect("hex digits are ASCII")
}

/// Parses exactly 64 hex digits (either case) into 32 bytes.
#[must_use]
pub fn parse_hex32(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
    }
    Some(out)
}

/// The value of one hex digit.
#[must_use]
pub fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Compares two byte strings in time independent of where they differ (signatures must not
/// leak how many leading bytes of a guess were right).
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `SigV4` leaves `byte` unencoded (RFC 3986 unreserved characters).
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Appends `byte` `SigV4`-encoded: unreserved bytes as is, every other byte as `%XX` upper-case.
fn push_encoded(out: &mut String, byte: u8, keep_slash: bool) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    if is_unreserved(byte) || (keep_slash && byte == b'/') {
        out.push(char::from(byte));
    } else {
        out.push('%');
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

/// Appends `bytes` `SigV4`-encoded (`/` encoded too unless `keep_slash`).
pub fn uri_encode_into(out: &mut String, bytes: &[u8], keep_slash: bool) {
    for &b in bytes {
        push_encoded(out, b, keep_slash);
    }
}

/// The byte that starts at `bytes[i]` once decoded, and how many wire bytes it used: `%XX`
/// is one escaped byte, `+` a space when `plus_as_space`, and a `%` not followed by two hex
/// digits stands for itself.
fn decode_at(bytes: &[u8], i: usize, plus_as_space: bool) -> (u8, usize) {
    let b = bytes[i];
    if b == b'%' && i + 2 < bytes.len() {
        if let (Some(h), Some(l)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
            return ((h << 4) | l, 3);
        }
    }
    if b == b'+' && plus_as_space {
        (b' ', 1)
    } else {
        (b, 1)
    }
}

/// Decodes the escapes of a wire string (see `decode_at`), then appends the result
/// `SigV4`-encoded.
///
/// This is how S3 canonicalises: whatever escaping the client chose on the wire (`$` raw or
/// `%24`, `~` raw or `%7E`), the canonical form is the single `SigV4` encoding of the decoded
/// bytes. There is no second encoding and no path normalisation (`//` and `.` stay).
pub fn recode_into(out: &mut String, raw: &str, keep_slash: bool, plus_as_space: bool) {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let (b, used) = decode_at(bytes, i, plus_as_space);
        push_encoded(out, b, keep_slash);
        i += used;
    }
}

/// Decodes the escapes of a wire string (see `decode_at`).
#[must_use]
pub fn percent_decode(raw: &str, plus_as_space: bool) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let (b, used) = decode_at(bytes, i, plus_as_space);
        out.push(b);
        i += used;
    }
    out
}

/// Whether the wire string `raw` decodes (query rules) to exactly `expected`, without
/// allocating.
fn decodes_to(raw: &str, expected: &str) -> bool {
    let (bytes, expected) = (raw.as_bytes(), expected.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < bytes.len() {
        let (b, used) = decode_at(bytes, i, true);
        if expected.get(j) != Some(&b) {
            return false;
        }
        i += used;
        j += 1;
    }
    j == expected.len()
}

/// The canonical URI of a wire path: decoded once and `SigV4`-encoded with `/` kept.
#[must_use]
pub fn canonical_uri(raw_path: &str) -> String {
    let mut out = String::with_capacity(raw_path.len() + 8);
    if raw_path.is_empty() {
        out.push('/');
    } else {
        recode_into(&mut out, raw_path, true, false);
    }
    out
}

/// Iterates `name[=value]` pairs of a wire query string, skipping empty pieces.
pub fn query_pairs(raw_query: &str) -> impl Iterator<Item = (&str, &str)> {
    raw_query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| match piece.split_once('=') {
            Some((name, value)) => (name, value),
            None => (piece, ""),
        })
}

/// Finds the value of query parameter `name` (compared after decoding) and decodes it.
#[must_use]
pub fn query_param(raw_query: &str, name: &str) -> Option<String> {
    query_pairs(raw_query).find_map(|(n, v)| {
        decodes_to(n, name).then(|| String::from_utf8_lossy(&percent_decode(v, true)).into_owned())
    })
}

/// The canonical query string: every pair decoded and `SigV4`-encoded (`/` encoded too), sorted
/// by encoded name then encoded value, joined with `&`; `exclude` (a decoded name, e.g.
/// `X-Amz-Signature`) is left out.
#[must_use]
pub fn canonical_query(raw_query: &str, exclude: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in query_pairs(raw_query) {
        let mut n = String::with_capacity(name.len());
        recode_into(&mut n, name, false, true);
        if let Some(skip) = exclude {
            let mut skip_encoded = String::with_capacity(skip.len());
            uri_encode_into(&mut skip_encoded, skip.as_bytes(), false);
            if n == skip_encoded {
                continue;
            }
        }
        let mut v = String::with_capacity(value.len());
        recode_into(&mut v, value, false, true);
        pairs.push((n, v));
    }
    pairs.sort_unstable();
    let mut out = String::with_capacity(raw_query.len() + 16);
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(n);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// The first value of header `name` (case-insensitive).
#[must_use]
pub fn header<'a>(headers: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// Appends `value` trimmed, with every inner run of spaces or tabs collapsed to one space.
pub fn push_header_value(out: &mut String, value: &str) {
    let mut pending_space = false;
    let mut started = false;
    for ch in value.chars() {
        if ch == ' ' || ch == '\t' {
            pending_space = started;
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(ch);
            started = true;
        }
    }
}

/// Appends the canonical headers block (`name:value\n` for every name of `signed_headers`,
/// all values of a repeated header joined with `,`).
pub fn push_canonical_headers(out: &mut String, headers: &[(&str, &str)], signed_headers: &str) {
    for name in signed_headers.split(';') {
        out.push_str(name);
        out.push(':');
        let mut first = true;
        for (_, value) in headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)) {
            if !first {
                out.push(',');
            }
            push_header_value(out, value);
            first = false;
        }
        out.push('\n');
    }
}

/// The canonical request of `SigV4`.
#[must_use]
pub fn canonical_request(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    headers: &[(&str, &str)],
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    let mut out = String::with_capacity(
        method.len()
            + canonical_uri.len()
            + canonical_query.len()
            + 64 * signed_headers.len() / 8
            + 256,
    );
    out.push_str(method);
    out.push('\n');
    out.push_str(canonical_uri);
    out.push('\n');
    out.push_str(canonical_query);
    out.push('\n');
    push_canonical_headers(&mut out, headers, signed_headers);
    out.push('\n');
    out.push_str(signed_headers);
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// The `SigV4` string to sign for a canonical request.
#[must_use]
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    let hash: [u8; 32] = Sha256::digest(canonical_request.as_bytes()).into();
    let mut out = String::with_capacity(ALGORITHM_V4.len() + amz_date.len() + scope.len() + 68);
    out.push_str(ALGORITHM_V4);
    out.push('\n');
    out.push_str(amz_date);
    out.push('\n');
    out.push_str(scope);
    out.push('\n');
    // Hex digits are ASCII.
    out.push_str(std::str::from_utf8(&hex32(&hash)).expect("hex digits are ASCII"));
    out
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's civil algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Parses the ISO 8601 basic format of `SigV4` (`20130524T000000Z`) into Unix seconds.
#[must_use]
pub fn parse_amz_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        b[range].iter().try_fold(0i64, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    };
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Formats Unix seconds in the ISO 8601 basic format of `SigV4` (`20130524T000000Z`).
#[must_use]
pub fn format_amz_date(unix_s: i64) -> String {
    let (year, month, day) = civil_from_days(unix_s.div_euclid(86_400));
    let secs = unix_s.rem_euclid(86_400);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Parses an HTTP date (`Date` header) into Unix seconds. Besides the three HTTP forms it
/// accepts the `+0000` zone some `SigV2` clients write instead of `GMT`.
#[must_use]
pub fn parse_http_date(text: &str) -> Option<i64> {
    let text = text.trim();
    let parsed = match text.strip_suffix("+0000") {
        Some(stem) => httpdate::parse_http_date(&format!("{stem}GMT")).ok()?,
        None => httpdate::parse_http_date(text).ok()?,
    };
    let secs = parsed.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire path is decoded once and re-encoded: raw `$` and `%24` give the same canonical
    /// form, `+`, space, `=`, `%` and unicode are escaped, `~` and `//` and `.` are kept.
    #[test]
    fn canonical_uri_recodes_once_without_normalising() {
        assert_eq!(canonical_uri("/test$file.text"), "/test%24file.text");
        assert_eq!(canonical_uri("/test%24file.text"), "/test%24file.text");
        assert_eq!(
            canonical_uri("/b/a+b%20c=d%25e~f"),
            "/b/a%2Bb%20c%3Dd%25e~f"
        );
        assert_eq!(canonical_uri("/b/%7Ex"), "/b/~x");
        assert_eq!(canonical_uri("/b//./k/"), "/b//./k/");
        assert_eq!(canonical_uri("/b/%E9%9B%AA"), "/b/%E9%9B%AA");
        assert_eq!(canonical_uri("/b/雪"), "/b/%E9%9B%AA");
        assert_eq!(canonical_uri("/b/100%"), "/b/100%25");
        assert_eq!(canonical_uri(""), "/");
    }

    /// Query pairs are recoded, sorted by name then value, valueless names get `=`, and the
    /// excluded parameter is dropped.
    #[test]
    fn canonical_query_sorts_and_recodes() {
        assert_eq!(
            canonical_query("prefix=J&max-keys=2", None),
            "max-keys=2&prefix=J"
        );
        assert_eq!(canonical_query("lifecycle", None), "lifecycle=");
        assert_eq!(canonical_query("a=2&a=1&b=x%2Fy", None), "a=1&a=2&b=x%2Fy");
        assert_eq!(canonical_query("p=a b/c", None), "p=a%20b%2Fc");
        assert_eq!(canonical_query("p=a+b", None), "p=a%20b");
        assert_eq!(
            canonical_query("X-Amz-Signature=abc&x=1", Some("X-Amz-Signature")),
            "x=1"
        );
    }

    /// Header values are trimmed and inner whitespace runs collapse to one space.
    #[test]
    fn header_values_trimmed_and_collapsed() {
        let mut out = String::new();
        push_header_value(&mut out, "  a   b \t c  ");
        assert_eq!(out, "a b c");
    }

    /// Dates round-trip between Unix seconds and both wire formats.
    #[test]
    fn dates_round_trip() {
        assert_eq!(parse_amz_date("20130524T000000Z"), Some(1_369_353_600));
        assert_eq!(format_amz_date(1_369_353_600), "20130524T000000Z");
        assert_eq!(format_amz_date(951_868_799), "20000229T235959Z");
        assert_eq!(parse_amz_date("20000229T235959Z"), Some(951_868_799));
        assert_eq!(parse_amz_date("2013-05-24T00:00:00Z"), None);
        assert_eq!(
            parse_http_date("Fri, 24 May 2013 00:00:00 GMT"),
            Some(1_369_353_600)
        );
        assert_eq!(
            parse_http_date("Fri, 24 May 2013 00:00:00 +0000"),
            Some(1_369_353_600)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }

    /// The signing key derivation matches the AWS General Reference example (secret
    /// `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`, 20120215, us-east-1, iam).
    #[test]
    fn aws_general_reference_signing_key() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex32_string(&key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }
}
