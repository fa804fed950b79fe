//! Request document parsers: CreateBucketConfiguration, Delete, CompleteMultipartUpload.
//!
//! A small, strict XML reader builds a tree of elements (names without namespace prefix, text
//! with entities decoded), then each document reader walks it. The body is bounded by
//! [`XML_BODY_BYTES_MAX`], nesting by [`XML_DEPTH_MAX`] and the element count by
//! [`XML_ELEMENTS_MAX`], so the tree is bounded too. DOCTYPE
//! declarations are refused (no entity expansion). Any malformed input is `MalformedXML`.
//!
//! Not done, by choice: end-of-line normalisation (a literal CR stays a CR; clients escape CR in
//! keys as `&#13;`) and namespace checking (SDKs send the S3 namespace or none).

use crate::error::{S3Error, S3ErrorCode};
use crate::s3::router::PART_NUMBER_MAX;
use crate::xml::write::Checksums;
use crate::xml::{DELETE_OBJECTS_MAX, XML_BODY_BYTES_MAX, XML_DEPTH_MAX, XML_ELEMENTS_MAX};

fn malformed(why: &str) -> S3Error {
    S3Error::new(
        S3ErrorCode::MalformedXML,
        format!(
            "The XML you provided was not well-formed or did not validate against our published \
             schema ({why})"
        ),
    )
}

/// One element: local name, decoded text (all character data directly inside it), children.
#[derive(Debug, Default)]
struct Element<'a> {
    name: &'a str,
    text: String,
    children: Vec<Element<'a>>,
}

impl<'a> Element<'a> {
    fn child(&self, name: &str) -> Option<&Element<'a>> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// Reads the whole document into its root element.
fn parse_document(body: &[u8]) -> Result<Element<'_>, S3Error> {
    if body.len() > XML_BODY_BYTES_MAX {
        return Err(S3Error::new(
            S3ErrorCode::EntityTooLarge,
            format!("XML body larger than {XML_BODY_BYTES_MAX} bytes"),
        ));
    }
    let text = std::str::from_utf8(body).map_err(|_| malformed("not UTF-8"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Reader { text, pos: 0 }.document()
}

/// A cursor over the document text.
struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    /// Skips past the next `end` (exclusive of nothing: `pos` lands after `end`).
    fn skip_past(&mut self, end: &str) -> Result<(), S3Error> {
        let at = self
            .rest()
            .find(end)
            .ok_or_else(|| malformed("unterminated markup"))?;
        self.pos += at + end.len();
        Ok(())
    }

    fn skip_whitespace(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches(is_xml_space).len();
    }

    /// A name: everything up to whitespace, `/`, `>`, `=`; must not be empty.
    fn name(&mut self) -> Result<&'a str, S3Error> {
        let rest = self.rest();
        let len = rest
            .find(|c: char| is_xml_space(c) || matches!(c, '/' | '>' | '=' | '<'))
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(malformed("missing name"));
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    fn document(mut self) -> Result<Element<'a>, S3Error> {
        let mut stack: Vec<Element<'a>> = Vec::new();
        let mut root: Option<Element<'a>> = None;
        let mut elements = 0usize;
        while self.pos < self.text.len() {
            let rest = self.rest();
            if !rest.starts_with('<') {
                let len = rest.find('<').unwrap_or(rest.len());
                let raw = &rest[..len];
                self.pos += len;
                match stack.last_mut() {
                    Some(open) => decode_text_into(&mut open.text, raw)?,
                    None if raw.chars().all(is_xml_space) => {}
                    None => return Err(malformed("text outside the root element")),
                }
            } else if rest.starts_with("<?") {
                self.skip_past("?>")?;
            } else if rest.starts_with("<!--") {
                self.pos += 4;
                self.skip_past("-->")?;
            } else if let Some(cdata) = rest.strip_prefix("<![CDATA[") {
                let end = cdata
                    .find("]]>")
                    .ok_or_else(|| malformed("unterminated CDATA"))?;
                let open = stack
                    .last_mut()
                    .ok_or_else(|| malformed("CDATA outside root"))?;
                open.text.push_str(&cdata[..end]);
                self.pos += "<![CDATA[".len() + end + "]]>".len();
            } else if rest.starts_with("<!") {
                return Err(malformed("DOCTYPE and declarations are not allowed"));
            } else if rest.starts_with("</") {
                self.pos += 2;
                let name = self.name()?;
                self.skip_whitespace();
                if !self.rest().starts_with('>') {
                    return Err(malformed("bad end tag"));
                }
                self.pos += 1;
                let element = stack
                    .pop()
                    .ok_or_else(|| malformed("end tag without start"))?;
                if local_name(name) != element.name {
                    return Err(malformed("mismatched end tag"));
                }
                attach(&mut stack, &mut root, element)?;
            } else {
                self.pos += 1;
                let name = self.name()?;
                let self_closing = self.attributes()?;
                elements += 1;
                if elements > XML_ELEMENTS_MAX {
                    return Err(malformed("too many elements"));
                }
                let element = Element {
                    name: local_name(name),
                    ..Element::default()
                };
                if self_closing {
                    attach(&mut stack, &mut root, element)?;
                } else {
                    if stack.len() >= XML_DEPTH_MAX {
                        return Err(malformed("nesting too deep"));
                    }
                    stack.push(element);
                }
            }
        }
        if !stack.is_empty() {
            return Err(malformed("unclosed element"));
        }
        root.ok_or_else(|| malformed("no root element"))
    }

