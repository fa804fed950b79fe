//! The admin listener (core 0): `GET /health` and `GET /metrics` (Prometheus text).
//!
//! Plain HTTP/1.1 on its own port, one request per connection; it is for operators and
//! monitoring, not for S3 clients, and carries no credentials, so it must listen on a private
//! address (the default is 127.0.0.1).

use std::rc::Rc;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt as _};
use tessera_http::codec::{self, HeadLimits, RequestHead, ResponseHead};

use super::CoreCtx;
use crate::metrics::render_prometheus;

/// Serves the admin API until the listener is shut down.
pub async fn run(ctx: Rc<CoreCtx>, listener: monoio::net::TcpListener) {
    loop {
        let accepted = listener.accept().await;
        if ctx.shared.is_shutting_down() {
            return;
        }
        let Ok((stream, _)) = accepted else { continue };
        let ctx = Rc::clone(&ctx);
        monoio::spawn(async move {
            let _ =
                monoio::time::timeout(std::time::Duration::from_secs(10), serve_one(&ctx, stream))
                    .await;
        });
    }
}

async fn serve_one(ctx: &CoreCtx, mut stream: monoio::net::TcpStream) {
    let mut buf = Vec::with_capacity(8192);
    let mut head = RequestHead::default();
    let limits = HeadLimits::default();
    loop {
        let len = buf.len();
        let (result, slice) = stream
            .read(monoio::buf::IoBufMut::slice_mut(buf, len..8192))
            .await;
        buf = slice.into_inner();
        match result {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        match codec::head::parse_head(&buf, &limits, &mut head) {
            Ok(Some(_)) => break,
            Ok(None) if buf.len() < 8192 => {}
            _ => return,
        }
    }
    let (status, content_type, body) = match (head.method(), head.raw_path()) {
        ("GET", "/health") => {
            let status = if ctx.shared.is_shutting_down() {
                503
            } else {
                200
            };
            (
                status,
                "text/plain",
                if status == 200 {
                    "ok\n".to_owned()
                } else {
                    "shutting down\n".to_owned()
                },
            )
        }
        ("GET", "/metrics") => (
            200,
            "text/plain; version=0.0.4",
            render_prometheus(&ctx.shared.metrics),
        ),
        _ => (404, "text/plain", "not found\n".to_owned()),
    };
    let mut response = ResponseHead::new(status);
    response.header("Content-Type", content_type);
    let mut out = Vec::with_capacity(body.len() + 128);
    response.write(body.len() as u64, false, &mut out);
    out.extend_from_slice(body.as_bytes());
    let _ = stream.write_all(out).await;
}
