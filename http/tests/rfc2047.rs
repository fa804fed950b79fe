//! RFC 2047 words in metadata values on arbitrary input: decoding never panics, and every
//! value goes out as a printable-ASCII field value that decodes back to it.

use proptest::prelude::*;
use tessera_http::rfc2047::{decode, encode};

fn printable(field: &str) -> bool {
    field
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

proptest! {
    #[test]
    fn any_value_round_trips(value in "\\PC*|[=?QBqb_ A-Za-z0-9+/\u{e9}\u{1F642}\\x00\n]{0,40}") {
        let decoded = decode(&value);
        for v in [value.as_str(), decoded.as_ref()] {
            let field = encode(v);
            prop_assert!(printable(&field), "{field:?}");
            if field != v {
                let back = decode(&field);
                prop_assert_eq!(back.as_ref(), v);
            }
        }
    }

    #[test]
    fn words_around_text_decode_without_panicking(
        head in "[ a-z]{0,5}", charset in "(UTF-8|utf-8|ISO-8859-1|US-ASCII|X|)",
        kind in "[BbQqZ]", body in "[A-Za-z0-9+/=_\u{e9}?]{0,20}", tail in "[ a-z=?]{0,5}",
    ) {
        let value = format!("{head}=?{charset}?{kind}?{body}?={tail}");
        let _ = decode(&value);
    }
}
