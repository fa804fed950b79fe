//! The final report: a text table for people and JSON for scripts. Pure formatting.
//!
//! ```text
//!  Vec<PhaseResult> ─► table(..)  ─► one row per (endpoint, phase, op) + errors by kind
//!                   └► json(..)   ─► {"results":[{"endpoint","phase","op","mib_s",…}]}
//! ```

use std::fmt::Write as _;

use crate::args::{OpKind, RunConfig};
use crate::run::{OpStats, PhaseResult};

const MIB: f64 = 1024.0 * 1024.0;

/// A latency in µs as `850us`, `12.3ms` or `1.25s`.
#[must_use]
pub fn format_latency(micros: u64) -> String {
    if micros < 1000 {
        format!("{micros}us")
    } else if micros < 1_000_000 {
        format!("{:.2}ms", micros as f64 / 1000.0)
    } else {
        format!("{:.3}s", micros as f64 / 1e6)
    }
}

fn rate(amount: f64, result: &PhaseResult) -> f64 {
    let seconds = result.elapsed.as_secs_f64();
    if seconds > 0.0 {
        amount / seconds
    } else {
        0.0
    }
}

fn rows(result: &PhaseResult) -> impl Iterator<Item = (OpKind, &OpStats)> {
    OpKind::ALL
        .into_iter()
        .map(|k| (k, &result.ops[k.index()]))
        .filter(|(_, s)| s.ops > 0 || s.errors > 0)
}

