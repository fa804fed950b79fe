//! Keeps glibc's `memcpy` off `rep movsb` on CPUs where that instruction is slow for
//! misaligned copies, by re-executing the process once with glibc's tunable set.
//!
//! ```text
//!  tessera serve ─► time 16 KiB copies: dst aligned vs dst 5 bytes past the source
//!                    ├ within 3× ─► carry on (CPUs without the problem)
//!                    └ slower    ─► exec /proc/self/exe, same arguments, with
//!                                   GLIBC_TUNABLES=…:glibc.cpu.x86_rep_movsb_threshold=<max>
//! ```
//!
//! On the AMD EPYC (Zen 4, AVX-512) VM of 2026-12-07, glibc's `memcpy` copied 16 KiB at 52–95
//! GB/s, except when the destination lay 1 to about 15 bytes past the source modulo 4096 (the
//! page size): 2.7–3.5 GB/s. glibc 2.36 (Debian 12) copies with `rep movsb` above 2112 bytes on
//! CPUs with FSRM (2112 bytes at page offset 5 ran 97 GB/s, 2113 bytes 3.1 GB/s), and rustls
//! builds each TLS record by copying the plaintext in 5 bytes after the header; its record
//! buffers sat at the same page offset as the site client's buffers (36 % of a TLS PUT's
//! samples were that copy). TLS PUT to an `s3` site cost 0.80–0.95 CPU-s/GiB there (user
//! 0.54–0.67), 0.40–0.59 (user 0.21–0.28) with the tunable. glibc reads its tunables only when
//! a process starts, hence the re-exec; it happens before any thread or socket exists, and
//! keeps the PID.
//!
//! It does not change the kernel's own copies (socket and page-cache copies also use `rep
//! movsb` there and suffer the same misalignment), and it leaves a `GLIBC_TUNABLES` that
//! already sets the threshold alone: that is the operator's choice.

use std::time::{Duration, Instant};

/// The tunable glibc consults before copying with `rep movsb`.
pub const TUNABLE: &str = "glibc.cpu.x86_rep_movsb_threshold";

/// Its value here: no copy is ever large enough, so glibc's vector loops (and, past its
/// non-temporal threshold, streaming stores) do every copy.
pub const THRESHOLD_OFF: u64 = u32::MAX as u64;

/// How much slower a misaligned copy must be before the tunable is set. Unaffected CPUs
/// measure about 1×, the Zen 4 VM of 2026-12-07 28×; 3× keeps a noisy measurement from
/// flipping it.
const SLOWDOWN_MIN: f64 = 3.0;

/// Bytes per timed copy: a full TLS record, above glibc 2.36's `rep movsb` thresholds (2112
/// bytes with FSRM, more without).
const COPY_BYTES: usize = 16 * 1024;

/// Offset of the destination past the source in the misaligned case (a TLS record header).
const MISALIGN_BYTES: usize = 5;

/// `GLIBC_TUNABLES` with the threshold added, or `None` when `existing` already sets it.
#[must_use]
pub fn tunables_with_threshold_off(existing: Option<&str>) -> Option<String> {
    let ours = format!("{TUNABLE}={THRESHOLD_OFF}");
    match existing.map(str::trim).filter(|s| !s.is_empty()) {
        None => Some(ours),
        Some(existing) => {
            let set = existing
                .split(':')
                .any(|pair| pair.split('=').next() == Some(TUNABLE));
            (!set).then(|| format!("{existing}:{ours}"))
        }
    }
}

/// Page size assumed by the measurement: the slow case is a distance modulo this.
const PAGE_BYTES: usize = 4096;

/// How many times slower `memcpy` runs with the destination [`MISALIGN_BYTES`] past the
/// source (modulo the page size) than with both page-aligned: the best of several rounds of
/// each, about a millisecond in all on an affected CPU.
#[must_use]
pub fn misaligned_copy_slowdown() -> f64 {
    let src = vec![0x5au8; COPY_BYTES + PAGE_BYTES];
    let mut dst = vec![0u8; COPY_BYTES + PAGE_BYTES + 64];
    // Both start on a page boundary (the vectors themselves are only 8- or 16-byte aligned).
    let src_at = src.as_ptr().align_offset(PAGE_BYTES);
    let dst_at = dst.as_ptr().align_offset(PAGE_BYTES);
    // A length the compiler cannot see keeps each copy a call to the C library's memcpy.
    let len = std::hint::black_box(COPY_BYTES);
    let mut best = |offset: usize| -> Duration {
        (0..8)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..16 {
                    let to = &mut dst[dst_at + offset..dst_at + offset + len];
                    to.copy_from_slice(&src[src_at..src_at + len]);
                    std::hint::black_box(&mut *to);
                }
                start.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    let aligned = best(0);
    let misaligned = best(MISALIGN_BYTES);
    misaligned.as_secs_f64() / aligned.as_secs_f64().max(1e-9)
}

/// The `GLIBC_TUNABLES` this process should run with, and the slowdown measured, if this CPU
/// copies misaligned slowly and the threshold is not set yet; `None` otherwise.
#[must_use]
pub fn tunables_needed() -> Option<(String, f64)> {
    if !cfg!(all(target_arch = "x86_64", target_env = "gnu")) {
        return None; // The tunable is glibc's, for its x86 string functions.
    }
    let existing = std::env::var("GLIBC_TUNABLES").ok();
    let tunables = tunables_with_threshold_off(existing.as_deref())?;
    let slowdown = misaligned_copy_slowdown();
    (slowdown >= SLOWDOWN_MIN).then_some((tunables, slowdown))
}

/// Re-executes the process with the tunable set if this CPU needs it and it is not set yet.
/// Returns only when no re-exec was needed or the exec failed (which is logged).
pub fn reexec_if_slow() {
    let Some((tunables, slowdown)) = tunables_needed() else {
        return;
    };
    crate::runtime::log(format_args!(
        "memcpy: rep movsb copies {slowdown:.0}x slower misaligned on this CPU; \
         restarting with GLIBC_TUNABLES={tunables}"
    ));
    exec_self(&tunables);
}

#[cfg(unix)]
fn exec_self(tunables: &str) {
    use std::os::unix::process::CommandExt as _;
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new("/proc/self/exe");
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    let err = command.args(args).env("GLIBC_TUNABLES", tunables).exec();
    crate::runtime::log(format_args!("memcpy: re-exec failed ({err}); carrying on"));
}

#[cfg(not(unix))]
fn exec_self(_tunables: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_added_once_and_an_operators_setting_is_kept() {
        // The tunables string gains the threshold unless it already names it, whatever else
        // it holds.
        let ours = format!("{TUNABLE}={THRESHOLD_OFF}");
        assert_eq!(tunables_with_threshold_off(None), Some(ours.clone()));
        assert_eq!(tunables_with_threshold_off(Some("  ")), Some(ours.clone()));
        assert_eq!(
            tunables_with_threshold_off(Some("glibc.malloc.check=3")),
            Some(format!("glibc.malloc.check=3:{ours}"))
        );
        assert_eq!(
            tunables_with_threshold_off(Some(&format!("glibc.malloc.check=3:{TUNABLE}=8192"))),
            None
        );
        assert_eq!(tunables_with_threshold_off(Some(&ours)), None);
        // A tunable whose name only starts like ours is another tunable.
        assert!(tunables_with_threshold_off(Some(&format!("{TUNABLE}_x=1"))).is_some());
    }
}
