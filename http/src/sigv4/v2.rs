//! The `SigV2` string to sign, shared by header and query auth:
//!
//! ```text
//!  METHOD \n Content-MD5 \n Content-Type \n Date-or-Expires \n
//!  x-amz-a:v1,v2 \n x-amz-b:v \n          (lower-cased, sorted, values joined)
//!  /bucket/key?acl&versionId=...           (bucket from the path or virtual host;
//!                                           sub-resources only, sorted)
//! ```

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::canonical::{header, percent_decode, push_header_value, query_pairs};
use super::AuthInput;

/// Query parameters that are part of the `SigV2` canonical resource (sorted).
const SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "delete",
    "encryption",
    "inventory",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "retention",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// The `SigV2` string to sign; `date` is the Date header (header auth) or `Expires` (query).
///
/// `skip_amz_date` leaves `x-amz-date` out of the `x-amz-*` lines (for clients that put its
/// value on the date line instead).
pub(super) fn string_to_sign(input: &AuthInput<'_>, date: &str, skip_amz_date: bool) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(input.method);
    out.push('\n');
    out.push_str(header(input.headers, "content-md5").map_or("", str::trim));
    out.push('\n');
    out.push_str(header(input.headers, "content-type").map_or("", str::trim));
    out.push('\n');
    out.push_str(date);
    out.push('\n');

    let mut amz: Vec<(String, &str)> = input
        .headers
        .iter()
        .filter(|(n, _)| n.len() >= 6 && n.as_bytes()[..6].eq_ignore_ascii_case(b"x-amz-"))
        .filter(|(n, _)| !(skip_amz_date && n.eq_ignore_ascii_case("x-amz-date")))
        .map(|(n, v)| (n.to_ascii_lowercase(), *v))
        .collect();
    // A stable sort keeps repeated headers in the order received before joining them.
    amz.sort_by(|a, b| a.0.cmp(&b.0));
    let mut i = 0;
    while i < amz.len() {
        out.push_str(&amz[i].0);
        out.push(':');
        let mut j = i;
        while j < amz.len() && amz[j].0 == amz[i].0 {
            if j > i {
                out.push(',');
            }
            push_header_value(&mut out, amz[j].1);
            j += 1;
        }
        out.push('\n');
        i = j;
    }

    if let Some(bucket) = input.virtual_host_bucket {
        out.push('/');
        out.push_str(bucket);
    }
    out.push_str(if input.raw_path.is_empty() {
        "/"
    } else {
        input.raw_path
    });
    let mut subs: Vec<(&str, Option<String>)> = query_pairs(input.raw_query)
        .filter_map(|(name, value)| {
            let sub = SUBRESOURCES.iter().find(|s| **s == name)?;
            // `acl` and `acl=` both sign as `?acl`.
            let value = (!value.is_empty())
                .then(|| String::from_utf8_lossy(&percent_decode(value, true)).into_owned());
            Some((*sub, value))
        })
        .collect();
    subs.sort();
    for (i, (name, value)) in subs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(name);
        if let Some(v) = value {
            out.push('=');
            out.push_str(v);
        }
    }
    out
}

/// `base64(HMAC-SHA1(secret, string_to_sign))`'s raw 20 bytes.
pub(super) fn signature(secret: &str, string_to_sign: &str) -> [u8; 20] {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(string_to_sign.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Decodes a base64 `SigV2` signature into its 20 bytes.
pub(super) fn decode_signature(text: &str) -> Option<[u8; 20]> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    bytes.try_into().ok()
}
