//! Request body framing: Content-Length and `Transfer-Encoding: chunked`, decoded incrementally.
//!
//! The decoder is fed whatever bytes the socket produced and hands back the payload as a range
//! of that input, so the body is never copied or buffered here. Chunk extensions are skipped and
//! trailer fields after the last chunk are discarded (S3 trailers travel inside aws-chunked,
//! one layer up).

use std::ops::Range;

use super::head::Framing;

/// Longest chunk-size line we accept (size, extensions, CRLF). aws-chunked lines carry a
/// 64-hex-digit signature extension, so 4 KiB leaves ample room while bounding the scan.
pub const CHUNK_LINE_BYTES_MAX: usize = 4096;
/// Bytes of trailer section we are willing to skip after the last chunk.
pub const TRAILER_BYTES_MAX: usize = 16 * 1024;

/// Why a body could not be decoded; the connection closes after answering 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// A chunk-size line is not hex, overflows, or is longer than `CHUNK_LINE_BYTES_MAX`.
    BadChunkSize,
    /// Chunk data is not followed by CRLF.
    BadChunkEnd,
    /// The trailer section exceeds `TRAILER_BYTES_MAX`.
    TrailerTooLarge,
}

/// One step of decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Input bytes consumed by this step (framing and payload).
    pub consumed: usize,
    /// Payload bytes, as a range of the input given to this step.
    pub payload: Range<usize>,
    /// True once the whole body has been consumed.
    pub done: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunked {
    /// Reading the chunk-size line; `line` bytes of it seen so far, size accumulated.
    SizeLine {
        size: u64,
        digits: usize,
        in_extension: bool,
        line: usize,
        saw_cr: bool,
    },
    /// Inside chunk data.
    Data {
        remaining: u64,
    },
    /// Expecting CRLF after chunk data; `seen` of 2 bytes matched.
    DataEnd {
        seen: u8,
    },
    /// After the last chunk: trailer lines until an empty line. `line_len` counts the current
    /// line, `total` the whole section.
    Trailer {
        line_len: usize,
        total: usize,
        saw_cr: bool,
    },
    Done,
}

/// Incremental body decoder for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyDecoder {
    state: State,
    payload_total: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Length { remaining: u64 },
    Chunked(Chunked),
}

impl BodyDecoder {
    /// A decoder for a body framed as `framing`.
    #[must_use]
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::None => State::Length { remaining: 0 },
            Framing::Length(length) => State::Length { remaining: length },
            Framing::Chunked => State::Chunked(Chunked::SizeLine {
                size: 0,
                digits: 0,
                in_extension: false,
                line: 0,
                saw_cr: false,
            }),
        };
        BodyDecoder {
            state,
            payload_total: 0,
        }
    }

    /// True once the whole body (including a chunked trailer section) has been consumed.
    #[must_use]
    pub fn is_done(&self) -> bool {
        matches!(
            self.state,
            State::Length { remaining: 0 } | State::Chunked(Chunked::Done)
        )
    }

    /// Payload bytes handed out so far.
    #[must_use]
    pub fn payload_total(&self) -> u64 {
        self.payload_total
    }

    /// The payload length still expected, when the framing declares it.
    #[must_use]
    pub fn remaining_hint(&self) -> Option<u64> {
        match self.state {
            State::Length { remaining } => Some(remaining),
            State::Chunked(_) => None,
        }
    }

    /// Decodes from `input`, returning at most one contiguous payload range. Call again with the
    /// unconsumed rest until `done`, or until it consumes nothing (then more input is needed).
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, BodyError> {
        match &mut self.state {
            State::Length { remaining } => {
                let take = (*remaining).min(input.len() as u64) as usize;
                *remaining -= take as u64;
                self.payload_total += take as u64;
                Ok(Decoded {
                    consumed: take,
                    payload: 0..take,
                    done: *remaining == 0,
                })
            }
            State::Chunked(chunked) => {
                let mut position = 0;
                loop {
                    if let Chunked::Data { remaining } = chunked {
                        let start = position;
                        let take = (*remaining).min((input.len() - position) as u64) as usize;
                        *remaining -= take as u64;
                        position += take;
                        if *remaining == 0 {
                            *chunked = Chunked::DataEnd { seen: 0 };
                        }
                        self.payload_total += take as u64;
                        if take > 0 {
                            return Ok(Decoded {
                                consumed: position,
                                payload: start..position,
                                done: false,
                            });
                        }
                        if position == input.len() {
                            return Ok(Decoded {
                                consumed: position,
                                payload: position..position,
                                done: false,
                            });
                        }
                        continue;
                    }
                    if *chunked == Chunked::Done {
                        return Ok(Decoded {
                            consumed: position,
                            payload: position..position,
                            done: true,
                        });
                    }
                    let Some(&byte) = input.get(position) else {
                        return Ok(Decoded {
                            consumed: position,
                            payload: position..position,
                            done: false,
                        });
                    };
                    position += 1;
                    step_framing(chunked, byte)?;
                }
            }
        }
    }
}

