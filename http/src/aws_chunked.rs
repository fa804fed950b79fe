//! An incremental, sans-I/O decoder of `aws-chunked` request bodies.
//!
//! ```text
//!  wire:  10000;chunk-signature=<sig1>\r\n <65536 bytes> \r\n
//!         400;chunk-signature=<sig2>\r\n   <1024 bytes>  \r\n
//!         0;chunk-signature=<sig3>\r\n
//!         x-amz-checksum-crc32c:sOO8/Q==\r\n          ┐ trailers (the -TRAILER modes)
//!         x-amz-trailer-signature:<sig4>\r\n          ┘ (signed trailer mode only)
//!         \r\n
//!
//!  any slice of it ──► ChunkedDecoder::decode ──► Step { consumed, data: range of the slice }
//!                          │  size line / trailer lines: ≤ CHUNK_LINE_BYTES_MAX, buffered
//!                          │  data: never copied; SHA-256 of the chunk as it passes
//!                          │        (signed modes only) ─► SignatureChain::verify_chunk
//!                          ▼
//!                      done: decoded length == x-amz-decoded-content-length,
//!                            trailer signature checked, trailer checksum kept for
//!                            checksum::BodyVerifier::finish
//! ```
//!
//! The decoder is fed whatever the socket delivered (it may split anywhere, even inside a
//! `\r\n`) and hands payload back as ranges of that very input. A chunk's signature can only
//! be checked once all its data has passed, so payload handed out is provisional until
//! [`ChunkedDecoder::is_done`]: the caller must not acknowledge a write before that.
//!
//! It never panics on any input: every malformed byte sequence is an [`AuthError`], and an
//! error is sticky (every later call returns it again).

use std::ops::Range;

use sha2::{Digest, Sha256};

use crate::checksum::{ChecksumAlgorithm, ChecksumValue};
use crate::sigv4::{canonical_trailer_line, AuthError, PayloadMode, SignatureChain};

/// The longest chunk-size line or trailer line, CRLF included. A signed size line is at most
/// 16 hex digits + `;chunk-signature=` + 64 hex + CRLF = 99 bytes, and the longest trailer we
/// know (`x-amz-checksum-sha256:` + 44 base64) is 66; 256 leaves room for extensions and
/// spaces while keeping the per-connection line buffer small (it lives inline).
pub const CHUNK_LINE_BYTES_MAX: usize = 256;

/// The most bytes of trailers (all lines of the trailer section). S3 trailers are a checksum
/// and a signature; a few extra `x-amz-*` lines fit easily. Bounds the work of a hostile body.
pub const TRAILER_BYTES_MAX: usize = 4096;

/// The largest chunk accepted, in bytes. SDKs send 8 KiB to 1 MiB chunks; a chunk's signature
/// is only checked after all its data passed, so this also bounds how much unverified payload
/// one chunk can push downstream.
pub const CHUNK_SIZE_MAX: u64 = 16 * 1024 * 1024;

/// The most hex digits in a chunk size (a `u64`).
const CHUNK_SIZE_HEX_DIGITS_MAX: usize = 16;

const _: () = assert!(CHUNK_LINE_BYTES_MAX >= CHUNK_SIZE_HEX_DIGITS_MAX + 17 + 64 + 2);
const _: () = assert!(TRAILER_BYTES_MAX >= 2 * CHUNK_LINE_BYTES_MAX);

/// The result of one [`ChunkedDecoder::decode`] call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// How many input bytes were used; the caller passes the rest (and more) next time.
    pub consumed: usize,
    /// Payload found in this call, as a range of the input given to the call (may be empty).
    pub data: Range<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Reading a `hex-size[;ext]\r\n` line.
    SizeLine,
    /// Inside a chunk's data.
    Data { remaining: u64 },
    /// After a chunk's data: expecting `\r\n` (`seen_cr` once `\r` arrived).
    DataEnd { seen_cr: bool },
    /// After the final chunk: reading trailer lines until an empty line.
    Trailers,
    /// The body is complete and verified.
    Done,
    /// A previous call failed; the error repeats.
    Failed(AuthError),
}

/// Decodes one aws-chunked body. See the module documentation.
pub struct ChunkedDecoder {
    state: State,
    chain: Option<SignatureChain>,
    trailers_allowed: bool,
    expected_trailer: Option<ChecksumAlgorithm>,
    decoded_length_declared: Option<u64>,
    decoded_length: u64,
    chunk_sha256: Sha256,
    claimed_signature: [u8; 32],
    line: [u8; CHUNK_LINE_BYTES_MAX],
    line_len: usize,
    trailer_bytes: usize,
    trailer_lines: usize,
    canonical_trailers: Sha256,
    trailer_signature: Option<[u8; 32]>,
    trailer_checksum: Option<ChecksumValue>,
}

