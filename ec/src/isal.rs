//! The only file that calls ISA-L: thin safe wrappers over `erasure-isa-l-sys`.
//!
//! Every function here checks the sizes ISA-L would otherwise trust blindly, so that the rest
//! of the crate is safe Rust. ISA-L is linked statically from the vendored 2.32 sources (see the
//! workspace `Cargo.toml`), whose multibinary dispatcher picks the AVX-512 + GFNI kernels at
//! run time on CPUs that have them.
//!
//! ```text
//!   codec.rs ──(matrix, tables, &[&[u8]], &mut [&mut [u8]])──► isal.rs ──(raw pointers)──► libisal.a
//! ```

use core::ffi::c_int;

use erasure_isa_l_sys as sys;

use crate::SHARDS_MAX;

/// Bytes of expanded table that `ec_init_tables` writes per matrix coefficient (ISA-L ≥ 2.32
/// always uses 32, whichever kernel is selected; see its release notes).
pub(crate) const TABLE_BYTES_PER_COEFFICIENT: usize = 32;

/// A count or length as ISA-L's `int`. Every caller passes a value bounded by `SHARDS_MAX` or
/// `CHUNK_SIZE_MAX` (checked before the call), so the conversion cannot fail.
fn int(n: usize) -> c_int {
    c_int::try_from(n).expect("ISA-L argument bounded by SHARDS_MAX or CHUNK_SIZE_MAX")
}

/// Multiplies two elements of GF(2^8) with ISA-L's field (polynomial 0x11d).
pub(crate) fn gf_mul(a: u8, b: u8) -> u8 {
    // SAFETY: `gf_mul` is a pure function of two bytes; it reads ISA-L's static log tables only.
    unsafe { sys::gf_mul(a, b) }
}

/// Fills `matrix` (`rows` × `k`, row major) with ISA-L's systematic Cauchy matrix: the identity
/// on top, then `rows - k` rows of `1 / (i ^ j)`. Every `k` × `k` sub-matrix is invertible.
pub(crate) fn gen_cauchy_matrix(matrix: &mut [u8], rows: usize, k: usize) {
    assert!(k >= 1 && (k..=SHARDS_MAX).contains(&rows));
    assert_eq!(matrix.len(), rows * k);
    // SAFETY: `matrix` holds exactly `rows * k` bytes, which is all ISA-L writes; both counts are
    // at most 32, so the `c_int` conversions are exact.
    unsafe { sys::gf_gen_cauchy1_matrix(matrix.as_mut_ptr(), int(rows), int(k)) }
}

/// Inverts the `n` × `n` matrix in `input` into `output`. `input` is destroyed (ISA-L reduces it
/// in place). Returns false when the matrix is singular.
pub(crate) fn invert_matrix(input: &mut [u8], output: &mut [u8], n: usize) -> bool {
    assert!((1..=SHARDS_MAX).contains(&n));
    assert_eq!(input.len(), n * n);
    assert_eq!(output.len(), n * n);
    // SAFETY: both buffers hold exactly `n * n` bytes, the extent ISA-L reads and writes; `n` is
    // at most 32.
    let rc = unsafe { sys::gf_invert_matrix(input.as_mut_ptr(), output.as_mut_ptr(), int(n)) };
    rc == 0
}

/// Expands a `rows` × `k` coefficient matrix into the multiplication tables the kernels use.
pub(crate) fn init_tables(k: usize, rows: usize, matrix: &[u8], tables: &mut [u8]) {
    assert!((1..=SHARDS_MAX).contains(&k) && rows <= SHARDS_MAX);
    assert_eq!(matrix.len(), rows * k);
    assert_eq!(tables.len(), TABLE_BYTES_PER_COEFFICIENT * k * rows);
    if rows == 0 {
        return;
    }
    // SAFETY: ISA-L reads `rows * k` coefficients and writes `32 * k * rows` table bytes, exactly
    // the lengths asserted above. It takes `*mut` for the matrix but only reads it.
    unsafe {
        sys::ec_init_tables(
            int(k),
            int(rows),
            matrix.as_ptr().cast_mut(),
            tables.as_mut_ptr(),
        );
    }
}

