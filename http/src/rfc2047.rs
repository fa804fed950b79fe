//! RFC 2047 encoded words in user metadata values (`x-amz-meta-*`), handled as S3 documents
//! it: a value sent as encoded words is decoded before it is stored, and a stored value with
//! characters outside US-ASCII is returned as one `=?UTF-8?B?…?=` word, because an HTTP field
//! value is ASCII (RFC 9110 §5.5). ASCII values pass unchanged both ways.
//!
//! Decoding accepts the `B` (base64) and `Q` encodings in the charsets UTF-8, US-ASCII and
//! ISO-8859-1; whitespace between two adjacent encoded words is dropped (RFC 2047 §6.2). A word
//! that is malformed, in another charset, or does not decode to text is kept as written.

use std::borrow::Cow;

use base64::Engine as _;

/// `value` as a field value: unchanged when it is printable ASCII (tabs allowed), else one
/// UTF-8 `B` encoded word (also for control characters, which a decoded word may hold and a
/// field value may not).
#[must_use]
pub fn encode(value: &str) -> Cow<'_, str> {
    if value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return Cow::Borrowed(value);
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
    Cow::Owned(format!("=?UTF-8?B?{b64}?="))
}

/// `value` with its encoded words decoded (see the module docs).
#[must_use]
pub fn decode(value: &str) -> Cow<'_, str> {
    if !value.contains("=?") {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    // Whitespace seen since the last encoded word, held back in case another word follows.
    let mut pending_space: Option<&str> = None;
    let mut after_word = false;
    while !rest.is_empty() {
        if let Some(start) = rest.strip_prefix("=?") {
            if let Some((text, len)) = decode_word(start) {
                if let Some(space) = pending_space.take() {
                    if !after_word {
                        out.push_str(space);
                    }
                }
                out.push_str(&text);
                rest = &start[len..];
                after_word = true;
                continue;
            }
        }
        let space_len = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        if space_len > 0 {
            if let Some(space) = pending_space.take() {
                out.push_str(space);
            }
            pending_space = Some(&rest[..space_len]);
            rest = &rest[space_len..];
            continue;
        }
        if let Some(space) = pending_space.take() {
            out.push_str(space);
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
        after_word = false;
    }
    if let Some(space) = pending_space {
        out.push_str(space);
    }
    Cow::Owned(out)
}

/// Decodes one encoded word whose `=?` was already consumed: its text and the bytes of
/// `input` it took (through the closing `?=`).
fn decode_word(input: &str) -> Option<(String, usize)> {
    let (charset, rest) = input.split_once('?')?;
    let (encoding, rest) = rest.split_once('?')?;
    let end = rest.find("?=")?;
    let encoded = &rest[..end];
    if encoded.contains(char::is_whitespace) || charset.is_empty() {
        return None;
    }
    let bytes = match encoding {
        "B" | "b" => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?,
        "Q" | "q" => decode_q(encoded)?,
        _ => return None,
    };
    let taken = charset.len() + 1 + encoding.len() + 1 + end + 2;
    // RFC 2231 allows a language after `*`: `UTF-8*en`.
    let charset = charset.split('*').next().unwrap_or(charset);
    let text = if charset.eq_ignore_ascii_case("UTF-8") {
        String::from_utf8(bytes).ok()?
    } else if charset.eq_ignore_ascii_case("US-ASCII") {
        if !bytes.is_ascii() {
            return None;
        }
        String::from_utf8(bytes).ok()?
    } else if charset.eq_ignore_ascii_case("ISO-8859-1") {
        bytes.iter().map(|&b| char::from(b)).collect()
    } else {
        return None;
    };
    Some((text, taken))
}

/// The `Q` encoding: `_` is a space, `=XX` a byte in hex, other printable ASCII itself.
fn decode_q(encoded: &str) -> Option<Vec<u8>> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = encoded.get(i + 1..i + 3)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b if b.is_ascii_graphic() => out.push(b),
            _ => return None,
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_passes_unchanged() {
        for value in ["", "plain", "a=b?c", "=?not a word", "x =? y ?= z"] {
            assert!(matches!(encode(value), Cow::Borrowed(_)), "{value}");
            assert_eq!(decode(value), value);
        }
    }

    #[test]
    fn non_ascii_is_one_utf8_b_word_and_round_trips() {
        assert_eq!(encode("Miniö"), "=?UTF-8?B?TWluacO2?=");
        for value in ["Miniö", "中文 and ascii", "🙂", "ä_=?", "a\0b", "line\nend"] {
            assert_eq!(decode(&encode(value)), value);
        }
        // Control characters a decoded word may hold are encoded again on the way out.
        assert_eq!(decode("=?UTF-8?B?YQBi?="), "a\0b");
        assert_eq!(encode("a\0b"), "=?UTF-8?B?YQBi?=");
        assert_eq!(encode("tab\tok"), "tab\tok");
    }

    /// The examples of RFC 2047 §8 (display forms), and whitespace between words.
    #[test]
    fn rfc_2047_examples() {
        assert_eq!(decode("=?ISO-8859-1?Q?a?="), "a");
        assert_eq!(decode("=?ISO-8859-1?Q?a?= b"), "a b");
        assert_eq!(decode("=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?="), "ab");
        assert_eq!(decode("=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?="), "ab");
        assert_eq!(decode("=?ISO-8859-1?Q?a_b?="), "a b");
        // A charset this decoder does not know: that word is kept, with the space before it.
        assert_eq!(
            decode("=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?="),
            "a =?ISO-8859-2?Q?_b?="
        );
        assert_eq!(
            decode("=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?="),
            "Keld Jørn Simonsen"
        );
        assert_eq!(decode("=?US-ASCII?Q?Keith_Moore?="), "Keith Moore");
        assert_eq!(decode("=?utf-8?b?w7Y=?= tail"), "ö tail");
        assert_eq!(decode("head =?UTF-8*en?Q?=C3=B6?="), "head ö");
    }

    #[test]
    fn malformed_words_are_kept() {
        for value in [
            "=?UTF-8?B?not base64!?=",
            "=?UTF-8?X?abc?=",
            "=?UTF-8?Q?=ZZ?=",
            "=?UTF-8?Q?=+A?=",
            "=?UTF-8?B?/w==?=", // 0xFF: not UTF-8
            "=?KOI8-R?B?abc=?=",
            "=?UTF-8?B?abc",
        ] {
            assert_eq!(decode(value), value);
        }
    }
}
