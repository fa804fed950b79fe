//! Shared by the http benches: a criterion measurement of the calling thread's CPU time.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::Throughput;

/// Criterion measurement of this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`).
///
/// The benchmark machine has two cores shared with other engineers' builds (load average
/// near 10 while these figures were taken), so wall time mostly measures the scheduler; the
/// thread's own CPU time is what a gateway core would spend on the work.
pub struct CpuTime;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_THREAD_CPUTIME_ID is supported by
    // every Linux kernel this runs on; the call writes only `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    // A thread's CPU time is never negative.
    u64::try_from(ts.tv_sec).expect("CPU time is not negative") * 1_000_000_000
        + u64::try_from(ts.tv_nsec).expect("CPU time is not negative")
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if ns < 1e3 {
            (1.0, "ns")
        } else if ns < 1e6 {
            (1e-3, "µs")
        } else {
            (1e-6, "ms")
        };
        for v in values {
            *v *= factor;
        }
        unit
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        match *throughput {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                for v in values {
                    // bytes per ns is GB/s.
                    *v = n as f64 / *v;
                }
                "GB/s"
            }
            Throughput::Elements(n) => {
                for v in values {
                    *v = n as f64 * 1e9 / *v;
                }
                "elem/s"
            }
        }
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}
