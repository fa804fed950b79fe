//! Socket reads that wake once much of a known-length body has arrived, not at every segment.
//!
//! A body of known length goes into a buffer that is used only once it is full (a ranged GET's
//! shard chunk, a PUT's stripe chunk). A plain read completes with whatever has arrived, which
//! on a fast link is a segment or two (about 90 KiB on loopback), so a 1 MiB body costs a dozen
//! reads, each a completion, a task wake-up and often a thread switch. Raising the socket's
//! receive low-water mark (`SO_RCVLOWAT`) to the bytes still to come and waiting for
//! readability first lets one read take them all.
//!
//! The mark must never exceed what the peer is sure to send, or the wait would only end at a
//! timeout: callers pass the remaining length of a framed body, and every other read resets the
//! mark first ([`RecvLowat::reset`]). A peer too slow to fill the mark within
//! [`WAIT_MAX`] is read as before, so time-outs and latency keep their meaning. The kernel
//! itself wakes a reader early when the receive buffer cannot hold the mark (memory pressure,
//! a locked `SO_RCVBUF`), and at end of stream or on an error.
//!
//! This does not change what is read, only when a read completes; it works on plain TCP
//! sockets (a TLS stream applies it to its ciphertext socket with a record of slack).

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use monoio::net::TcpStream;

/// Most bytes one wait asks for. Raising the mark also raises the socket's receive buffer to
/// hold it (the kernel does that), so this bounds how far one connection's buffer grows for it.
pub const MARK_MAX_BYTES: usize = 1 << 20;

/// Fewer bytes than this still to come: an ordinary read (the mark would save little).
pub const MARK_MIN_BYTES: usize = 64 << 10;

/// Longest wait for the mark before reading what has arrived.
pub const WAIT_MAX: Duration = Duration::from_millis(50);

/// A socket's receive low-water mark as this side last set it.
#[derive(Debug, Default)]
pub struct RecvLowat {
    /// 0 or 1: the kernel's default (wake at every byte).
    mark: usize,
}

impl RecvLowat {
    /// Waits until `tcp` holds `to_come` unread bytes (capped at [`MARK_MAX_BYTES`]), for at
    /// most [`WAIT_MAX`]; `to_come` must be bytes the peer is sure to send. Returns at once
    /// when fewer than [`MARK_MIN_BYTES`] are to come.
    pub async fn wait(&mut self, tcp: &TcpStream, to_come: usize) -> io::Result<()> {
        if to_come < MARK_MIN_BYTES {
            return self.reset(tcp);
        }
        if self.set(tcp, to_come.min(MARK_MAX_BYTES)).is_err() {
            // The kernel kept the previous mark, which may be more than is still to come:
            // back to the default, and an ordinary read.
            return self.reset(tcp);
        }
        match monoio::time::timeout(WAIT_MAX, tcp.readable(false)).await {
            Ok(ready) => ready,
            // Slower than the mark: read what there is (the caller's own timeout runs on).
            // The mark goes back to the default first: the epoll driver only reads after a
            // readiness event, which the kernel holds back until the mark is met.
            Err(_) => self.reset(tcp),
        }
    }

    /// Back to waking at every byte: before any read whose length is not known to come.
    pub fn reset(&mut self, tcp: &TcpStream) -> io::Result<()> {
        if self.mark > 1 {
            self.set(tcp, 1)?;
        }
        Ok(())
    }