/// Computes `outputs[r] = Σ_j coefficient(r, j) · sources[j]` over GF(2^8) for every byte
/// position, with `tables` from [`init_tables`] for a matrix of `outputs.len()` × `sources.len()`.
///
/// Lengths need no alignment: ISA-L's AVX-512 kernels finish a tail with a masked 64-byte
/// step, and its AVX2/SSE entry points fall back to the scalar kernel below one vector. A length
/// of zero is skipped here so no pointer to an empty slice ever reaches C.
pub(crate) fn encode_data(tables: &[u8], sources: &[&[u8]], outputs: &mut [&mut [u8]]) {
    let k = sources.len();
    let rows = outputs.len();
    assert!((1..=SHARDS_MAX).contains(&k) && rows <= SHARDS_MAX);
    assert_eq!(tables.len(), TABLE_BYTES_PER_COEFFICIENT * k * rows);
    let len = sources[0].len();
    assert!(sources.iter().all(|s| s.len() == len));
    assert!(outputs.iter().all(|o| o.len() == len));
    if rows == 0 || len == 0 {
        return;
    }
    let mut source_ptrs = [core::ptr::null_mut::<u8>(); SHARDS_MAX];
    for (ptr, source) in source_ptrs.iter_mut().zip(sources) {
        *ptr = source.as_ptr().cast_mut();
    }
    let mut output_ptrs = [core::ptr::null_mut::<u8>(); SHARDS_MAX];
    for (ptr, output) in output_ptrs.iter_mut().zip(outputs.iter_mut()) {
        *ptr = output.as_mut_ptr();
    }
    // SAFETY: every pointer addresses `len` valid bytes (asserted above); the sources are only
    // read (ISA-L's `unsigned char **` is not const-qualified, but the kernels never store
    // through it); the outputs are distinct `&mut` borrows, so they alias neither each other nor
    // a source; `tables` has the size ISA-L reads for `k` × `rows` coefficients.
    unsafe {
        sys::ec_encode_data(
            int(len),
            int(k),
            int(rows),
            tables.as_ptr().cast_mut(),
            source_ptrs.as_mut_ptr(),
            output_ptrs.as_mut_ptr(),
        );
    }
}

#[cfg(target_arch = "x86_64")]
extern "C" {
    // Declared here because the sys crate's bindings leave out `crc64.h`; libisal.a (built
    // from the same vendored sources) defines it. AVX2 + VPCLMULQDQ only: no GFNI or AVX-512.
    fn crc64_rocksoft_refl_avx2(init_crc: u64, buf: *const u8, len: u64) -> u64;
    fn crc32_gzip_refl_avx2(init_crc: u32, buf: *const u8, len: u64) -> u32;
}

/// True when [`crc64_nvme_avx2`] and [`crc32_iso_hdlc_avx2`] run here: the CPU has AVX2 and
/// VPCLMULQDQ but not the AVX-512 forms, for which `crc-fast`'s own kernel is as fast.
/// (ISA-L's dispatcher would pick its AVX2 kernel only on CPUs that also have GFNI and VAES,
/// which the kernel does not use, so AMD Zen 3 would get the 128-bit one at half the speed.)
/// Detected once: it is asked on every checksum update.
#[cfg(target_arch = "x86_64")]
fn avx2_clmul() -> bool {
    static DETECTED: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("vpclmulqdq")
            && !(std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl"))
    });
    *DETECTED
}

/// Runs `kernel` when the 256-bit CRC kernels run here (see [`avx2_clmul`]), else `None`.
#[cfg(target_arch = "x86_64")]
fn on_avx2_clmul<T>(kernel: impl FnOnce() -> T) -> Option<T> {
    avx2_clmul().then(kernel)
}

/// CRC-64/NVME (ISA-L calls it Rocksoft) of the bytes behind `crc` followed by `bytes`, with
/// ISA-L's 256-bit carry-less-multiply kernel; `None` on CPUs without it. `crc` is the
/// finished checksum so far (0 for no bytes).
#[cfg(target_arch = "x86_64")]
pub(crate) fn crc64_nvme_avx2(crc: u64, bytes: &[u8]) -> Option<u64> {
    // SAFETY: the kernel reads exactly `len` bytes from `buf`, a live slice, and needs only
    // AVX2 and VPCLMULQDQ, which `on_avx2_clmul` checked the CPU (and OS) support.
    on_avx2_clmul(|| unsafe { crc64_rocksoft_refl_avx2(crc, bytes.as_ptr(), bytes.len() as u64) })
}

/// CRC-32/ISO-HDLC (the zlib and S3 `CRC32`; ISA-L's `gzip_refl`) of the bytes behind `crc`
/// followed by `bytes`, as [`crc64_nvme_avx2`] does for CRC-64/NVME.
#[cfg(target_arch = "x86_64")]
pub(crate) fn crc32_iso_hdlc_avx2(crc: u32, bytes: &[u8]) -> Option<u32> {
    // SAFETY: as for `crc64_nvme_avx2`.
    on_avx2_clmul(|| unsafe { crc32_gzip_refl_avx2(crc, bytes.as_ptr(), bytes.len() as u64) })
}

/// No 256-bit CRC kernels off x86-64: the callers use `crc-fast`.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn crc64_nvme_avx2(_crc: u64, _bytes: &[u8]) -> Option<u64> {
    None
}

/// See the x86-64 version.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn crc32_iso_hdlc_avx2(_crc: u32, _bytes: &[u8]) -> Option<u32> {
    None
}
