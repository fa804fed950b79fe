//! One client connection: read heads, hand requests to the dispatcher with a streaming body
//! reader, write responses in order, keep alive or close.
//!
//! Pipelined requests are answered in order because each request is finished (body consumed
//! or the connection marked for closing) before the next head is parsed from the buffer.

use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRent as _, AsyncWriteRentExt as _};
use monoio::net::TcpStream;
use tessera_http::codec::{self, BodyDecoder, HeadError, RequestHead};
use tessera_http::{S3Error, S3ErrorCode};

use super::response::Response;
use super::{dispatch, CoreCtx};
use crate::engine::piece::{Piece, PieceIo};
use crate::engine::read::ObjectReader;
use crate::metrics::CoreMetrics;
use crate::recv_lowat::RecvLowat;
use crate::site::chunk_buf::{ChunkBuf, IO_ALIGN};

/// Read buffer per connection. 64 KiB amortises syscalls for streamed bodies while keeping
/// 4096 idle connections per core under 256 MiB; a head must fit `header_bytes_max`, which the
/// config bounds to 1 MiB, so the buffer grows to that at most.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Unread body bytes we drain (rather than close) after a response that did not need the body.
pub const DRAIN_BYTES_MAX: u64 = 256 * 1024;
/// How often an idle connection wakes to notice shutdown.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Why the connection stops reading.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The peer closed the connection.
    Closed,
    /// No progress within the applicable timeout.
    Timeout,
    /// The process is shutting down and the connection was idle.
    Shutdown,
    /// A socket error.
    Io,
}

/// The socket and its read buffer (valid bytes are `buf[start..]`).
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    write_buf: Vec<u8>,
    /// The socket's receive low-water mark: raised for body reads of known length.
    lowat: RecvLowat,
}

impl Conn {
    fn new(stream: TcpStream) -> Self {
        Conn {
            stream,
            buf: Vec::with_capacity(READ_BUFFER_BYTES),
            start: 0,
            write_buf: Vec::with_capacity(4096),
            lowat: RecvLowat::default(),
        }
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.buf.len());
    }

    /// Reads more bytes, at most `read_max` (at least one), waiting at most `timeout`. Compacts
    /// or grows the buffer as needed so that at least `READ_BUFFER_BYTES / 4` bytes are free.
    async fn fill(
        &mut self,
        timeout: Duration,
        grow_to: usize,
        read_max: usize,
    ) -> Result<usize, ReadError> {
        // What comes next is of unknown length (a head, framing): wake at every byte.
        self.lowat.reset(&self.stream).map_err(|_| ReadError::Io)?;
        let buf = self.read_buf(grow_to)?;
        let len = buf.len();
        let capacity = buf.capacity().min(len.saturating_add(read_max.max(1)));
        let read =
            monoio::time::timeout(timeout, self.stream.read(buf.slice_mut(len..capacity))).await;
        match read {
            Err(_elapsed) => {
                // The cancelled read's buffer is gone with its future; start with a fresh one.
                self.buf = Vec::with_capacity(READ_BUFFER_BYTES);
                self.start = 0;
                Err(ReadError::Timeout)
            }
            Ok((result, slice)) => {
                self.buf = slice.into_inner();
                match result {
                    Ok(0) => Err(ReadError::Closed),
                    Ok(n) => Ok(n),
                    Err(_) => Err(ReadError::Io),
                }
            }
        }
    }

    /// Takes the read buffer out for one read, compacted or grown so that at least
    /// `READ_BUFFER_BYTES / 4` bytes are free (up to `grow_to`); full is an error.
    fn read_buf(&mut self, grow_to: usize) -> Result<Vec<u8>, ReadError> {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 0 && self.buf.capacity() - self.buf.len() < READ_BUFFER_BYTES / 4 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < READ_BUFFER_BYTES / 4
            && self.buf.capacity() < grow_to
        {
            self.buf.reserve(READ_BUFFER_BYTES);
        }
        let buf = std::mem::take(&mut self.buf);
        if buf.len() == buf.capacity() {
            self.buf = buf;
            return Err(ReadError::Io);
        }
        Ok(buf)
    }

    /// Waits for bytes on an idle connection until `deadline`, waking every `IDLE_POLL` to
    /// notice shutdown. The read stays in flight across those wake-ups: an io_uring read that
    /// is cancelled can still complete, and the request bytes it took would be lost with its
    /// buffer (the client then waits for an answer until the idle timeout closes the
    /// connection; seen as 41 of 9,000 requests timed near the poll interval). Only when the
    /// connection is given up is the read dropped.
    async fn fill_idle(
        &mut self,
        ctx: &CoreCtx,
        deadline: Instant,
        grow_to: usize,
    ) -> Result<usize, ReadError> {
        if ctx.shared.is_shutting_down() {
            return Err(ReadError::Shutdown);
        }
        self.lowat.reset(&self.stream).map_err(|_| ReadError::Io)?;
        let buf = self.read_buf(grow_to)?;
        let len = buf.len();
        let capacity = buf.capacity();
        let mut read = std::pin::pin!(self.stream.read(buf.slice_mut(len..capacity)));
        loop {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(IDLE_POLL);
            if let Ok((result, slice)) = monoio::time::timeout(wait, read.as_mut()).await {
                self.buf = slice.into_inner();
                return match result {
                    Ok(0) => Err(ReadError::Closed),
                    Ok(n) => Ok(n),
                    Err(_) => Err(ReadError::Io),
                };
            }
            let shutdown = ctx.shared.is_shutting_down();
            if shutdown || Instant::now() >= deadline {
                // The connection is closed: bytes the dropped read may take go with it.
                self.buf = Vec::with_capacity(READ_BUFFER_BYTES);
                self.start = 0;
                return Err(if shutdown {
                    ReadError::Shutdown
                } else {
                    ReadError::Timeout
                });
            }
        }
    }

    async fn write_all_buf(&mut self, bytes: Vec<u8>) -> Result<Vec<u8>, ()> {
        let (result, bytes) = self.stream.write_all(bytes).await;
        result.map(|_| bytes).map_err(|_| ())
    }

    /// Writes every byte of `piece` with vectored writes (no copy into one buffer).
    async fn write_all_piece(&mut self, piece: Piece) -> Result<Piece, ()> {
        let mut io = PieceIo::new(piece);
        while io.remaining() > 0 {
            let (result, back) = self.stream.writev(io).await;
            io = back;
            match result {
                Ok(0) | Err(_) => return Err(()),
                Ok(n) => io.advance(n),
            }
        }
        Ok(io.into_piece())
    }
}