    /// Skips the attributes of a start tag (checking their syntax); returns whether the tag is
    /// self-closing. `pos` ends after the closing `>`.
    fn attributes(&mut self) -> Result<bool, S3Error> {
        loop {
            self.skip_whitespace();
            let rest = self.rest();
            if rest.starts_with("/>") {
                self.pos += 2;
                return Ok(true);
            }
            if rest.starts_with('>') {
                self.pos += 1;
                return Ok(false);
            }
            self.name()?;
            self.skip_whitespace();
            if !self.rest().starts_with('=') {
                return Err(malformed("attribute without value"));
            }
            self.pos += 1;
            self.skip_whitespace();
            let rest = self.rest();
            let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'');
            let quote = quote.ok_or_else(|| malformed("unquoted attribute value"))?;
            let end = rest[1..]
                .find(quote)
                .ok_or_else(|| malformed("unterminated attribute"))?;
            if rest[1..=end].contains('<') {
                return Err(malformed("'<' in attribute value"));
            }
            self.pos += end + 2;
        }
    }
}

/// Hangs a finished element under its parent, or makes it the root (only one root).
fn attach<'a>(
    stack: &mut [Element<'a>],
    root: &mut Option<Element<'a>>,
    element: Element<'a>,
) -> Result<(), S3Error> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_none() => *root = Some(element),
        None => return Err(malformed("more than one root element")),
    }
    Ok(())
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// `s3:Delete` → `Delete`.
fn local_name(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, local)| local)
}

/// Appends character data with the five predefined entities and numeric references decoded.
fn decode_text_into(out: &mut String, raw: &str) -> Result<(), S3Error> {
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after
            .find(';')
            .ok_or_else(|| malformed("unterminated entity"))?;
        let entity = &after[..semi];
        let ch = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    None
                };
                // `from_str_radix` accepts a leading '+'; XML does not.
                let digits_only = !entity.contains('+');
                // `&#0;` is outside XML 1.0, but `escape_xml_into` writes it for a NUL in a key,
                // so it is read back for symmetry.
                code.filter(|_| digits_only)
                    .and_then(char::from_u32)
                    .ok_or_else(|| malformed("unknown entity"))?
            }
        };
        out.push(ch);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(())
}

fn expect_root<'e, 'a>(root: &'e Element<'a>, name: &str) -> Result<&'e Element<'a>, S3Error> {
    if root.name == name {
        Ok(root)
    } else {
        Err(malformed(&format!("expected root element {name}")))
    }
}

fn parse_bool(text: &str) -> Result<bool, S3Error> {
    match text.trim() {
        t if t.eq_ignore_ascii_case("true") => Ok(true),
        t if t.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(malformed("expected true or false")),
    }
}

/// The body of CreateBucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateBucketConfiguration {
    /// The requested region, if any (the gateway accepts its own region or none).
    pub location_constraint: Option<String>,
}

