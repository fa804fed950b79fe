//! Chunk buffers: the page-aligned buffers a PUT fills with one chunk of a shard (payload plus
//! checksum trailer) and hands to the shard's writer, with room in front for bytes the writer
//! still holds.
//!
//! A dir site writing with `O_DIRECT` can only write whole aligned blocks from aligned memory,
//! and a shard's chunks (a chunk plus an 8-byte checksum) end at unaligned offsets. Copying
//! every chunk into an aligned staging buffer cost ~0.2 CPU-s/GiB of PUT (16 % of the
//! gateway's CPU in a profile of 64 MiB PUTs). Instead the writer reports its *head room*
//! (the unaligned tail of what it wrote so far, under one block), the engine fills the payload
//! after that much room, and the writer copies its tail in front and writes the aligned part
//! straight from this buffer: under 4 KiB copied per chunk instead of the whole chunk.
//!
//! Buffers are recycled per thread (each core is one thread), up to [`POOL_BYTES_MAX`]: a
//! fresh allocation of a megabyte faults in its pages, which costs more than the copy saved.
//! Memory is zeroed when allocated, so every byte is always initialized. Not here: deciding
//! the head room (the writer does) or what goes in the payload (the engine does).

use std::alloc::{self, Layout};
use std::cell::RefCell;
use std::ops::Range;
use std::ptr::NonNull;

/// Alignment of a buffer's memory and the granule of `O_DIRECT` writes: a 4 KiB page, a
/// multiple of every common logical block size (512 B and 4 KiB).
pub const IO_ALIGN: usize = 4096;

/// Most bytes of free buffers one thread keeps; beyond it, returned buffers are freed.
pub const POOL_BYTES_MAX: usize = 48 << 20;

fn layout(capacity: usize) -> Layout {
    // `capacity` is a non-zero multiple of the alignment, a power of two.
    Layout::from_size_align(capacity, IO_ALIGN).expect("chunk buffer layout")
}

/// The free buffers of this thread (pointer and capacity), freed when the thread ends.
struct Pool {
    free: Vec<(NonNull<u8>, usize)>,
    bytes: usize,
}

impl Drop for Pool {
    fn drop(&mut self) {
        for (ptr, capacity) in self.free.drain(..) {
            // SAFETY: every buffer in the pool was allocated with `layout(capacity)` and is
            // owned by the pool alone.
            unsafe { alloc::dealloc(ptr.as_ptr(), layout(capacity)) };
        }
    }
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { free: Vec::new(), bytes: 0 }) };
}

/// Bytes a shard writer stores: a plain `Vec` (all of it) or a [`ChunkBuf`] (its payload).
pub trait ShardBytes: monoio::buf::IoBuf + 'static {
    /// What to store.
    fn payload(&self) -> &[u8];
    /// Where the payload lies in the buffer's [`monoio::buf::IoBuf`] view.
    fn payload_range(&self) -> Range<usize>;
    /// The capacity [`ShardBytes::replacement`] takes to stand in for this buffer.
    fn replacement_capacity(&self) -> usize;
    /// An empty buffer standing in for one whose [`ShardBytes::replacement_capacity`] was
    /// `capacity`, handed back when an abandoned write kept the original. Made only then: a
    /// write that completes allocates nothing.
    #[must_use]
    fn replacement(capacity: usize) -> Self;
}

impl ShardBytes for Vec<u8> {
    fn payload(&self) -> &[u8] {
        self
    }

    fn payload_range(&self) -> Range<usize> {
        0..self.len()
    }

    fn replacement_capacity(&self) -> usize {
        self.capacity()
    }

    fn replacement(capacity: usize) -> Self {
        Vec::with_capacity(capacity)
    }
}

impl ShardBytes for ChunkBuf {
    fn payload(&self) -> &[u8] {
        ChunkBuf::payload(self)
    }

    fn payload_range(&self) -> Range<usize> {
        ChunkBuf::payload_range(self)
    }

    fn replacement_capacity(&self) -> usize {
        self.capacity - IO_ALIGN
    }

    fn replacement(payload_max: usize) -> Self {
        ChunkBuf::take(payload_max)
    }
}

/// An aligned buffer holding `head` bytes of room, then a payload; `len` bytes in all.
///
/// As an [`monoio::buf::IoBuf`] it is the whole `0..len`, head included, which is what a
/// direct writer sends once it has filled the head; [`ChunkBuf::payload_range`] is the payload.
pub struct ChunkBuf {
    ptr: NonNull<u8>,
    capacity: usize,
    head: usize,
    len: usize,
}

