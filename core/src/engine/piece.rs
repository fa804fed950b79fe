//! A piece of an object as read: byte ranges of the shard buffers the sites filled, in object
//! order, without copying them into one buffer.
//!
//! A GET of a 2+1 object reads each data shard's chunks (each followed by its checksum) into
//! one buffer per shard; the object's bytes are those chunks interleaved, without the
//! checksums. Copying them into one contiguous buffer cost 12 % of a 64 MiB GET's CPU;
//! instead a `Piece` keeps the buffers and the list of ranges, and the connection hands the
//! kernel one `iovec` per range ([`PieceIo`], a vectored write). Consumers that need one
//! buffer (a copy, a repair) flatten it with [`Piece::into_vec`].

use std::ops::Range;

/// Object bytes as ranges of owned buffers.
#[derive(Debug, Default)]
pub struct Piece {
    buffers: Vec<Vec<u8>>,
    /// (index into `buffers`, range of it), in object order.
    slices: Vec<(usize, Range<usize>)>,
    len: usize,
}

impl Piece {
    /// A piece of one whole buffer.
    #[must_use]
    pub fn whole(buffer: Vec<u8>) -> Self {
        let len = buffer.len();
        Piece {
            slices: if len == 0 {
                Vec::new()
            } else {
                vec![(0, 0..len)]
            },
            buffers: vec![buffer],
            len,
        }
    }

    /// Adds `buffer` (its bytes are referred to by later [`Piece::push_slice`] calls with the
    /// returned index).
    pub fn add_buffer(&mut self, buffer: Vec<u8>) -> usize {
        self.buffers.push(buffer);
        self.buffers.len() - 1
    }

    /// Appends `range` of buffer `buffer` to the piece's bytes.
    ///
    /// # Panics
    /// If the buffer or the range does not exist.
    pub fn push_slice(&mut self, buffer: usize, range: Range<usize>) {
        assert!(
            range.end <= self.buffers[buffer].len(),
            "slice past its buffer"
        );
        if range.is_empty() {
            return;
        }
        self.len += range.len();
        if let Some((last, previous)) = self.slices.last_mut() {
            if *last == buffer && previous.end == range.start {
                previous.end = range.end;
                return;
            }
        }
        self.slices.push((buffer, range));
    }

    /// Bytes in the piece.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Number of slices (`iovec`s of a vectored write).
    #[must_use]
    pub fn slice_count(&self) -> usize {
        self.slices.len()
    }

    /// True when the piece holds no bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes, slice by slice, in order.
    pub fn slices(&self) -> impl Iterator<Item = &[u8]> {
        self.slices
            .iter()
            .map(|(buffer, range)| &self.buffers[*buffer][range.clone()])
    }

    /// The bytes in one buffer (a copy unless the piece is one whole buffer), and the buffers
    /// no longer needed (for the caller's pool).
    #[must_use]
    pub fn into_vec(mut self) -> (Vec<u8>, Vec<Vec<u8>>) {
        if let [(0, range)] = self.slices.as_slice() {
            if self.buffers.len() == 1 && range.start == 0 && range.end == self.buffers[0].len() {
                let buffer = self.buffers.pop().unwrap_or_default();
                return (buffer, Vec::new());
            }
        }
        let mut out = Vec::with_capacity(self.len);
        for slice in self.slices() {
            out.extend_from_slice(slice);
        }
        (out, self.buffers)
    }

    /// The buffers, for the caller's pool.
    #[must_use]
    pub fn into_buffers(self) -> Vec<Vec<u8>> {
        self.buffers
    }
}

/// Most `iovec`s one vectored write takes (Linux's `IOV_MAX`); a piece of more slices goes
/// out in several writes.
const IOVECS_PER_WRITE: usize = 1024;

/// A [`Piece`] as the `iovec` array of vectored writes, advanced past what was written.
///
/// (monoio 0.2.4's `write_vectored_all` does not advance an `iovec` it wrote partly, and
/// resends its start: the caller loops over `writev` with [`PieceIo::advance`] instead.)
pub struct PieceIo {
    piece: Piece,
    iovecs: Vec<libc::iovec>,
    /// The first `iovec` not completely written.
    first: usize,
}

impl PieceIo {
    /// The piece's slices as `iovec`s.
    #[must_use]
    pub fn new(piece: Piece) -> Self {
        let iovecs = piece
            .slices()
            .map(|slice| libc::iovec {
                iov_base: slice.as_ptr().cast_mut().cast(),
                iov_len: slice.len(),
            })
            .collect();
        PieceIo {
            piece,
            iovecs,
            first: 0,
        }
    }