/// Parses a CreateBucket body; an empty body means no configuration.
pub fn parse_create_bucket_configuration(
    body: &[u8],
) -> Result<CreateBucketConfiguration, S3Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(CreateBucketConfiguration::default());
    }
    let root = parse_document(body)?;
    let root = expect_root(&root, "CreateBucketConfiguration")?;
    let location_constraint = root
        .child("LocationConstraint")
        .map(|e| e.text.trim().to_owned())
        .filter(|l| !l.is_empty());
    Ok(CreateBucketConfiguration {
        location_constraint,
    })
}

/// One object named in a Delete document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectIdentifier {
    /// The key, exactly as sent (not trimmed: keys may start or end with spaces).
    pub key: String,
    /// The version id, if any.
    pub version_id: Option<String>,
    /// `ETag`: delete only if the object's current ETag is this one (a conditional delete).
    pub etag: Option<String>,
}

/// The body of DeleteObjects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteRequest {
    /// 1..=[`DELETE_OBJECTS_MAX`] objects, in request order.
    pub objects: Vec<ObjectIdentifier>,
    /// `<Quiet>true</Quiet>`: answer only errors.
    pub quiet: bool,
}

/// Parses a DeleteObjects body.
pub fn parse_delete(body: &[u8]) -> Result<DeleteRequest, S3Error> {
    let root = parse_document(body)?;
    let root = expect_root(&root, "Delete")?;
    let mut objects = Vec::new();
    let mut quiet = false;
    for child in &root.children {
        match child.name {
            "Object" => {
                if objects.len() == DELETE_OBJECTS_MAX {
                    return Err(malformed("more than 1000 objects"));
                }
                let key = child
                    .child("Key")
                    .ok_or_else(|| malformed("Object without Key"))?;
                if key.text.is_empty() {
                    return Err(malformed("empty Key"));
                }
                let version_id = child
                    .child("VersionId")
                    .map(|v| v.text.trim().to_owned())
                    .filter(|v| !v.is_empty());
                let etag = child
                    .child("ETag")
                    .map(|v| v.text.trim().to_owned())
                    .filter(|v| !v.is_empty());
                objects.push(ObjectIdentifier {
                    key: key.text.clone(),
                    version_id,
                    etag,
                });
            }
            "Quiet" => quiet = parse_bool(&child.text)?,
            _ => {}
        }
    }
    if objects.is_empty() {
        return Err(malformed("no Object"));
    }
    debug_assert!(objects.len() <= DELETE_OBJECTS_MAX);
    Ok(DeleteRequest { objects, quiet })
}

/// One part named in a CompleteMultipartUpload document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedPart {
    /// 1..=10 000.
    pub part_number: u16,
    /// The ETag without surrounding quotes.
    pub etag: String,
    /// Checksums the client computed for the part, base64, if sent.
    pub checksums: Checksums,
}

/// The body of CompleteMultipartUpload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompleteMultipartUpload {
    /// At least one part, part numbers strictly ascending.
    pub parts: Vec<CompletedPart>,
}