impl std::fmt::Debug for ChunkedDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkedDecoder")
            .field("state", &self.state)
            .field("signed", &self.chain.is_some())
            .field("decoded_length", &self.decoded_length)
            .finish_non_exhaustive()
    }
}

impl ChunkedDecoder {
    /// A decoder.
    ///
    /// - `chain`: `Some` for signed chunks (every chunk carries `;chunk-signature=`).
    /// - `trailers_allowed`: the body ends with trailers (the `-TRAILER` modes); with a chain
    ///   the trailers must then carry `x-amz-trailer-signature`.
    /// - `decoded_content_length`: `x-amz-decoded-content-length`, checked at the end.
    /// - `expected_trailer`: the checksum announced in `x-amz-trailer`; only that checksum
    ///   trailer is accepted, and it must arrive.
    #[must_use]
    pub fn new(
        chain: Option<SignatureChain>,
        trailers_allowed: bool,
        decoded_content_length: Option<u64>,
        expected_trailer: Option<ChecksumAlgorithm>,
    ) -> Self {
        ChunkedDecoder {
            state: State::SizeLine,
            chain,
            trailers_allowed,
            expected_trailer,
            decoded_length_declared: decoded_content_length,
            decoded_length: 0,
            chunk_sha256: Sha256::new(),
            claimed_signature: [0; 32],
            line: [0; CHUNK_LINE_BYTES_MAX],
            line_len: 0,
            trailer_bytes: 0,
            trailer_lines: 0,
            canonical_trailers: Sha256::new(),
            trailer_signature: None,
            trailer_checksum: None,
        }
    }

    /// The decoder a verified request's payload mode asks for; `None` unless it is streaming.
    #[must_use]
    pub fn for_payload(
        payload: &PayloadMode,
        expected_trailer: Option<ChecksumAlgorithm>,
    ) -> Option<Self> {
        let (chain, trailers) = match payload {
            PayloadMode::StreamingSigned { chain, .. } => (Some(chain.clone()), false),
            PayloadMode::StreamingSignedTrailer { chain, .. } => (Some(chain.clone()), true),
            PayloadMode::StreamingUnsignedTrailer { .. } => (None, true),
            PayloadMode::Sha256(_) | PayloadMode::Unsigned => return None,
        };
        Some(Self::new(
            chain,
            trailers,
            payload.decoded_content_length(),
            expected_trailer,
        ))
    }

    /// Whether the whole body has been decoded and verified.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Payload bytes left in the chunk being decoded (0 between chunks): that many input bytes
    /// are all payload, so a caller may read them straight to their destination and then pass
    /// them to [`ChunkedDecoder::decode`] there, which takes them whole.
    #[must_use]
    pub fn data_remaining(&self) -> u64 {
        match self.state {
            State::Data { remaining } => remaining,
            _ => 0,
        }
    }

    /// Payload bytes handed out so far.
    #[must_use]
    pub fn decoded_length(&self) -> u64 {
        self.decoded_length
    }

    /// The checksum trailer, once the trailers have been read.
    #[must_use]
    pub fn trailer_checksum(&self) -> Option<&ChecksumValue> {
        self.trailer_checksum.as_ref()
    }

    /// Decodes from `input`: consumes framing and returns at most one run of payload (a range
    /// of `input`). Call again with the unconsumed rest plus new bytes; stop when
    /// [`ChunkedDecoder::is_done`] (bytes after the body are left unconsumed).
    pub fn decode(&mut self, input: &[u8]) -> Result<Step, AuthError> {
        if let State::Failed(err) = &self.state {
            return Err(err.clone());
        }
        match self.decode_inner(input) {
            Ok(step) => Ok(step),
            Err(err) => {
                self.state = State::Failed(err.clone());
                Err(err)
            }
        }
    }

    /// Declares the end of input. Fine once done; otherwise the body is incomplete, except
    /// that a trailer section missing only its final empty line is accepted (some clients end
    /// the body right after the trailer signature): it is then checked as if the empty line
    /// had arrived.
    pub fn finish(&mut self) -> Result<(), AuthError> {
        match &self.state {
            State::Done => Ok(()),
            State::Failed(err) => Err(err.clone()),
            State::Trailers if self.line_len == 0 && self.trailers_complete() => {
                let result = self.end_of_trailers();
                if let Err(err) = &result {
                    self.state = State::Failed(err.clone());
                }
                result
            }
            _ => {
                self.state = State::Failed(AuthError::IncompleteBody);
                Err(AuthError::IncompleteBody)
            }
        }
    }