impl std::fmt::Debug for ChunkBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkBuf")
            .field("capacity", &self.capacity)
            .field("head", &self.head)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl ChunkBuf {
    /// An empty buffer (no head room) that can take a payload of `payload_max` bytes after up
    /// to [`IO_ALIGN`] bytes of head room; from this thread's pool when one of that size is free.
    #[must_use]
    pub fn take(payload_max: usize) -> ChunkBuf {
        let capacity = (payload_max + IO_ALIGN).div_ceil(IO_ALIGN) * IO_ALIGN;
        let recycled = POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            let at = pool.free.iter().rposition(|&(_, c)| c == capacity)?;
            pool.bytes -= capacity;
            Some(pool.free.swap_remove(at).0)
        });
        let ptr = recycled.unwrap_or_else(|| {
            // SAFETY: the layout has a non-zero size.
            let raw = unsafe { alloc::alloc_zeroed(layout(capacity)) };
            NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout(capacity)))
        });
        ChunkBuf {
            ptr,
            capacity,
            head: 0,
            len: 0,
        }
    }

    /// A buffer holding a copy of `bytes` (no head room).
    #[must_use]
    pub fn copy_of(bytes: &[u8]) -> ChunkBuf {
        let mut buf = ChunkBuf::take(bytes.len());
        buf.extend_from_slice(bytes);
        buf
    }

    /// Empties the buffer and leaves `head` bytes of room in front of the payload.
    ///
    /// # Panics
    /// If `head` is more than [`IO_ALIGN`].
    pub fn reset(&mut self, head: usize) {
        assert!(head <= IO_ALIGN, "head room {head} exceeds {IO_ALIGN}");
        self.head = head;
        self.len = head;
    }

    /// Bytes of room in front of the payload.
    #[must_use]
    pub fn head(&self) -> usize {
        self.head
    }

    /// Where the payload lies: `head..len`.
    #[must_use]
    pub fn payload_range(&self) -> Range<usize> {
        self.head..self.len
    }

    /// Most payload bytes this buffer can hold after its current head room.
    #[must_use]
    pub fn payload_max(&self) -> usize {
        self.capacity - self.head
    }

    /// The payload.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.all()[self.head..]
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let head = self.head;
        &mut self.all_mut()[head..]
    }

    /// Sets the payload's length. Bytes it grows by keep whatever the buffer held before
    /// (always initialized, not necessarily zero): the caller overwrites them.
    ///
    /// # Panics
    /// If the payload would not fit.
    pub fn set_payload_len(&mut self, n: usize) {
        assert!(n <= self.payload_max(), "payload of {n} bytes does not fit");
        self.len = self.head + n;
    }

    /// Appends `bytes` to the payload.
    ///
    /// # Panics
    /// If they do not fit.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        let start = self.len - self.head;
        self.set_payload_len(start + bytes.len());
        self.payload_mut()[start..].copy_from_slice(bytes);
    }

    /// The head room, writable (for the writer's held bytes).
    pub fn head_mut(&mut self) -> &mut [u8] {
        let head = self.head;
        &mut self.all_mut()[..head]
    }

    /// Bytes `0..len`: head room then payload.
    #[must_use]
    pub fn all(&self) -> &[u8] {
        // SAFETY: the allocation is `capacity` bytes, all initialized (zeroed at allocation,
        // written only through safe slices since), and `len <= capacity`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    fn all_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `all`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// True if the memory starts on an [`IO_ALIGN`] boundary (always; for tests).
    #[must_use]
    pub fn is_aligned(&self) -> bool {
        self.ptr.as_ptr() as usize % IO_ALIGN == 0
    }
}

impl Drop for ChunkBuf {
    fn drop(&mut self) {
        let (ptr, capacity) = (self.ptr, self.capacity);
        let kept = POOL
            .try_with(|pool| {
                let mut pool = pool.borrow_mut();
                if pool.bytes + capacity <= POOL_BYTES_MAX {
                    pool.bytes += capacity;
                    pool.free.push((ptr, capacity));
                    true
                } else {
                    false
                }
            })
            .unwrap_or(false);
        if !kept {
            // SAFETY: allocated with `layout(capacity)` in `take` and not in the pool.
            unsafe { alloc::dealloc(ptr.as_ptr(), layout(capacity)) };
        }
    }
}

// SAFETY: the pointer stays valid and fixed for the buffer's life (the allocation never
// moves), and the first `len` bytes are initialized.
unsafe impl monoio::buf::IoBuf for ChunkBuf {
    fn read_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len
    }
}

// SAFETY: writes through `write_ptr` stay within `capacity` (`bytes_total`), and every byte
// of the allocation is initialized, so growing `len` to any `pos <= capacity` is sound; a
// read into the middle of the payload never shrinks it.
unsafe impl monoio::buf::IoBufMut for ChunkBuf {
    fn write_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn bytes_total(&mut self) -> usize {
        self.capacity
    }

    unsafe fn set_init(&mut self, pos: usize) {
        self.len = self.len.max(pos.min(self.capacity));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_room_payload_and_recycling() {
        let mut buf = ChunkBuf::take(10_000);
        assert!(buf.is_aligned());
        buf.reset(IO_ALIGN);
        assert!(buf.payload_max() >= 10_000);
        buf.reset(100);
        buf.extend_from_slice(b"abc");
        buf.extend_from_slice(b"de");
        assert_eq!(buf.payload(), b"abcde");
        assert_eq!(buf.payload_range(), 100..105);
        buf.head_mut().fill(7);
        assert_eq!(buf.all()[..100], [7; 100]);
        assert_eq!(&buf.all()[100..], b"abcde");
        buf.set_payload_len(2);
        assert_eq!(buf.payload(), b"ab");
        let ptr = buf.ptr;
        drop(buf);
        // The freed buffer is the next one of that size handed out on this thread.
        let mut again = ChunkBuf::take(10_000);
        assert_eq!(again.ptr, ptr);
        assert!(again.payload().is_empty());
        assert_eq!(again.head(), 0);
        // A grown payload shows old bytes, never uninitialized memory.
        again.set_payload_len(5);
        assert_eq!(&again.payload()[..2], &[7, 7]);
        let other = ChunkBuf::copy_of(&[1; 5000]);
        assert_ne!(other.ptr, ptr);
        assert_eq!(other.payload(), &[1; 5000][..]);
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn overflow_is_refused() {
        let mut buf = ChunkBuf::take(10);
        buf.reset(IO_ALIGN);
        buf.set_payload_len(buf.payload_max() + 1);
    }
}