use monoio::buf::IoBufMut as _;

/// Answers 503 SlowDown to a connection beyond the per-core limit and closes it.
pub async fn refuse(ctx: Rc<CoreCtx>, stream: TcpStream) {
    let mut conn = Conn::new(stream);
    let request_id = ctx.next_request_id();
    let error = S3Error::new(
        S3ErrorCode::SlowDown,
        "Too many connections on this core; retry later",
    );
    let mut response = Response::error(&error, &request_id);
    response.close = true;
    let _ = write_response(&ctx, &mut conn, response, &request_id, false).await;
}

/// Serves requests on one connection until it closes, errs, idles out or shutdown begins.
pub async fn serve_connection(ctx: &Rc<CoreCtx>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut conn = Conn::new(stream);
    let mut head = RequestHead::default();
    let limits = &ctx.shared.config.limits;
    let idle_timeout = Duration::from_millis(limits.idle_timeout_ms);
    let header_timeout = Duration::from_millis(limits.header_read_timeout_ms);
    loop {
        match read_head(ctx, &mut conn, &mut head, idle_timeout, header_timeout).await {
            Ok(()) => {}
            Err(HeadFailure::Closed) => return,
            Err(HeadFailure::Parse(error)) => {
                let request_id = ctx.next_request_id();
                let code = match error.status() {
                    431 => S3ErrorCode::RequestHeaderSectionTooLarge,
                    414 => S3ErrorCode::UriTooLong,
                    501 => S3ErrorCode::NotImplementedHeader,
                    _ => S3ErrorCode::BadRequest,
                };
                let mut response =
                    Response::error(&S3Error::new(code, error.message()), &request_id);
                response.head.status = error.status();
                response.close = true;
                let _ = write_response(ctx, &mut conn, response, &request_id, false).await;
                return;
            }
        }
        let request_id = ctx.next_request_id();
        let is_head = head.method() == "HEAD";
        // RFC 9110 lets a server skip `100 Continue` when there is no content, but botocore
        // (aws CLI, boto3) then takes the early final response as the status of the *next*
        // `Expect: 100-continue` request on the connection and hangs on it until the idle
        // timeout (`aws s3 sync` of an empty file stalled 60 s). So such a request is always
        // answered with a `100 Continue` first; with a body, `BodyReader` sends it on first use.
        let continue_owed = head.expect_continue
            && matches!(
                head.body_framing(),
                codec::head::Framing::None | codec::head::Framing::Length(0)
            );
        let mut body = BodyReader::new(
            &mut conn,
            &head,
            Duration::from_millis(limits.body_read_timeout_ms),
        );
        let mut response = dispatch::handle(ctx, &head, &mut body, &request_id).await;
        let body_state = body.finish().await;
        CoreMetrics::add(&ctx.metrics().bytes_in, body_state.payload_bytes);
        if let Some(lanes) = &ctx.engine.md5_lanes {
            ctx.metrics().mirror_md5_lanes(lanes.counts());
        }
        if !body_state.clean {
            response.close = true;
        }
        if !head.keep_alive || ctx.shared.is_shutting_down() {
            response.close = true;
        }
        let close = response.close;
        if continue_owed {
            let mut out = Vec::with_capacity(32);
            codec::write_continue(&mut out);
            if conn.write_all_buf(out).await.is_err() {
                return;
            }
        }
        if write_response(ctx, &mut conn, response, &request_id, is_head)
            .await
            .is_err()
            || close
        {
            return;
        }
    }
}