    /// Whether the trailer lines read so far can end the body: the signature line in signed
    /// mode (nothing may follow it), at least one trailer in unsigned mode.
    fn trailers_complete(&self) -> bool {
        if self.chain.is_some() {
            self.trailer_signature.is_some()
        } else {
            self.trailer_lines > 0
        }
    }

    fn decode_inner(&mut self, input: &[u8]) -> Result<Step, AuthError> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Done | State::Failed(_) => {
                    return Ok(Step {
                        consumed: pos,
                        data: pos..pos,
                    })
                }
                State::Data { remaining } => {
                    if pos == input.len() {
                        return Ok(Step {
                            consumed: pos,
                            data: pos..pos,
                        });
                    }
                    let available = (input.len() - pos) as u64;
                    // `n` is at most the input length, so it fits a usize.
                    let n = remaining.min(available) as usize;
                    let data = pos..pos + n;
                    self.decoded_length += n as u64;
                    if let Some(declared) = self.decoded_length_declared {
                        if self.decoded_length > declared {
                            return Err(AuthError::DecodedLengthExceeded);
                        }
                    }
                    if self.chain.is_some() {
                        self.chunk_sha256.update(&input[data.clone()]);
                    }
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 {
                        State::DataEnd { seen_cr: false }
                    } else {
                        State::Data { remaining }
                    };
                    return Ok(Step {
                        consumed: pos + n,
                        data,
                    });
                }
                State::DataEnd { seen_cr } => {
                    let Some(&byte) = input.get(pos) else {
                        return Ok(Step {
                            consumed: pos,
                            data: pos..pos,
                        });
                    };
                    pos += 1;
                    match (seen_cr, byte) {
                        (false, b'\r') => self.state = State::DataEnd { seen_cr: true },
                        (true, b'\n') => {
                            self.verify_chunk()?;
                            self.state = State::SizeLine;
                        }
                        _ => {
                            return Err(AuthError::ChunkedMalformed(
                                "aws-chunked: chunk data is not followed by CRLF",
                            ))
                        }
                    }
                }
                State::SizeLine | State::Trailers => {
                    let rest = &input[pos..];
                    let (take, complete) = match rest.iter().position(|&b| b == b'\n') {
                        Some(i) => (i + 1, true),
                        None => (rest.len(), false),
                    };
                    if self.state == State::Trailers {
                        self.trailer_bytes += take;
                        if self.trailer_bytes > TRAILER_BYTES_MAX {
                            return Err(AuthError::ChunkedMalformed(
                                "aws-chunked: the trailers are too long",
                            ));
                        }
                    }
                    if self.line_len + take > CHUNK_LINE_BYTES_MAX {
                        return Err(AuthError::ChunkedMalformed(
                            "aws-chunked: a line is too long",
                        ));
                    }
                    self.line[self.line_len..self.line_len + take].copy_from_slice(&rest[..take]);
                    self.line_len += take;
                    pos += take;
                    if !complete {
                        return Ok(Step {
                            consumed: pos,
                            data: pos..pos,
                        });
                    }
                    let len = self.line_len;
                    self.line_len = 0;
                    if len < 2 || self.line[len - 2] != b'\r' {
                        return Err(AuthError::ChunkedMalformed(
                            "aws-chunked: a line does not end with CRLF",
                        ));
                    }
                    if self.state == State::SizeLine {
                        self.size_line(len - 2)?;
                    } else {
                        self.trailer_line(len - 2)?;
                    }
                }
            }
        }
    }

    /// Checks the signature of the chunk whose data just ended.
    fn verify_chunk(&mut self) -> Result<(), AuthError> {
        if let Some(chain) = &mut self.chain {
            let hash: [u8; 32] = self.chunk_sha256.finalize_reset().into();
            if !chain.verify_chunk(&hash, &self.claimed_signature) {
                return Err(AuthError::ChunkSignatureMismatch);
            }
        }
        Ok(())
    }

    /// Handles the size line in `self.line[..len]` (CRLF removed).
    fn size_line(&mut self, len: usize) -> Result<(), AuthError> {
        let line = &self.line[..len];
        let (size_text, extensions) = match line.iter().position(|&b| b == b';') {
            Some(i) => (&line[..i], Some(&line[i + 1..])),
            None => (line, None),
        };
        if size_text.is_empty() || size_text.len() > CHUNK_SIZE_HEX_DIGITS_MAX {
            return Err(AuthError::ChunkedMalformed(
                "aws-chunked: invalid chunk size",
            ));
        }
        let mut size: u64 = 0;
        for &digit in size_text {
            let value = crate::sigv4::hex_digit(digit).ok_or(AuthError::ChunkedMalformed(
                "aws-chunked: invalid chunk size",
            ))?;
            size = (size << 4) | u64::from(value);
        }
        if size > CHUNK_SIZE_MAX {
            return Err(AuthError::ChunkedMalformed("aws-chunked: chunk too large"));
        }
        if self.chain.is_some() {
            let signature = extensions
                .and_then(|ext| ext.strip_prefix(b"chunk-signature="))
                .and_then(crate::sigv4::parse_signature_hex)
                .ok_or(AuthError::ChunkedMalformed(
                    "aws-chunked: a signed chunk needs exactly ;chunk-signature=<64 hex>",
                ))?;
            self.claimed_signature = signature;
        }
        if size == 0 {
            // The final chunk: its data (none) is complete already.
            self.verify_chunk()?;
            self.state = State::Trailers;
        } else {
            self.state = State::Data { remaining: size };
        }
        Ok(())
    }

    /// Handles one line of the trailer section in `self.line[..len]` (CRLF removed).
    fn trailer_line(&mut self, len: usize) -> Result<(), AuthError> {
        if len == 0 {
            return self.end_of_trailers();
        }
        if !self.trailers_allowed {
            return Err(AuthError::ChunkedMalformed(
                "aws-chunked: trailers sent without a STREAMING-*-TRAILER payload",
            ));
        }
        if self.trailer_signature.is_some() {
            return Err(AuthError::ChunkedMalformed(
                "aws-chunked: x-amz-trailer-signature must be the last trailer",
            ));
        }
        self.trailer_lines += 1;
        let line = std::str::from_utf8(&self.line[..len])
            .map_err(|_| AuthError::ChunkedMalformed("aws-chunked: a trailer is not UTF-8"))?;
        let (name, value) = line.split_once(':').ok_or(AuthError::ChunkedMalformed(
            "aws-chunked: a trailer has no ':'",
        ))?;
        let name = name.trim();
        if name.eq_ignore_ascii_case("x-amz-trailer-signature") {
            if self.chain.is_none() {
                return Err(AuthError::ChunkedMalformed(
                    "aws-chunked: x-amz-trailer-signature in an unsigned body",
                ));
            }
            let signature = crate::sigv4::parse_signature_hex(value.trim().as_bytes()).ok_or(
                AuthError::ChunkedMalformed("aws-chunked: x-amz-trailer-signature is malformed"),
            )?;
            self.trailer_signature = Some(signature);
            return Ok(());
        }
        let hasher = &mut self.canonical_trailers;
        canonical_trailer_line(&mut |bytes| hasher.update(bytes), name, value);
        if let Some(algorithm) = ChecksumAlgorithm::from_header_name(name) {
            if self.expected_trailer != Some(algorithm) {
                return Err(AuthError::InvalidChecksum(
                    "A checksum trailer was sent without being announced in x-amz-trailer.",
                ));
            }
            if self.trailer_checksum.is_some() {
                return Err(AuthError::InvalidChecksum(
                    "Expecting a single x-amz-checksum- trailer.",
                ));
            }
            self.trailer_checksum = Some(ChecksumValue::parse_base64(algorithm, value)?);
        }
        Ok(())
    }

    /// The trailer section ended: check the trailer signature, the announced checksum and the
    /// decoded length.
    fn end_of_trailers(&mut self) -> Result<(), AuthError> {
        if self.trailers_allowed {
            if let Some(chain) = &self.chain {
                let claimed = self.trailer_signature.ok_or(AuthError::ChunkedMalformed(
                    "aws-chunked: the trailers lack x-amz-trailer-signature",
                ))?;
                let hash: [u8; 32] = self.canonical_trailers.clone().finalize().into();
                let expected = chain.trailer_signature(&hash);
                if !crate::sigv4::signatures_equal(&expected, &claimed) {
                    return Err(AuthError::TrailerSignatureMismatch);
                }
            }
        }
        if self.expected_trailer.is_some() && self.trailer_checksum.is_none() {
            return Err(AuthError::InvalidChecksum(
                "The x-amz-trailer checksum was announced but not sent.",
            ));
        }
        if let Some(declared) = self.decoded_length_declared {
            if self.decoded_length != declared {
                return Err(AuthError::IncompleteBody);
            }
        }
        self.state = State::Done;
        Ok(())
    }
}
