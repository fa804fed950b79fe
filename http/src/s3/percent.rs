//! Percent-decoding of request paths and query strings, and the `encoding-type=url` encoder.
//!
//! S3 treats the path and the query differently, and getting that wrong breaks keys with `+`:
//!
//! ```text
//!  path   /bkt/a+b%20c     ──decode_path──►  "a+b c"   (`+` is a literal plus)
//!  query  prefix=a+b%2Bc   ──decode_query──► "a b+c"   (`+` is a space, `%2B` a plus)
//! ```
//!
//! Both decoders borrow when there is nothing to decode, so the common request allocates nothing
//! here.

use std::borrow::Cow;

use crate::error::{S3Error, S3ErrorCode};

/// The `InvalidURI` error for a string that cannot be decoded (`why` says how).
fn invalid_uri(why: &str) -> S3Error {
    S3Error::new(
        S3ErrorCode::InvalidURI,
        format!("Couldn't parse the specified URI: {why}"),
    )
}

/// The value of one hexadecimal digit, or `None`.
fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Decodes `raw`, turning `%XX` into the byte `XX` and, when `plus_is_space`, `+` into a space.
fn decode(raw: &str, plus_is_space: bool) -> Result<Cow<'_, str>, S3Error> {
    let bytes = raw.as_bytes();
    let needs_work = bytes
        .iter()
        .any(|&b| b == b'%' || (plus_is_space && b == b'+'));
    if !needs_work {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(invalid_uri("bad percent-encoding"));
                };
                out.push((hi << 4) | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| invalid_uri("not UTF-8"))
}

/// Decodes a path segment: `%XX` escapes only; a literal `+` stays a plus.
pub fn decode_path(raw: &str) -> Result<Cow<'_, str>, S3Error> {
    decode(raw, false)
}

/// Decodes a query name or value: `%XX` escapes, and a literal `+` is a space (form encoding,
/// which S3 applies to query strings).
pub fn decode_query(raw: &str) -> Result<Cow<'_, str>, S3Error> {
    decode(raw, true)
}

/// Whether `byte` is written as itself by [`encode_url_into`] (RFC 3986 unreserved, plus `/`).
fn is_kept(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/')
}

/// Appends `text` to `out` encoded for an `encoding-type=url` listing response.
///
/// Every byte outside the unreserved set and `/` becomes `%XX` (uppercase). A space is written as
/// `%20`, not `+`: clients decode these fields with either a plain percent-decoder or a form
/// decoder, and `%20` is the one spelling both read as a space (Ceph's s3-tests expect it too).
pub fn encode_url_into(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in text.as_bytes() {
        if is_kept(byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xF)]));
        }
    }
}

/// Appends `text` percent-encoded as one path segment would be by an S3 client (everything but
/// the unreserved set; `/` kept). Used by tests and by the backend client to build URIs.
pub fn encode_path_into(out: &mut String, text: &str) {
    encode_url_into(out, text);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path keeps a literal plus; a query turns it into a space; `%2B` is a plus in both.
    #[test]
    fn plus_differs_between_path_and_query() {
        assert_eq!(decode_path("a+b%2Bc").as_deref(), Ok("a+b+c"));
        assert_eq!(decode_query("a+b%2Bc").as_deref(), Ok("a b+c"));
    }

    /// Strings without escapes are borrowed, not copied.
    #[test]
    fn plain_strings_borrow() {
        assert!(matches!(
            decode_path("plain/key.txt"),
            Ok(Cow::Borrowed("plain/key.txt"))
        ));
        assert!(matches!(decode_query("v"), Ok(Cow::Borrowed("v"))));
    }

    /// Truncated or non-hex escapes and invalid UTF-8 are reported, never panicking.
    #[test]
    fn bad_escapes_rejected() {
        for bad in ["%", "a%2", "a%G0", "%%41", "%FF", "%C3%28"] {
            let err = decode_path(bad).expect_err(bad);
            assert_eq!(err.code, S3ErrorCode::InvalidURI, "{bad}");
        }
        assert!(decode_path("a%2").is_err_and(|e| e.message.contains("percent-encoding")));
        assert!(decode_path("%FF").is_err_and(|e| e.message.contains("UTF-8")));
        assert_eq!(decode_path("%C3%A9").as_deref(), Ok("é"));
    }

    /// The listing encoder escapes space, plus, percent and UTF-8, and keeps `/` and `~`.
    #[test]
    fn url_encoding_matches_s3() {
        let mut out = String::new();
        encode_url_into(&mut out, "a b+c%d/é~=");
        assert_eq!(out, "a%20b%2Bc%25d/%C3%A9~%3D");
    }
}