enum HeadFailure {
    /// The connection ended or stalled (closed, timeout, shutdown, socket error).
    Closed,
    Parse(HeadError),
}

/// Reads until a complete head is buffered: idle timeout before the first byte (waking to
/// notice shutdown), header-read timeout after it.
async fn read_head(
    ctx: &CoreCtx,
    conn: &mut Conn,
    head: &mut RequestHead,
    idle_timeout: Duration,
    header_timeout: Duration,
) -> Result<(), HeadFailure> {
    let idle_deadline = Instant::now() + idle_timeout;
    let mut header_deadline: Option<Instant> = None;
    loop {
        if !conn.buffered().is_empty() {
            match codec::head::parse_head(conn.buffered(), &ctx.head_limits, head) {
                Ok(Some(len)) => {
                    conn.consume(len);
                    return Ok(());
                }
                Ok(None) => {}
                Err(error) => return Err(HeadFailure::Parse(error)),
            }
            header_deadline.get_or_insert_with(|| Instant::now() + header_timeout);
        }
        let grow_to = ctx.head_limits.header_bytes_max + READ_BUFFER_BYTES;
        let filled = if let Some(deadline) = header_deadline {
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return Err(HeadFailure::Closed);
            }
            conn.fill(wait, grow_to, usize::MAX).await
        } else {
            conn.fill_idle(ctx, idle_deadline, grow_to).await
        };
        if filled.is_err() {
            return Err(HeadFailure::Closed);
        }
    }
}

/// Writes `response` (status, common headers, body) to the socket.
async fn write_response(
    ctx: &CoreCtx,
    conn: &mut Conn,
    mut response: Response,
    request_id: &str,
    is_head: bool,
) -> Result<(), ()> {
    ctx.metrics().record_status(response.head.status);
    if let Some(error) = response.error.take() {
        if error.status() != 304 {
            response.body = error.to_xml(request_id).into_bytes();
        }
    }
    response.head.header("x-amz-request-id", request_id);
    response.head.header(
        "Date",
        httpdate::fmt_http_date(std::time::SystemTime::now()),
    );
    response.head.header("Server", "Tessera");
    let body_len = response
        .head_only_length
        .unwrap_or(response.body.len() as u64);
    let mut out = std::mem::take(&mut conn.write_buf);
    out.clear();
    response.head.write(body_len, !response.close, &mut out);
    if let Some(mut stream) = response.stream.take() {
        let sent = match conn.write_all_buf(out).await {
            Ok(buf) => {
                conn.write_buf = buf;
                if is_head {
                    return Ok(());
                }
                stream_body(ctx, conn, &mut stream, body_len).await
            }
            Err(()) => Err(()),
        };
        // What the read found missing or corrupt (the prefetch read the first piece before
        // the head was sent) is queued for repair whether or not the client stayed for the
        // whole body.
        let damaged = stream.damaged();
        if !damaged.is_empty() {
            crate::handlers::object::report_damage(&ctx.meta, &damaged).await;
        }
        return sent;
    }
    if !is_head && !response.head.status_forbids_body() {
        CoreMetrics::add(&ctx.metrics().bytes_out, response.body.len() as u64);
        if response.body.len() <= 16 * 1024 {
            out.extend_from_slice(&response.body);
        } else {
            let out = conn.write_all_buf(out).await?;
            conn.write_buf = out;
            conn.write_all_buf(response.body).await?;
            return Ok(());
        }
    }
    conn.write_buf = conn.write_all_buf(out).await?;
    Ok(())
}

