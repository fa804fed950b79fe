//! The verified request body: HTTP framing, then aws-chunked decoding (chunk and trailer
//! signatures), then integrity checks (x-amz-content-sha256, Content-MD5, x-amz-checksum-*),
//! each byte hashed exactly once as it streams past.
//!
//! ```text
//!  BodyReader (Content-Length / chunked) ─► ChunkedDecoder (aws-chunked, if streaming)
//!        ─► BodyVerifier.update ─► payload slices to the handler
//!  finish(): decoder done + trailer checksum ─► BodyVerifier.finish ─► BodyDigest (MD5, checksum)
//! ```
//!
//! Payload handed out is provisional until [`RequestBody::finish`] succeeds: a handler must not
//! acknowledge (or make visible) anything before that.

use tessera_http::aws_chunked::ChunkedDecoder;
use tessera_http::checksum::{BodyDigest, BodyVerifier, IntegrityHeaders};
use tessera_http::sigv4::PayloadMode;
use tessera_http::{S3Error, S3ErrorCode};

use super::conn::BodyReader;
use crate::site::ChunkBuf;

/// Most bytes read from the socket at once between two aws-chunked chunks: the CRLF ending a
/// chunk and the next chunk's header (about 90 bytes with a chunk signature), with room for
/// longer lines (the decoder keeps a partial line and asks again).
const FRAMING_READ_BYTES: usize = 256;

/// A request body being read and verified.
pub struct RequestBody<'r, 'c> {
    reader: &'r mut BodyReader<'c>,
    chunked: Option<ChunkedDecoder>,
    verifier: BodyVerifier,
    /// The payload length when known before reading (Content-Length or
    /// x-amz-decoded-content-length); `None` for `Transfer-Encoding: chunked` without it.
    length: Option<u64>,
    /// Decoded aws-chunked payload (absolute range in the connection buffer) not yet handed
    /// out; delivered before the reader is asked for more, so the buffer cannot move under it.
    pending: std::ops::Range<usize>,
}

impl<'r, 'c> RequestBody<'r, 'c> {
    /// Sets up decoding and verification for a request authenticated with `payload` and
    /// carrying `integrity` headers. `compute_md5` asks for the MD5 even without Content-MD5
    /// (it is the object's ETag).
    pub fn new(
        reader: &'r mut BodyReader<'c>,
        payload: &PayloadMode,
        integrity: &IntegrityHeaders,
        compute_md5: bool,
    ) -> Result<Self, S3Error> {
        let verifier =
            BodyVerifier::new(payload, integrity, compute_md5).map_err(|e| e.s3_error())?;
        let chunked = ChunkedDecoder::for_payload(payload, integrity.trailer);
        let length = match payload.decoded_content_length() {
            Some(length) => Some(length),
            None if chunked.is_some() => None,
            None => reader.declared_length(),
        };
        if chunked.is_some() && reader.is_done() {
            return Err(S3Error::new(
                S3ErrorCode::IncompleteBody,
                "An aws-chunked body is empty",
            ));
        }
        Ok(RequestBody {
            reader,
            chunked,
            verifier,
            length,
            pending: 0..0,
        })
    }

    /// The payload length, when the request declared it.
    #[must_use]
    pub fn length(&self) -> Option<u64> {
        self.length
    }

    /// The next piece of verified-so-far payload; `None` at the end.
    pub async fn next(&mut self) -> Result<Option<&[u8]>, S3Error> {
        self.next_max(usize::MAX).await
    }

    /// Like [`RequestBody::next`], but hands out at most `max` bytes (at least 1); the rest
    /// stays for the next call.
    pub async fn next_max(&mut self, max: usize) -> Result<Option<&[u8]>, S3Error> {
        assert!(max > 0);
        if !self.pending.is_empty() {
            let take = self.pending.len().min(max);
            let range = self.pending.start..self.pending.start + take;
            self.pending.start += take;
            let data = self.reader.bytes(range);
            self.verifier.update(data);
            return Ok(Some(data));
        }
        loop {
            // Between aws-chunked chunks, read little more than the framing, so that the next
            // chunk's data mostly arrives through `fill_chunk`'s direct reads rather than
            // being copied out of the connection buffer (with 64 KiB chunks, most of it was).
            let read_max = match &self.chunked {
                Some(decoder) if decoder.data_remaining() == 0 => FRAMING_READ_BYTES,
                _ => usize::MAX,
            };
            let range = self
                .reader
                .peek_reading_at_most(read_max)
                .await
                .map_err(super::conn::BodyReadError::s3_error)?;
            let Some(decoder) = &mut self.chunked else {
                if range.is_empty() {
                    return Ok(None);
                }
                let take = range.len().min(max);
                self.reader.advance(take);
                let data = self.reader.bytes(range.start..range.start + take);
                self.verifier.update(data);
                return Ok(Some(data));
            };
            if decoder.is_done() {
                return Ok(None);
            }
            if range.is_empty() {
                decoder.finish().map_err(|e| e.s3_error())?;
                return Ok(None);
            }
            let step = decoder
                .decode(self.reader.bytes(range.clone()))
                .map_err(|e| e.s3_error())?;
            self.reader.advance(step.consumed);
            if !step.data.is_empty() {
                let start = range.start + step.data.start;
                let end = range.start + step.data.end;
                let take = (end - start).min(max);
                self.pending = start + take..end;
                let data = self.reader.bytes(start..start + take);
                self.verifier.update(data);
                return Ok(Some(data));
            }
            if step.consumed == 0 && !decoder.is_done() {
                // The decoder keeps partial lines itself, so it always consumes what it is
                // given; not doing so would loop forever.
                return Err(S3Error::new(
                    S3ErrorCode::InternalError,
                    "aws-chunked decoder made no progress",
                ));
            }
        }
    }