/// The human-readable table.
#[must_use]
pub fn table(results: &[PhaseResult]) -> String {
    let mut out = String::new();
    let width = results
        .iter()
        .map(|r| r.endpoint.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let _ = writeln!(
        out,
        "{:width$}  {:8} {:6} {:>9} {:>7} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "endpoint",
        "phase",
        "op",
        "ops",
        "secs",
        "ops/s",
        "MiB/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "errors"
    );
    for result in results {
        for (kind, s) in rows(result) {
            let h = &s.latency_us;
            let _ = writeln!(
                out,
                "{:width$}  {:8} {:6} {:>9} {:>7.2} {:>10.1} {:>10.1} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
                result.endpoint,
                result.phase,
                kind.name(),
                s.ops,
                result.elapsed.as_secs_f64(),
                rate(s.ops as f64, result),
                rate(s.bytes as f64 / MIB, result),
                format_latency(h.quantile(0.5)),
                format_latency(h.quantile(0.9)),
                format_latency(h.quantile(0.99)),
                format_latency(h.quantile(0.999)),
                format_latency(h.max()),
                s.errors,
            );
        }
    }
    let mut any_errors = false;
    for result in results {
        for (kind, s) in rows(result) {
            for (error, n) in &s.errors_by_kind {
                if !any_errors {
                    out.push_str("\nerrors by kind:\n");
                    any_errors = true;
                }
                let _ = writeln!(
                    out,
                    "  {} {} {}: {error} ×{n}",
                    result.endpoint,
                    result.phase,
                    kind.name()
                );
            }
        }
    }
    out
}

/// Appends `text` as a JSON string literal.
pub fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_number(out: &mut String, value: f64) {
    if value.is_finite() {
        let _ = write!(out, "{value:.3}");
    } else {
        out.push('0');
    }
}

/// The machine-readable report: the settings, then one object per (endpoint, phase, op).
#[must_use]
pub fn json(config: &RunConfig, results: &[PhaseResult]) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str("{\"config\":{\"workload\":");
    json_string(&mut out, config.workload.name());
    let _ = write!(
        out,
        ",\"concurrency\":{},\"size_min\":{},\"size_max\":{},\"objects\":{},\"buckets\":{},\"mode\":",
        config.concurrency, config.size.min, config.size.max, config.objects, config.buckets
    );
    json_string(&mut out, config.mode.name());
    let _ = write!(out, ",\"verify\":{},\"duration_s\":", config.verify);
    match config.duration {
        Some(d) => json_number(&mut out, d.as_secs_f64()),
        None => out.push_str("null"),
    }
    out.push_str("},\"results\":[");
    let mut first = true;
    for result in results {
        for (kind, s) in rows(result) {
            if !first {
                out.push(',');
            }
            first = false;
            let h = &s.latency_us;
            out.push_str("{\"endpoint\":");
            json_string(&mut out, &result.endpoint);
            out.push_str(",\"phase\":");
            json_string(&mut out, &result.phase);
            out.push_str(",\"op\":");
            json_string(&mut out, kind.name());
            let _ = write!(
                out,
                ",\"ops\":{},\"bytes\":{},\"errors\":{},\"keys_listed\":{},\"elapsed_s\":",
                s.ops, s.bytes, s.errors, s.keys_listed
            );
            json_number(&mut out, result.elapsed.as_secs_f64());
            out.push_str(",\"ops_s\":");
            json_number(&mut out, rate(s.ops as f64, result));
            out.push_str(",\"mib_s\":");
            json_number(&mut out, rate(s.bytes as f64 / MIB, result));
            let _ = write!(
                out,
                ",\"latency_us\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{},\"mean\":",
                h.quantile(0.5),
                h.quantile(0.9),
                h.quantile(0.99),
                h.quantile(0.999),
                h.max()
            );
            json_number(&mut out, h.mean());
            let t = &s.first_byte_us;
            let _ = write!(
                out,
                "}},\"first_byte_us\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"max\":{}",
                t.quantile(0.5),
                t.quantile(0.9),
                t.quantile(0.99),
                t.max()
            );
            out.push_str("},\"errors_by_kind\":{");
            for (i, (error, n)) in s.errors_by_kind.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(&mut out, error);
                let _ = write!(out, ":{n}");
            }
            out.push_str("}}");
        }
    }
    out.push_str("]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn result() -> PhaseResult {
        let mut ops: [OpStats; 5] = Default::default();
        let get = &mut ops[OpKind::Get.index()];
        for v in [100, 200, 300, 4000] {
            get.latency_us.record(v);
        }
        get.ops = 4;
        get.bytes = 8 << 20;
        get.errors = 1;
        get.errors_by_kind
            .insert("http 404 \"NoSuchKey\"".to_owned(), 1);
        PhaseResult {
            endpoint: "http://127.0.0.1:1".to_owned(),
            phase: "get".to_owned(),
            elapsed: Duration::from_secs(2),
            ops,
        }
    }

    #[test]
    fn table_shows_rates_percentiles_and_errors() {
        // 8 MiB and 4 ops in 2 s: 4.0 MiB/s and 2.0 ops/s, max 4.00ms, and the error kind.
        let text = table(&[result()]);
        assert!(text.contains("4.0"), "{text}");
        assert!(text.contains("2.0"), "{text}");
        assert!(text.contains("4.00ms"), "{text}");
        assert!(text.contains("NoSuchKey"), "{text}");
        assert_eq!(text.lines().filter(|l| l.contains(" get ")).count(), 2);
    }

    #[test]
    fn json_escapes_and_carries_the_numbers() {
        // Quotes in an error kind are escaped and the rates are the same as in the table.
        let mut s = String::new();
        json_string(&mut s, "a\"b\\c\n\u{1}");
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\u0001\"");
        let args: Vec<String> = ["get", "--endpoint", "http://127.0.0.1:1"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let env = |name: &str| Some(format!("x-{name}"));
        let crate::args::Command::Run(config) = crate::args::parse(&args, &env).expect("parses")
        else {
            panic!("a run")
        };
        let text = json(&config, &[result()]);
        assert!(text.contains("\"mib_s\":4.000"), "{text}");
        assert!(text.contains("\"ops_s\":2.000"), "{text}");
        assert!(text.contains("\"max\":4000"), "{text}");
        assert!(text.contains("\"http 404 \\\"NoSuchKey\\\"\":1"), "{text}");
    }

    #[test]
    fn latency_units() {
        // Microseconds, milliseconds and seconds each get their unit.
        assert_eq!(format_latency(850), "850us");
        assert_eq!(format_latency(12_345), "12.35ms");
        assert_eq!(format_latency(1_250_000), "1.250s");
    }
}
