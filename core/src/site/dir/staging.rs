//! Page-aligned staging buffers for `O_DIRECT` shard writes.
//!
//! A buffered write copies every byte into the page cache, and on this kind of machine that
//! copy is the largest single cost of a PUT: `dd` of 3 GiB spent 5.4 s of system time
//! buffered against 0.3 s with `O_DIRECT`. `O_DIRECT` needs the memory, the file offset and
//! the length aligned to the device's block, which the engine's chunk buffers (a chunk plus
//! an 8-byte checksum, at unaligned offsets) are not; so a direct writer copies its bytes
//! into one of these buffers (a user-space copy of hot memory, an order of magnitude cheaper
//! than the kernel's) and writes whole aligned blocks from it. The engine's chunks skip even
//! that copy (`write_chunk` with a `ChunkBuf`, see `site/chunk_buf.rs`): only the unaligned
//! tail between two chunks, under one block, waits here.
//!
//! Buffers are recycled per thread (each core is one thread): a fresh allocation would fault
//! in new pages, the very cost this avoids. Not here: deciding when to write directly (the
//! writer in `mod.rs` does).

use std::alloc::{self, Layout};
use std::cell::RefCell;
use std::ptr::NonNull;

/// Alignment of memory, file offsets and lengths of direct writes: a 4 KiB page, which is a
/// multiple of every common logical block size (512 B and 4 KiB).
pub const ALIGN: usize = crate::site::chunk_buf::IO_ALIGN;
/// Capacity of one staging buffer: the largest single direct write.
pub const STAGING_BYTES: usize = 256 * 1024;
/// Free buffers kept per thread; beyond it, returned buffers are freed.
const POOL_MAX: usize = 64;

fn layout() -> Layout {
    // Both are non-zero powers of two (or multiples of the alignment), so this cannot fail.
    Layout::from_size_align(STAGING_BYTES, ALIGN).expect("staging layout")
}

/// The free buffers of this thread, freed when the thread ends.
struct Pool(Vec<NonNull<u8>>);

impl Drop for Pool {
    fn drop(&mut self) {
        for ptr in self.0.drain(..) {
            // SAFETY: every pointer in the pool came from `alloc` with `layout()` and is owned
            // by the pool alone.
            unsafe { alloc::dealloc(ptr.as_ptr(), layout()) };
        }
    }
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool(Vec::new())) };
}

/// A `STAGING_BYTES` buffer aligned to [`ALIGN`], filled from the front.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

impl AlignedBuf {
    /// A buffer from this thread's pool, or a new one.
    #[must_use]
    pub fn take() -> AlignedBuf {
        let recycled = POOL.with(|pool| pool.borrow_mut().0.pop());
        let ptr = recycled.unwrap_or_else(|| {
            // SAFETY: the layout has a non-zero size.
            let raw = unsafe { alloc::alloc(layout()) };
            NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout()))
        });
        AlignedBuf { ptr, len: 0 }
    }

    /// Bytes held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when no more bytes fit.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.len == STAGING_BYTES
    }

    /// The held bytes that make whole aligned blocks.
    #[must_use]
    pub fn aligned_len(&self) -> usize {
        self.len / ALIGN * ALIGN
    }

    /// Appends as much of `src` as fits; returns how many bytes were taken.
    pub fn push(&mut self, src: &[u8]) -> usize {
        let n = src.len().min(STAGING_BYTES - self.len);
        // SAFETY: `len + n <= STAGING_BYTES`, the allocation's size, and `src` cannot overlap
        // memory this buffer owns exclusively.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(self.len), n);
        }
        self.len += n;
        n
    }

    /// Drops the first `n` held bytes, moving the rest to the front.
    pub fn consume_front(&mut self, n: usize) {
        let n = n.min(self.len);
        let rest = self.len - n;
        // SAFETY: both ranges lie within the first `len` bytes of the allocation; `copy`
        // allows overlap.
        unsafe { std::ptr::copy(self.ptr.as_ptr().add(n), self.ptr.as_ptr(), rest) };
        self.len = rest;
    }

    /// The held bytes.
    #[must_use]
    pub fn held(&self) -> &[u8] {
        // SAFETY: the first `len` bytes were written by `push`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let ptr = self.ptr;
        let kept = POOL
            .try_with(|pool| {
                let mut pool = pool.borrow_mut();
                if pool.0.len() < POOL_MAX {
                    pool.0.push(ptr);
                    true
                } else {
                    false
                }
            })
            .unwrap_or(false);
        if !kept {
            // SAFETY: allocated with `layout()` in `take` and not in the pool.
            unsafe { alloc::dealloc(ptr.as_ptr(), layout()) };
        }
    }
}

// SAFETY: the pointer stays valid and fixed for the buffer's life (the allocation never
// moves), and the first `len` bytes are initialized.
unsafe impl monoio::buf::IoBuf for AlignedBuf {
    fn read_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_filled_from_the_front_and_recycled() {
        let mut buf = AlignedBuf::take();
        assert_eq!(buf.ptr.as_ptr() as usize % ALIGN, 0);
        let data: Vec<u8> = (0..ALIGN + 100).map(|i| (i % 251) as u8).collect();
        assert_eq!(buf.push(&data), data.len());
        assert_eq!(buf.aligned_len(), ALIGN);
        buf.consume_front(ALIGN);
        assert_eq!(buf.held(), &data[ALIGN..]);
        let big = vec![7_u8; STAGING_BYTES];
        assert_eq!(buf.push(&big), STAGING_BYTES - 100);
        assert!(buf.is_full());
        let ptr = buf.ptr;
        drop(buf);
        // The freed buffer is the next one handed out on this thread.
        let again = AlignedBuf::take();
        assert_eq!(again.ptr, ptr);
        assert!(again.is_empty());
    }
}