/// Advances the chunked framing state by one byte outside chunk data.
fn step_framing(state: &mut Chunked, byte: u8) -> Result<(), BodyError> {
    match state {
        Chunked::SizeLine {
            size,
            digits,
            in_extension,
            line,
            saw_cr,
        } => {
            *line += 1;
            if *line > CHUNK_LINE_BYTES_MAX {
                return Err(BodyError::BadChunkSize);
            }
            if *saw_cr {
                if byte != b'\n' || *digits == 0 {
                    return Err(BodyError::BadChunkSize);
                }
                *state = if *size == 0 {
                    Chunked::Trailer {
                        line_len: 0,
                        total: 0,
                        saw_cr: false,
                    }
                } else {
                    Chunked::Data { remaining: *size }
                };
                return Ok(());
            }
            match byte {
                b'\r' => *saw_cr = true,
                _ if *in_extension => {}
                b';' => *in_extension = true,
                b' ' | b'\t' => *in_extension = true,
                _ => {
                    let digit = (byte as char).to_digit(16).ok_or(BodyError::BadChunkSize)?;
                    if *digits >= 15 {
                        return Err(BodyError::BadChunkSize);
                    }
                    *size = *size * 16 + u64::from(digit);
                    *digits += 1;
                }
            }
        }
        Chunked::DataEnd { seen } => {
            let expected = if *seen == 0 { b'\r' } else { b'\n' };
            if byte != expected {
                return Err(BodyError::BadChunkEnd);
            }
            *seen += 1;
            if *seen == 2 {
                *state = Chunked::SizeLine {
                    size: 0,
                    digits: 0,
                    in_extension: false,
                    line: 0,
                    saw_cr: false,
                };
            }
        }
        Chunked::Trailer {
            line_len,
            total,
            saw_cr,
        } => {
            *total += 1;
            if *total > TRAILER_BYTES_MAX {
                return Err(BodyError::TrailerTooLarge);
            }
            if *saw_cr {
                if byte != b'\n' {
                    return Err(BodyError::BadChunkEnd);
                }
                if *line_len == 0 {
                    *state = Chunked::Done;
                } else {
                    *line_len = 0;
                    *saw_cr = false;
                }
            } else if byte == b'\r' {
                *saw_cr = true;
            } else {
                *line_len += 1;
            }
        }
        Chunked::Data { .. } | Chunked::Done => {
            unreachable!("no framing bytes in data or after done")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes and collects the payload.
    fn decode_all(
        framing: Framing,
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, usize), BodyError> {
        let mut decoder = BodyDecoder::new(framing);
        let mut out = Vec::new();
        let mut buffered: Vec<u8> = Vec::new();
        let mut fed = 0;
        let mut consumed_total = 0;
        loop {
            let decoded = decoder.decode(&buffered)?;
            out.extend_from_slice(&buffered[decoded.payload.clone()]);
            buffered.drain(..decoded.consumed);
            consumed_total += decoded.consumed;
            if decoded.done {
                return Ok((out, consumed_total));
            }
            if decoded.consumed == 0 || buffered.is_empty() {
                if fed == input.len() {
                    return Ok((out, usize::MAX));
                }
                let end = (fed + step).min(input.len());
                buffered.extend_from_slice(&input[fed..end]);
                fed = end;
            }
        }
    }

    /// A chunked body with extensions and trailers decodes to its payload whatever the split,
    /// and stops exactly at its end (the next pipelined request is not consumed).
    #[test]
    fn chunked_any_split() {
        let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: v\r\n\r\nGET / HTTP/1.1";
        let framing_len = body.len() - "GET / HTTP/1.1".len();
        for step in 1..=body.len() {
            let (payload, consumed) = decode_all(Framing::Chunked, body, step).unwrap();
            assert_eq!(payload, b"hello world", "step {step}");
            assert_eq!(consumed, framing_len, "step {step}");
        }
    }

    /// Content-Length bodies stop at the declared length.
    #[test]
    fn content_length_stops() {
        let (payload, consumed) = decode_all(Framing::Length(3), b"abcdef", 2).unwrap();
        assert_eq!((payload.as_slice(), consumed), (b"abc".as_slice(), 3));
        let decoder = BodyDecoder::new(Framing::None);
        assert!(decoder.is_done());
    }

    /// Malformed chunked framing is an error, never a panic.
    #[test]
    fn chunked_errors() {
        assert_eq!(
            decode_all(Framing::Chunked, b"zz\r\n", 4),
            Err(BodyError::BadChunkSize)
        );
        assert_eq!(
            decode_all(Framing::Chunked, b"\r\n", 4),
            Err(BodyError::BadChunkSize)
        );
        assert_eq!(
            decode_all(Framing::Chunked, b"1\r\naXY", 7),
            Err(BodyError::BadChunkEnd)
        );
        assert_eq!(
            decode_all(Framing::Chunked, b"1000000000000000\r\n", 64),
            Err(BodyError::BadChunkSize)
        );
        let long = [b"1;".as_slice(), &[b'a'; CHUNK_LINE_BYTES_MAX]].concat();
        assert_eq!(
            decode_all(Framing::Chunked, &long, 100),
            Err(BodyError::BadChunkSize)
        );
    }

    /// Arbitrary bytes never panic the decoder (a cheap fuzz in the unit tests).
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x1234_5678_u64;
        for _ in 0..2000 {
            let mut input = Vec::new();
            for _ in 0..(seed % 64) {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                input.push(b"0123456789abcdef;\r\n xz"[(seed >> 33) as usize % 22]);
            }
            let _ = decode_all(Framing::Chunked, &input, 1 + (seed % 7) as usize);
        }
    }
}