/// Parses a CompleteMultipartUpload body. Parts out of order (or repeated) are
/// `InvalidPartOrder`; a part number outside 1..=10 000 is `InvalidArgument`.
pub fn parse_complete_multipart_upload(body: &[u8]) -> Result<CompleteMultipartUpload, S3Error> {
    let root = parse_document(body)?;
    let root = expect_root(&root, "CompleteMultipartUpload")?;
    let mut parts: Vec<CompletedPart> = Vec::new();
    for child in root.children.iter().filter(|c| c.name == "Part") {
        if parts.len() == usize::from(PART_NUMBER_MAX) {
            return Err(malformed("more than 10000 parts"));
        }
        let number = child
            .child("PartNumber")
            .ok_or_else(|| malformed("Part without PartNumber"))?;
        let number = number.text.trim();
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("PartNumber is not a number"));
        }
        let part_number = number
            .parse::<u16>()
            .ok()
            .filter(|n| (1..=PART_NUMBER_MAX).contains(n))
            .ok_or_else(|| {
                S3Error::new(
                    S3ErrorCode::InvalidArgument,
                    "Part number must be an integer between 1 and 10000, inclusive",
                )
            })?;
        if parts
            .last()
            .is_some_and(|last| last.part_number >= part_number)
        {
            return Err(S3Error::new(
                S3ErrorCode::InvalidPartOrder,
                "The list of parts was not in ascending order. The parts list must be specified \
                 in order by part number.",
            ));
        }
        let etag = child
            .child("ETag")
            .ok_or_else(|| malformed("Part without ETag"))?;
        let etag = etag.text.trim().trim_matches('"').to_owned();
        if etag.is_empty() {
            return Err(malformed("empty ETag"));
        }
        let text = |name: &str| {
            child
                .child(name)
                .map(|e| e.text.trim().to_owned())
                .filter(|t| !t.is_empty())
        };
        let checksums = Checksums {
            crc32: text("ChecksumCRC32"),
            crc32c: text("ChecksumCRC32C"),
            crc64nvme: text("ChecksumCRC64NVME"),
            sha1: text("ChecksumSHA1"),
            sha256: text("ChecksumSHA256"),
        };
        parts.push(CompletedPart {
            part_number,
            etag,
            checksums,
        });
    }
    if parts.is_empty() {
        return Err(malformed("no Part"));
    }
    Ok(CompleteMultipartUpload { parts })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(result: Result<impl std::fmt::Debug, S3Error>) -> S3ErrorCode {
        result.expect_err("expected an error").code
    }

    /// The reader decodes entities, CDATA and numeric references, strips prefixes, skips
    /// comments and the declaration, and keeps whitespace inside text.
    #[test]
    fn reader_basics() {
        let doc = br#"<?xml version="1.0"?><!-- c --><s3:A xmlns:s3="x" b='1'><B> a&amp;b&#x41;&#66;<![CDATA[<&>]]> </B><C/></s3:A>"#;
        let root = parse_document(doc).expect("well-formed");
        assert_eq!(root.name, "A");
        assert_eq!(root.children.len(), 2);
        assert_eq!(root.children[0].text, " a&bAB<&> ");
        assert_eq!(root.children[1].name, "C");
    }

    /// Each kind of malformed document is refused with MalformedXML.
    #[test]
    fn reader_rejects_malformed() {
        let too_many = format!("<a>{}</a>", "<b/>".repeat(XML_ELEMENTS_MAX));
        let too_deep = "<a>".repeat(XML_DEPTH_MAX + 1) + &"</a>".repeat(XML_DEPTH_MAX + 1);
        for bad in [
            "",
            "text",
            "<a>",
            "<a></b>",
            "</a>",
            "<a></a><b></b>",
            "<a>&unknown;</a>",
            "<a>&#xD800;</a>",
            "<a>&#;</a>",
            "<a>&#x110000;</a>",
            "<a>&#+5;</a>",
            "<a>&amp</a>",
            "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            "<a b></a>",
            "<a b=c></a>",
            "<a b=\"<\"></a>",
            "<a><!-- unterminated </a>",
            "<a><![CDATA[ x </a>",
            "<>",
            "<a>x</a>trailing",
            too_deep.as_str(),
            too_many.as_str(),
        ] {
            assert_eq!(
                code(parse_document(bad.as_bytes())),
                S3ErrorCode::MalformedXML,
                "{bad}"
            );
        }
        assert_eq!(
            code(parse_document(b"<a>\xff</a>")),
            S3ErrorCode::MalformedXML
        );
    }

    /// Every response writer produces a well-formed document, read back by this reader, even
    /// with hostile text in every field (markup characters, control bytes, quotes).
    #[test]
    fn writers_produce_well_formed_xml() {
        use crate::xml::write::*;
        use crate::xml::Timestamp;
        let nasty = "<a&b>\"'\u{1}\u{0}\r\n]]>&amp;é";
        let owner = Owner {
            id: nasty.into(),
            display_name: nasty.into(),
        };
        let checksums = Checksums {
            crc32: Some(nasty.into()),
            ..Checksums::default()
        };
        let t = Timestamp::from_unix_ms(0);
        let objects = [ObjectInfo {
            key: nasty.into(),
            last_modified: t,
            etag: nasty.into(),
            size: 1,
            owner: Some(owner.clone()),
            checksum_algorithm: Some("CRC32"),
        }];
        let prefixes = [nasty.to_owned()];
        let parts = [PartInfo {
            part_number: 1,
            last_modified: t,
            etag: nasty.into(),
            size: 1,
            checksums: checksums.clone(),
        }];
        let uploads = [UploadInfo {
            key: nasty.into(),
            upload_id: nasty.into(),
            initiated: t,
            owner: owner.clone(),
        }];
        let deleted = [DeletedObject {
            key: nasty.into(),
            version_id: Some(nasty.into()),
        }];
        let errors = [DeleteError {
            key: nasty.into(),
            version_id: None,
            code: S3ErrorCode::InternalError,
            message: nasty.into(),
        }];
        let buckets = [BucketInfo {
            name: nasty.into(),
            creation_date: t,
        }];
        let mut docs: Vec<(&str, String)> = vec![
            (
                "ListAllMyBucketsResult",
                ListAllMyBucketsResult {
                    owner: &owner,
                    buckets: &buckets,
                    continuation_token: Some(nasty),
                    prefix: Some(nasty),
                }
                .to_xml(),
            ),
            (
                "LocationConstraint",
                LocationConstraint { region: nasty }.to_xml(),
            ),
            ("VersioningConfiguration", VersioningConfiguration.to_xml()),
            (
                "AccessControlPolicy",
                AccessControlPolicy { owner: &owner }.to_xml(),
            ),
            (
                "InitiateMultipartUploadResult",
                InitiateMultipartUploadResult {
                    bucket: nasty,
                    key: nasty,
                    upload_id: nasty,
                }
                .to_xml(),
            ),
            (
                "CompleteMultipartUploadResult",
                CompleteMultipartUploadResult {
                    location: nasty,
                    bucket: nasty,
                    key: nasty,
                    etag: nasty,
                    checksums: &checksums,
                    checksum_type: Some(nasty),
                }
                .to_xml(),
            ),
            (
                "CopyObjectResult",
                CopyObjectResult {
                    etag: nasty,
                    last_modified: t,
                    checksums: &checksums,
                }
                .to_xml(),
            ),
            (
                "CopyPartResult",
                CopyPartResult {
                    etag: nasty,
                    last_modified: t,
                    checksums: &checksums,
                }
                .to_xml(),
            ),
            (
                "DeleteResult",
                DeleteResult {
                    quiet: false,
                    deleted: &deleted,
                    errors: &errors,
                }
                .to_xml(),
            ),
            (
                "ListPartsResult",
                ListPartsResult {
                    bucket: nasty,
                    key: nasty,
                    upload_id: nasty,
                    owner: &owner,
                    part_number_marker: 0,
                    next_part_number_marker: 1,
                    max_parts: 1,
                    is_truncated: false,
                    checksum_algorithm: Some(nasty),
                    checksum_type: Some(nasty),
                    parts: &parts,
                }
                .to_xml(),
            ),
        ];
        for url in [false, true] {
            docs.push((
                "ListBucketResult",
                ListObjectsResult {
                    bucket: nasty,
                    prefix: nasty,
                    marker: nasty,
                    delimiter: Some(nasty),
                    max_keys: 1,
                    encoding_url: url,
                    is_truncated: true,
                    next_marker: Some(nasty),
                    contents: &objects,
                    common_prefixes: &prefixes,
                }
                .to_xml(),
            ));
            docs.push((
                "ListBucketResult",
                ListObjectsV2Result {
                    bucket: nasty,
                    prefix: nasty,
                    delimiter: Some(nasty),
                    max_keys: 1,
                    encoding_url: url,
                    continuation_token: Some(nasty),
                    start_after: Some(nasty),
                    fetch_owner: true,
                    is_truncated: true,
                    next_continuation_token: Some(nasty),
                    contents: &objects,
                    common_prefixes: &prefixes,
                }
                .to_xml(),
            ));
            docs.push((
                "ListMultipartUploadsResult",
                ListMultipartUploadsResult {
                    bucket: nasty,
                    key_marker: nasty,
                    upload_id_marker: nasty,
                    next_key_marker: Some(nasty),
                    next_upload_id_marker: Some(nasty),
                    prefix: nasty,
                    delimiter: Some(nasty),
                    max_uploads: 1,
                    encoding_url: url,
                    is_truncated: false,
                    uploads: &uploads,
                    common_prefixes: &prefixes,
                }
                .to_xml(),
            ));
        }
        for (root, xml) in docs {
            let parsed =
                parse_document(xml.as_bytes()).unwrap_or_else(|e| panic!("{root}: {e} in {xml}"));
            assert_eq!(parsed.name, root);
        }
    }
}
