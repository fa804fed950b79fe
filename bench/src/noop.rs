//! A no-op S3-shaped HTTP/1.1 server: the ceiling of what the client side can drive.
//!
//! ```text
//!  accept ─► one thread per connection ─► parse_head (tessera-http codec)
//!     GET /b/k   ─► 200 + object_bytes of zeros (or the key's deterministic content)
//!     HEAD /b/k  ─► 200 + Content-Length, no body
//!     GET /b?…   ─► 200 + an empty ListBucketResult
//!     PUT        ─► body read and dropped (Content-Length or chunked) ─► 200 + ETag
//!     DELETE     ─► 204
//! ```
//!
//! It checks no signature and stores nothing: it exists to measure the load generator, and as
//! a server that answers every request instantly.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use tessera_http::codec::{head::parse_head, BodyDecoder, HeadLimits, RequestHead, ResponseHead};

use crate::args::NoopConfig;
use crate::content::{key_seed, Pattern, PATTERN_BYTES};
use crate::error::BenchError;

/// Bytes of each connection's read buffer (request heads and discarded PUT bodies).
pub const NOOP_READ_BUFFER_BYTES: usize = 256 * 1024;
/// Bytes of zeros written per `write` call for GET bodies.
const ZERO_WRITE_BYTES: usize = 1 << 20;
static ZEROS: [u8; ZERO_WRITE_BYTES] = [0; ZERO_WRITE_BYTES];

/// Binds, prints `listening on ADDR` on stdout, and serves until the process is killed.
pub fn serve(config: &NoopConfig) -> Result<(), BenchError> {
    let listener = TcpListener::bind(&config.addr).map_err(BenchError::Io)?;
    let local = listener.local_addr().map_err(BenchError::Io)?;
    println!("listening on {local}");
    let _ = std::io::stdout().flush();
    // One pattern for all connections, built only when it is used.
    let pattern: &'static Option<Pattern> = Box::leak(Box::new(config.pattern.then(Pattern::new)));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let object_bytes = config.object_bytes;
        std::thread::spawn(move || {
            // A broken connection ends only its own thread.
            let _ = connection(stream, object_bytes, pattern.as_ref());
        });
    }
    Ok(())
}

/// Decodes `%XX` escapes (invalid escapes are kept as they are).
#[must_use]
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(value) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(value);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn connection(
    mut stream: TcpStream,
    object_bytes: u64,
    pattern: Option<&Pattern>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let limits = HeadLimits::default();
    let mut head = RequestHead::default();
    let mut buf = vec![0u8; NOOP_READ_BUFFER_BYTES];
    let mut start = 0usize;
    let mut end = 0usize;
    let mut out = Vec::with_capacity(512);
    loop {
        // Read until a whole request head is buffered.
        let head_len = loop {
            match parse_head(&buf[start..end], &limits, &mut head) {
                Ok(Some(len)) => break len,
                Ok(None) => {}
                Err(_) => return Ok(()),
            }
            if start > 0 {
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
            }
            if end == buf.len() {
                return Ok(());
            }
            let n = stream.read(&mut buf[end..])?;
            if n == 0 {
                return Ok(());
            }
            end += n;
        };
        start += head_len;
        // Drop the body, whatever its framing.
        let mut decoder = BodyDecoder::new(head.body_framing());
        while !decoder.is_done() {
            if start == end {
                start = 0;
                end = stream.read(&mut buf)?;
                if end == 0 {
                    return Ok(());
                }
            }
            let Ok(step) = decoder.decode(&buf[start..end]) else {
                return Ok(());
            };
            start += step.consumed;
            if step.consumed == 0 && !decoder.is_done() {
                if start > 0 {
                    buf.copy_within(start..end, 0);
                    end -= start;
                    start = 0;
                }
                let n = stream.read(&mut buf[end..])?;
                if n == 0 {
                    return Ok(());
                }
                end += n;
            }
        }
        let keep_alive = !head
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let path = head.raw_path().to_owned();
        let segments = path.trim_start_matches('/').splitn(2, '/').count();
        let object_key = path
            .trim_start_matches('/')
            .split_once('/')
            .map(|(_, k)| percent_decode(k));
        out.clear();
        match (head.method(), object_key) {
            ("GET", Some(key)) if segments == 2 => {
                ResponseHead::new(200).header("ETag", "\"noop\"").write(
                    object_bytes,
                    keep_alive,
                    &mut out,
                );
                stream.write_all(&out)?;
                let seed = key_seed(&key);
                let mut offset = 0u64;
                while offset < object_bytes {
                    let slice = match pattern {
                        Some(p) => {
                            let n = (object_bytes - offset).min(PATTERN_BYTES as u64) as usize;
                            p.slice(seed, offset, n)
                        }
                        None => {
                            &ZEROS[..(object_bytes - offset).min(ZERO_WRITE_BYTES as u64) as usize]
                        }
                    };
                    stream.write_all(slice)?;
                    offset += slice.len() as u64;
                }
            }
            ("GET", _) => {
                let body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount></ListBucketResult>";
                ResponseHead::new(200)
                    .header("Content-Type", "application/xml")
                    .write(body.len() as u64, keep_alive, &mut out);
                out.extend_from_slice(body);
                stream.write_all(&out)?;
            }
            ("HEAD", _) => {
                let mut response = Vec::new();
                let text =
                    format!(
                    "HTTP/1.1 200 OK\r\nETag: \"noop\"\r\nContent-Length: {object_bytes}\r\n{}\r\n",
                    if keep_alive { "" } else { "Connection: close\r\n" }
                );
                response.extend_from_slice(text.as_bytes());
                stream.write_all(&response)?;
            }
            ("DELETE", _) => {
                ResponseHead::new(204).write(0, keep_alive, &mut out);
                stream.write_all(&out)?;
            }
            _ => {
                ResponseHead::new(200)
                    .header("ETag", "\"noop\"")
                    .write(0, keep_alive, &mut out);
                stream.write_all(&out)?;
            }
        }
        if !keep_alive {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_of_keys() {
        // Escapes decode, including UTF-8 and `%` itself; a truncated escape stays literal.
        assert_eq!(percent_decode("a%20b%2Bc%25"), "a b+c%");
        assert_eq!(percent_decode("%C3%A9"), "é");
        assert_eq!(percent_decode("x%2"), "x%2");
        assert_eq!(percent_decode("plain/key"), "plain/key");
    }
}