    fn set(&mut self, tcp: &TcpStream, bytes: usize) -> io::Result<()> {
        if self.mark == bytes {
            return Ok(());
        }
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: a valid socket descriptor (owned by `tcp`), a c_int option value and its size.
        let rc = unsafe {
            libc::setsockopt(
                tcp.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&raw const value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        self.mark = bytes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::time::Instant;

    use monoio::io::AsyncReadRent as _;

    use super::*;

    /// Runs the test on io_uring and on the epoll driver the gateway falls back to.
    fn run<F: std::future::Future<Output = ()>>(test: impl Fn() -> F) {
        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
            .expect("io_uring runtime")
            .block_on(test());
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("epoll runtime")
            .block_on(test());
    }

    /// A connected pair: the monoio side to read, and a std peer driven by `peer` on a thread.
    async fn pair(
        peer: impl FnOnce(std::net::TcpStream) + Send + 'static,
    ) -> (TcpStream, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let thread = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            peer(stream);
        });
        let tcp = TcpStream::connect_addr(address).await.expect("connect");
        (tcp, thread)
    }

    async fn read(tcp: &mut TcpStream, len: usize) -> usize {
        let (n, _) = tcp.read(Vec::with_capacity(len)).await;
        n.expect("read")
    }

    /// A body sent in four parts with pauses arrives in one read after the wait; without the
    /// mark the read would complete with the first part. (The connection is warmed up first:
    /// the kernel also wakes a reader when the receive window closes, and a new connection's
    /// window is about 64 KiB.)
    #[test]
    fn one_read_takes_a_body_sent_in_parts() {
        const WARM_UP: usize = 32 << 20;
        const BODY: usize = 256 << 10;
        run(|| async {
            let (drained, wait_drained) = std::sync::mpsc::channel::<()>();
            let (mut tcp, peer) = pair(move |mut stream| {
                stream.write_all(&vec![1u8; WARM_UP]).expect("send");
                wait_drained.recv().expect("reader drained the warm-up");
                for _ in 0..4 {
                    std::thread::sleep(Duration::from_millis(2));
                    stream.write_all(&vec![7u8; BODY / 4]).expect("send");
                }
                std::thread::sleep(Duration::from_millis(200));
            })
            .await;
            let mut left = WARM_UP;
            while left > 0 {
                left -= read(&mut tcp, left.min(1 << 20)).await;
            }
            drained.send(()).expect("peer");
            let started = Instant::now();
            let mut lowat = RecvLowat::default();
            lowat.wait(&tcp, BODY).await.expect("wait");
            assert!(
                started.elapsed() < WAIT_MAX,
                "the mark was met before the cap"
            );
            assert_eq!(read(&mut tcp, BODY).await, BODY);
            peer.join().expect("peer");
        });
    }

    /// A peer slower than the mark is read after `WAIT_MAX`, not when the mark is reached.
    #[test]
    fn a_slow_peer_is_read_after_the_wait_cap() {
        run(|| async {
            let (mut tcp, peer) = pair(|mut stream| {
                stream.write_all(&vec![7u8; 100 << 10]).expect("send");
                std::thread::sleep(Duration::from_millis(1500));
                stream.write_all(&vec![7u8; 100 << 10]).expect("send");
            })
            .await;
            let started = Instant::now();
            let mut lowat = RecvLowat::default();
            lowat.wait(&tcp, 200 << 10).await.expect("wait");
            let n = read(&mut tcp, 200 << 10).await;
            assert!(n > 0 && n <= 100 << 10, "read {n} bytes");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?}",
                started.elapsed()
            );
            // Drain the rest so the peer's second write completes.
            let mut left = (200 << 10) - n;
            while left > 0 {
                left -= read(&mut tcp, left).await;
            }
            peer.join().expect("peer");
        });
    }

    /// After a body, `reset` lets a read of a few bytes (the next head) complete: with the
    /// mark left high it would wait for bytes that never come.
    #[test]
    fn reset_lets_a_small_read_complete() {
        const BODY: usize = 512 << 10;
        run(|| async {
            let (mut tcp, peer) = pair(|mut stream| {
                stream.write_all(&vec![7u8; BODY]).expect("send");
                std::thread::sleep(Duration::from_millis(100));
                stream.write_all(b"HTTP/1.1").expect("send");
                std::thread::sleep(Duration::from_secs(3));
            })
            .await;
            let mut lowat = RecvLowat::default();
            let mut left = BODY;
            while left > 0 {
                lowat.wait(&tcp, left).await.expect("wait");
                left -= read(&mut tcp, left).await;
            }
            lowat.reset(&tcp).expect("reset");
            let head = monoio::time::timeout(Duration::from_millis(1500), read(&mut tcp, 4096));
            assert_eq!(head.await.expect("the small read completes"), 8);
            peer.join().expect("peer");
        });
    }
}