/// Sends the pieces of `stream` as the body whose head promised `body_len` bytes. On a
/// failure mid-stream the only honest signal left is to close the connection short of that
/// length: `Err`.
async fn stream_body(
    ctx: &CoreCtx,
    conn: &mut Conn,
    stream: &mut ObjectReader,
    body_len: u64,
) -> Result<(), ()> {
    let mut sent = 0_u64;
    loop {
        match stream.next_piece().await {
            Ok(Some(piece)) => {
                sent += piece.len() as u64;
                CoreMetrics::add(&ctx.metrics().bytes_out, piece.len() as u64);
                let piece = conn.write_all_piece(piece).await?;
                for buffer in piece.into_buffers() {
                    ctx.engine.give_buffer(buffer);
                }
            }
            Ok(None) if sent == body_len => return Ok(()),
            Ok(None) | Err(_) => return Err(()),
        }
    }
}

/// What remained of a request body after its handler returned.
pub struct BodyState {
    /// Payload bytes read (by the handler or drained).
    pub payload_bytes: u64,
    /// True when the body was consumed exactly and the connection can carry another request.
    pub clean: bool,
}

/// The request body as the handler pulls it: framing decoded, `100 Continue` sent on first use.
///
/// Decoded bytes are offered with [`BodyReader::peek`] and taken with [`BodyReader::advance`],
/// so a layer above (aws-chunked decoding) can leave bytes it has not used yet.
pub struct BodyReader<'c> {
    conn: &'c mut Conn,
    decoder: BodyDecoder,
    continue_pending: bool,
    timeout: Duration,
    failed: bool,
    /// Decoded payload in `conn.buf` not yet taken by the caller.
    pending: std::ops::Range<usize>,
}

/// Why reading the body failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyReadError {
    /// The framing was malformed.
    Framing,
    /// The client closed or stalled before the body was complete.
    Incomplete,
}

impl BodyReadError {
    /// The S3 error to answer with.
    #[must_use]
    pub fn s3_error(self) -> S3Error {
        match self {
            BodyReadError::Framing => {
                S3Error::new(S3ErrorCode::BadRequest, "Malformed chunked request body")
            }
            BodyReadError::Incomplete => S3Error::new(
                S3ErrorCode::IncompleteBody,
                "The request body ended before its declared length",
            ),
        }
    }
}

impl<'c> BodyReader<'c> {
    fn new(conn: &'c mut Conn, head: &RequestHead, timeout: Duration) -> Self {
        let decoder = BodyDecoder::new(head.body_framing());
        let continue_pending = head.expect_continue && !decoder.is_done();
        BodyReader {
            conn,
            decoder,
            continue_pending,
            timeout,
            failed: false,
            pending: 0..0,
        }
    }