    /// Fills `buf.payload_mut()[range]` with payload (`IncompleteBody` if the body ends
    /// first). Once the bytes already in the connection buffer are used up, payload is read
    /// from the socket straight into `buf` (a plain body, or an aws-chunked chunk's data; its
    /// framing still goes through the connection buffer): no copy.
    pub async fn fill_chunk(
        &mut self,
        mut buf: ChunkBuf,
        range: std::ops::Range<usize>,
    ) -> (Result<(), S3Error>, ChunkBuf) {
        let head = buf.head();
        let mut at = range.start;
        while at < range.end {
            // Payload that is all payload (a plain body, or the rest of the current aws-chunked
            // chunk) may come straight from the socket.
            let direct = match &self.chunked {
                None => range.end - at,
                Some(decoder) if self.pending.is_empty() => {
                    let left = decoder.data_remaining();
                    usize::try_from(left).map_or(range.end - at, |left| left.min(range.end - at))
                }
                Some(_) => 0,
            };
            if direct > 0 {
                let (read, back) = self
                    .reader
                    .read_direct(buf, head + at..head + at + direct)
                    .await;
                buf = back;
                match read {
                    Ok(Some(n)) => {
                        let data = &buf.payload()[at..at + n];
                        if let Some(decoder) = &mut self.chunked {
                            match decoder.decode(data) {
                                Ok(step) if step.consumed == n && step.data == (0..n) => {}
                                Ok(_) => {
                                    let err = S3Error::new(
                                        S3ErrorCode::InternalError,
                                        "aws-chunked payload read directly was not taken whole",
                                    );
                                    return (Err(err), buf);
                                }
                                Err(err) => return (Err(err.s3_error()), buf),
                            }
                        }
                        self.verifier.update(data);
                        at += n;
                        continue;
                    }
                    Ok(None) => {}
                    Err(err) => return (Err(err.s3_error()), buf),
                }
            }
            match self.next_max(range.end - at).await {
                Ok(Some(data)) => {
                    buf.payload_mut()[at..at + data.len()].copy_from_slice(data);
                    at += data.len();
                }
                Ok(None) => {
                    let err = S3Error::new(
                        S3ErrorCode::IncompleteBody,
                        "The request body ended before its declared length",
                    );
                    return (Err(err), buf);
                }
                Err(err) => return (Err(err), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Reads the whole body into memory, refusing more than `max` bytes (for XML documents).
    pub async fn read_to_vec(&mut self, max: usize) -> Result<Vec<u8>, S3Error> {
        let mut out = Vec::new();
        while let Some(data) = self.next().await? {
            if out.len() + data.len() > max {
                return Err(S3Error::new(
                    S3ErrorCode::MalformedXML,
                    format!("The XML document is larger than {max} bytes"),
                ));
            }
            out.extend_from_slice(data);
        }
        Ok(out)
    }

    /// Lets the caller compute the body's MD5 (see [`BodyVerifier::defer_md5`]); it then
    /// passes the result to [`RequestBody::finish`]. True if the MD5 is now the caller's job.
    pub fn defer_md5(&mut self) -> bool {
        self.verifier.defer_md5()
    }

    /// Checks the end of the body: every chunk and trailer signature, the decoded length, and
    /// every integrity header; returns the digests (MD5 for the ETag, the verified checksum).
    /// `deferred_md5` is the MD5 the caller computed after [`RequestBody::defer_md5`].
    pub async fn finish(mut self, deferred_md5: Option<[u8; 16]>) -> Result<BodyDigest, S3Error> {
        if self.next().await?.is_some() {
            return Err(S3Error::new(
                S3ErrorCode::InternalError,
                "the body was not read to its end",
            ));
        }
        let trailer = self
            .chunked
            .as_ref()
            .and_then(|d| d.trailer_checksum().copied());
        let digest = self
            .verifier
            .finish_with_md5(trailer.as_ref(), deferred_md5)
            .map_err(|e| e.s3_error())?;
        if let Some(length) = self.length {
            if digest.length != length {
                return Err(S3Error::new(
                    S3ErrorCode::IncompleteBody,
                    "The body length differs from the declared length",
                ));
            }
        }
        Ok(digest)
    }
}
