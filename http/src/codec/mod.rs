//! Sans-I/O HTTP/1.1 codec: request heads in, body bytes out, response heads written.
//!
//! ```text
//!  socket bytes ─► head::parse_head ─► RequestHead (reused, no allocation after warm-up)
//!                        │
//!                        ▼
//!                 body::BodyDecoder ─► payload slices of the input (no copy)
//!  Response ◄──── response::write_head (status line + headers into a reused Vec)
//! ```
//!
//! The codec never reads or writes a socket and never buffers a body: the connection loop in
//! `tessera-core` owns the buffers and feeds them through here.

pub mod body;
pub mod head;
pub mod response;

pub use body::{BodyDecoder, BodyError, Decoded};
pub use head::{HeadError, HeadLimits, RequestHead};
pub use response::{reason_phrase, write_continue, ResponseHead};