    /// True when the request has no body bytes left, taken or not.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.decoder.is_done() && self.pending.is_empty()
    }

    /// The framed length of the body when declared by Content-Length.
    #[must_use]
    pub fn declared_length(&self) -> Option<u64> {
        self.decoder
            .remaining_hint()
            .map(|r| r + self.decoder.payload_total())
    }

    /// The decoded bytes not yet taken, as a range for [`BodyReader::bytes`]; reads and decodes
    /// more when none are pending. An empty range means the body has ended.
    pub async fn peek(&mut self) -> Result<std::ops::Range<usize>, BodyReadError> {
        self.peek_reading_at_most(usize::MAX).await
    }

    /// [`BodyReader::peek`], reading at most `read_max` bytes from the socket if it reads:
    /// for framing that is followed by payload the caller would rather receive with
    /// [`BodyReader::read_direct`] than copy out of the connection buffer.
    pub async fn peek_reading_at_most(
        &mut self,
        read_max: usize,
    ) -> Result<std::ops::Range<usize>, BodyReadError> {
        if self.failed {
            return Err(BodyReadError::Incomplete);
        }
        if !self.pending.is_empty() {
            return Ok(self.pending.clone());
        }
        if self.continue_pending {
            self.continue_pending = false;
            let mut out = Vec::with_capacity(32);
            codec::write_continue(&mut out);
            if self.conn.write_all_buf(out).await.is_err() {
                self.failed = true;
                return Err(BodyReadError::Incomplete);
            }
        }
        loop {
            if self.decoder.is_done() {
                return Ok(0..0);
            }
            if !self.conn.buffered().is_empty() {
                let Ok(decoded) = self.decoder.decode(self.conn.buffered()) else {
                    self.failed = true;
                    return Err(BodyReadError::Framing);
                };
                let start = self.conn.start;
                self.conn.consume(decoded.consumed);
                if !decoded.payload.is_empty() {
                    // Consumed bytes stay in the buffer until the next `fill`, which only runs
                    // when nothing is pending.
                    self.pending = start + decoded.payload.start..start + decoded.payload.end;
                    return Ok(self.pending.clone());
                }
                if decoded.consumed > 0 {
                    continue;
                }
            }
            if self
                .conn
                .fill(self.timeout, READ_BUFFER_BYTES, read_max)
                .await
                .is_err()
            {
                self.failed = true;
                return Err(BodyReadError::Incomplete);
            }
        }
    }

    /// Reads body bytes straight into `buf.all()[range]`, not through the connection buffer,
    /// when that is possible: a Content-Length body with nothing buffered or pending and no
    /// `100 Continue` still owed. `Ok(None)` when it is not (read through
    /// [`BodyReader::peek`]); else how many bytes arrived (at least one, never past the body's
    /// end, so a pipelined request stays in the socket).
    pub async fn read_direct(
        &mut self,
        buf: ChunkBuf,
        range: std::ops::Range<usize>,
    ) -> (Result<Option<usize>, BodyReadError>, ChunkBuf) {
        if self.failed {
            return (Err(BodyReadError::Incomplete), buf);
        }
        let remaining = match self.decoder.remaining_hint() {
            Some(remaining) if remaining > 0 => remaining,
            _ => return (Ok(None), buf),
        };
        if self.continue_pending || !self.pending.is_empty() || !self.conn.buffered().is_empty() {
            return (Ok(None), buf);
        }
        let len = range
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        if len == 0 {
            return (Ok(None), buf);
        }
        let payload_max = buf.payload_max() + buf.head();
        // All `len` bytes are sure to come (the body's declared length): wake once most of
        // them are here rather than at every segment.
        let conn = &mut *self.conn;
        let read = async {
            if let Err(err) = conn.lowat.wait(&conn.stream, len).await {
                return (Err(err), buf.slice_mut(range.start..range.start + len));
            }
            conn.stream
                .read(buf.slice_mut(range.start..range.start + len))
                .await
        };
        let (result, buf) = match monoio::time::timeout(self.timeout, read).await {
            Ok((result, slice)) => (result, slice.into_inner()),
            Err(_elapsed) => {
                // The cancelled read took the buffer with it.
                self.failed = true;
                return (
                    Err(BodyReadError::Incomplete),
                    ChunkBuf::take(payload_max.saturating_sub(IO_ALIGN)),
                );
            }
        };
        match result {
            Ok(n) if n > 0 => {
                let data = &buf.all()[range.start..range.start + n];
                match self.decoder.decode(data) {
                    Ok(decoded) if decoded.consumed == n && decoded.payload.len() == n => {
                        (Ok(Some(n)), buf)
                    }
                    _ => {
                        self.failed = true;
                        (Err(BodyReadError::Framing), buf)
                    }
                }
            }
            _ => {
                self.failed = true;
                (Err(BodyReadError::Incomplete), buf)
            }
        }
    }

    /// The bytes of a range returned by [`BodyReader::peek`] (valid until the next `peek`).
    #[must_use]
    pub fn bytes(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.conn.buf[range]
    }

    /// Takes `n` pending bytes.
    pub fn advance(&mut self, n: usize) {
        assert!(n <= self.pending.len(), "advance past the pending bytes");
        self.pending.start += n;
    }

    /// The next piece of payload, `None` at the end of the body. The slice is valid until the
    /// next call.
    pub async fn next(&mut self) -> Result<Option<&[u8]>, BodyReadError> {
        let range = self.peek().await?;
        if range.is_empty() {
            return Ok(None);
        }
        self.advance(range.len());
        Ok(Some(self.bytes(range)))
    }

    /// Drains a small unread remainder so the connection stays usable; otherwise reports that
    /// the connection must close.
    async fn finish(mut self) -> BodyState {
        let mut clean = !self.failed;
        if clean && !self.is_done() {
            // A client still waiting for 100 Continue has not sent the body: it will not, so the
            // connection cannot be reused safely. Otherwise drain a bounded remainder.
            let small = self
                .decoder
                .remaining_hint()
                .is_some_and(|r| r <= DRAIN_BYTES_MAX);
            if self.continue_pending || !small {
                clean = false;
            } else {
                loop {
                    match self.next().await {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => {
                            clean = false;
                            break;
                        }
                    }
                }
            }
        }
        BodyState {
            payload_bytes: self.decoder.payload_total(),
            clean,
        }
    }
}