    /// Bytes not written yet.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.iovecs[self.first..].iter().map(|v| v.iov_len).sum()
    }

    /// Marks `n` more bytes written (at most [`PieceIo::remaining`]).
    pub fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(iovec) = self.iovecs.get_mut(self.first) else {
                return;
            };
            if iovec.iov_len <= n {
                n -= iovec.iov_len;
                self.first += 1;
            } else {
                // SAFETY: `n < iov_len`, so the new base stays inside the same slice.
                iovec.iov_base = unsafe { iovec.iov_base.cast::<u8>().add(n) }.cast();
                iovec.iov_len -= n;
                n = 0;
            }
        }
    }

    /// The piece back.
    #[must_use]
    pub fn into_piece(self) -> Piece {
        self.piece
    }
}

// SAFETY: the iovecs point into the piece's buffers, which this value owns and never touches
// while it lives (a `Vec`'s heap memory does not move when the `Vec` value moves), and the
// iovec array itself is a `Vec` that is not modified after construction.
unsafe impl monoio::buf::IoVecBuf for PieceIo {
    fn read_iovec_ptr(&self) -> *const libc::iovec {
        self.iovecs[self.first..].as_ptr()
    }

    fn read_iovec_len(&self) -> usize {
        (self.iovecs.len() - self.first).min(IOVECS_PER_WRITE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_in_order_merge_adjacent_and_flatten() {
        let mut piece = Piece::default();
        let a = piece.add_buffer(b"0123456789".to_vec());
        let b = piece.add_buffer(b"abcdefghij".to_vec());
        piece.push_slice(a, 0..3);
        piece.push_slice(b, 2..4);
        piece.push_slice(b, 4..6);
        piece.push_slice(a, 5..5);
        piece.push_slice(a, 8..10);
        assert_eq!((piece.len(), piece.slice_count()), (9, 3));
        let joined: Vec<&[u8]> = piece.slices().collect();
        assert_eq!(joined, [&b"012"[..], b"cdef", b"89"]);
        let mut io = PieceIo::new(piece);
        assert_eq!(io.iovecs.len(), 3);
        assert_eq!(io.iovecs[1].iov_len, 4);
        // Partly written: the next write starts exactly after the written bytes.
        io.advance(4);
        assert_eq!(io.remaining(), 5);
        let next = |io: &PieceIo| {
            use monoio::buf::IoVecBuf as _;
            // SAFETY: the pointer and length describe live iovecs into the piece's buffers.
            let first = unsafe { &*io.read_iovec_ptr() };
            // SAFETY: as above; `first` points into the piece's buffers.
            let bytes =
                unsafe { std::slice::from_raw_parts(first.iov_base.cast::<u8>(), first.iov_len) };
            (io.read_iovec_len(), bytes.to_vec())
        };
        assert_eq!(next(&io), (2, b"def".to_vec()));
        io.advance(3);
        assert_eq!(next(&io), (1, b"89".to_vec()));
        io.advance(2);
        assert_eq!(io.remaining(), 0);
        let (flat, spare) = io.into_piece().into_vec();
        assert_eq!(flat, b"012cdef89");
        assert_eq!(spare.len(), 2);
        let (whole, spare) = Piece::whole(b"xyz".to_vec()).into_vec();
        assert_eq!((whole.as_slice(), spare.len()), (&b"xyz"[..], 0));
        assert!(Piece::whole(Vec::new()).is_empty());
    }

    #[test]
    fn one_write_takes_at_most_iov_max_slices() {
        use monoio::buf::IoVecBuf as _;
        let mut piece = Piece::default();
        let buffer = piece.add_buffer(vec![7; 3000]);
        // Every other byte: 1500 slices that cannot merge.
        for i in 0..1500 {
            piece.push_slice(buffer, 2 * i..2 * i + 1);
        }
        let mut io = PieceIo::new(piece);
        assert_eq!(io.read_iovec_len(), IOVECS_PER_WRITE);
        io.advance(IOVECS_PER_WRITE);
        assert_eq!(io.read_iovec_len(), 1500 - IOVECS_PER_WRITE);
        assert_eq!(io.remaining(), 1500 - IOVECS_PER_WRITE);
    }
}
