//! Command-line parsing into a validated [`Command`]. Pure: it takes the arguments and an
//! environment lookup, so every rule is unit-tested without a process.

use std::time::Duration;

use crate::error::BenchError;

/// Most concurrent requests (one thread and one connection each). Each worker holds a 512 KiB
/// read buffer and a 30 KiB histogram per operation kind it performs, so 4096 workers reserve
/// ~2.2 GiB: far above what a 2-core box can drive, still bounded.
pub const CONCURRENCY_MAX: usize = 4096;
/// Largest object: S3's limit for a single PUT (5 GiB).
pub const OBJECT_SIZE_MAX: u64 = 5 << 30;
/// Most buckets in one run; each costs one `CreateBucket` in `--setup`.
pub const BUCKETS_MAX: u32 = 1000;
/// Most endpoints compared in one run.
pub const ENDPOINTS_MAX: usize = 16;
/// The smallest aws-chunked chunk S3 accepts (all but the last chunk must be ≥ 8 KiB).
pub const CHUNK_BYTES_MIN: usize = 8 * 1024;
/// The largest aws-chunked chunk we send; bounded by the per-worker I/O buffer.
pub const CHUNK_BYTES_MAX: usize = crate::content::PATTERN_BYTES;
/// The aws-chunked chunk size new AWS SDKs use (64 KiB).
pub const CHUNK_BYTES_DEFAULT: usize = 64 * 1024;

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// A benchmark run against one or more endpoints (boxed: it is much larger than the rest).
    Run(Box<RunConfig>),
    /// The no-op HTTP/1.1 server.
    NoopServer(NoopConfig),
    /// Print usage.
    Help,
}

/// An S3 operation the generator issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// PutObject.
    Put,
    /// GetObject.
    Get,
    /// HeadObject.
    Head,
    /// DeleteObject.
    Delete,
    /// One page of ListObjectsV2.
    List,
}

impl OpKind {
    /// Every operation, in table order.
    pub const ALL: [OpKind; 5] = [
        OpKind::Put,
        OpKind::Get,
        OpKind::Head,
        OpKind::Delete,
        OpKind::List,
    ];

    /// The lower-case name used on the command line and in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Put => "put",
            OpKind::Get => "get",
            OpKind::Head => "head",
            OpKind::Delete => "delete",
            OpKind::List => "list",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Index into per-operation arrays.
    #[must_use]
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The workload of the measured phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// One operation only.
    Single(OpKind),
    /// A weighted random mix; weights indexed by [`OpKind::index`].
    Mixed([u32; 5]),
}

impl Workload {
    /// Whether the objects must exist before the measured phase starts.
    #[must_use]
    pub fn needs_objects(self) -> bool {
        !matches!(self, Workload::Single(OpKind::Put))
    }

    /// The name in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Workload::Single(kind) => kind.name(),
            Workload::Mixed(_) => "mixed",
        }
    }
}

/// How PUT bodies are sent and signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadMode {
    /// `x-amz-content-sha256: UNSIGNED-PAYLOAD`, plain body.
    Unsigned,
    /// The body's SHA-256 in `x-amz-content-sha256` (computed before sending).
    Signed,
    /// aws-chunked, `STREAMING-UNSIGNED-PAYLOAD-TRAILER`, with an `x-amz-checksum-crc32`
    /// trailer: what new AWS SDKs send by default.
    ChunkedCrc32,
    /// aws-chunked, `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: every chunk signed.
    ChunkedSigned,
}

impl PayloadMode {
    /// The name on the command line and in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            PayloadMode::Unsigned => "unsigned",
            PayloadMode::Signed => "signed",
            PayloadMode::ChunkedCrc32 => "chunked-crc32",
            PayloadMode::ChunkedSigned => "chunked-signed",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [
            PayloadMode::Unsigned,
            PayloadMode::Signed,
            PayloadMode::ChunkedCrc32,
            PayloadMode::ChunkedSigned,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }
}

/// Object sizes: `min == max` for a fixed size, otherwise uniform in `min..=max` per key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeSpec {
    /// Smallest size in bytes.
    pub min: u64,
    /// Largest size in bytes.
    pub max: u64,
}

/// One S3 endpoint: plain `http://host:port`, path-style addressing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL as given, for reports.
    pub url: String,
    /// `host:port` to connect to; also the `Host` header.
    pub authority: String,
}

/// A benchmark run.
// Each flag is an independent switch from the command line; a state machine would not help.
#[allow(clippy::struct_excessive_bools)]
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// Endpoints, measured one after the other with identical settings.
    pub endpoints: Vec<Endpoint>,
    /// The measured workload.
    pub workload: Workload,
    /// Concurrent requests (threads, one connection each).
    pub concurrency: usize,
    /// Object sizes.
    pub size: SizeSpec,
    /// Distinct objects (keys) the run works on.
    pub objects: u64,
    /// Operations in the measured phase when no duration is given; `None`: one per object
    /// (one full listing per worker for `list`).
    pub ops: Option<u64>,
    /// Run the measured phase for this long instead of a number of operations.
    pub duration: Option<Duration>,
    /// Key prefix.
    pub prefix: String,
    /// Bucket name, or name stem when `buckets > 1` (`NAME-0`, `NAME-1`, …).
    pub bucket: String,
    /// Number of buckets; key `i` lives in bucket `i % buckets`.
    pub buckets: u32,
    /// How PUT bodies are framed and signed.
    pub mode: PayloadMode,
    /// aws-chunked chunk size.
    pub chunk_bytes: usize,
    /// Check every GET body against the key's deterministic content.
    pub verify: bool,
    /// Create the buckets first.
    pub setup: bool,
    /// Upload the objects before a workload that reads them.
    pub prepare: bool,
    /// Delete the objects after the run.
    pub cleanup: bool,
    /// Print the final report as JSON on stdout.
    pub json: bool,
    /// Print the live progress line.
    pub progress: bool,
    /// `ListObjectsV2` page size.
    pub list_max_keys: u32,
    /// Seed of sizes and of the mixed workload's choices.
    pub seed: u64,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Signing region.
    pub region: String,
}

impl RunConfig {
    /// The bucket that holds key index `index`.
    #[must_use]
    pub fn bucket_of(&self, index: u64) -> String {
        if self.buckets == 1 {
            self.bucket.clone()
        } else {
            format!("{}-{}", self.bucket, index % u64::from(self.buckets))
        }
    }

    /// Every bucket name.
    #[must_use]
    pub fn bucket_names(&self) -> Vec<String> {
        (0..u64::from(self.buckets))
            .map(|i| self.bucket_of(i))
            .collect()
    }

    /// The key of object `index`.
    #[must_use]
    pub fn key_of(&self, index: u64) -> String {
        format!("{}{index:08x}", self.prefix)
    }
}

/// The no-op server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoopConfig {
    /// Address to listen on (`127.0.0.1:0` picks a port; the chosen one is printed).
    pub addr: String,
    /// Body size of every object GET and HEAD.
    pub object_bytes: u64,
    /// Serve each key's deterministic content instead of zeros (makes `--verify` pass).
    pub pattern: bool,
}

/// The usage text.
pub const USAGE: &str = "\
tessera-bench: an S3 load generator

USAGE:
  tessera-bench <put|get|head|delete|list|mixed> --endpoint URL [options]
  tessera-bench noop-server [--addr 127.0.0.1:0] [--object-size 64MiB] [--pattern]

OPTIONS:
  --endpoint URL        http://host:port; repeat to compare endpoints side by side
  -c, --concurrency N   concurrent requests (default 4)
  --size S | MIN..MAX   object size, fixed or uniform per key (default 1MiB); units B KiB MiB GiB
  --objects N           distinct objects (default 100)
  --ops N               operations in the measured phase (default: one per object)
  --duration T          run for T (e.g. 10s, 2m, 500ms) instead of a number of operations
  --prefix P            key prefix (default bench/)
  --bucket B            bucket name or stem (default tessera-bench)
  --buckets N           number of buckets (default 1)
  --mode M              unsigned | signed | chunked-crc32 | chunked-signed (default unsigned)
  --chunk-size S        aws-chunked chunk size (default 64KiB)
  --mix put=15,get=45,head=30,delete=10,list=0   weights of the mixed workload
  --verify              check every GET body against the key's deterministic content
  --setup               create the bucket(s) first
  --no-prepare          do not upload the objects before get/head/delete/list/mixed
  --cleanup             delete the objects at the end
  --list-max-keys N     ListObjectsV2 page size (default 1000)
  --seed N              seed of sizes and mixed choices (default 1)
  --json                print the final report as JSON on stdout
  --quiet               no live progress line
  --access-key K        or AWS_ACCESS_KEY_ID
  --secret-key K        or AWS_SECRET_ACCESS_KEY
  --region R            or AWS_REGION (default us-east-1)
";

fn usage(msg: impl Into<String>) -> BenchError {
    BenchError::Usage(msg.into())
}

/// Parses a byte size: a number with an optional unit (`B`, `K`/`KiB`, `M`/`MiB`, `G`/`GiB`
/// are powers of 1024; `KB`, `MB`, `GB` are powers of 1000).
pub fn parse_size(text: &str) -> Result<u64, BenchError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| usage(format!("bad size {text:?}")))?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" | "b" => 1,
        "K" | "k" | "KiB" | "kiB" => 1 << 10,
        "M" | "m" | "MiB" => 1 << 20,
        "G" | "g" | "GiB" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(usage(format!("bad size unit in {text:?}"))),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| usage(format!("size {text:?} overflows")))
}

/// Parses `SIZE` or `MIN..MAX`.
pub fn parse_size_spec(text: &str) -> Result<SizeSpec, BenchError> {
    let (min, max) = if let Some((a, b)) = text.split_once("..") {
        (parse_size(a)?, parse_size(b)?)
    } else {
        let size = parse_size(text)?;
        (size, size)
    };
    if min > max {
        return Err(usage(format!("size range {text:?} has min > max")));
    }
    if max > OBJECT_SIZE_MAX {
        return Err(usage(format!("size {text:?} above the 5 GiB PUT limit")));
    }
    Ok(SizeSpec { min, max })
}

/// Parses a duration: a number with `ms`, `s` (default), `m` or `h`.
pub fn parse_duration(text: &str) -> Result<Duration, BenchError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| usage(format!("bad duration {text:?}")))?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "" | "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        _ => return Err(usage(format!("bad duration unit in {text:?}"))),
    };
    if duration.is_zero() {
        return Err(usage("duration must be positive"));
    }
    Ok(duration)
}

/// Parses `put=15,get=45,…`; missing operations weigh 0; at least one weight must be > 0.
pub fn parse_mix(text: &str) -> Result<[u32; 5], BenchError> {
    let mut weights = [0u32; 5];
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| usage(format!("bad mix entry {part:?} (want op=weight)")))?;
        let kind = OpKind::from_name(name.trim())
            .ok_or_else(|| usage(format!("unknown operation {name:?} in --mix")))?;
        weights[kind.index()] = weight
            .trim()
            .parse()
            .map_err(|_| usage(format!("bad weight in {part:?}")))?;
    }
    if weights.iter().all(|&w| w == 0) {
        return Err(usage("--mix needs at least one positive weight"));
    }
    if weights.iter().map(|&w| u64::from(w)).sum::<u64>() > u64::from(u32::MAX) {
        return Err(usage("--mix weights too large"));
    }
    Ok(weights)
}

/// Parses `http://host:port[/]`. TLS and virtual-host style are not supported.
pub fn parse_endpoint(text: &str) -> Result<Endpoint, BenchError> {
    let rest = text
        .strip_prefix("http://")
        .ok_or_else(|| usage(format!("endpoint {text:?}: only http:// is supported")))?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        return Err(usage(format!(
            "endpoint {text:?}: want http://host:port with no path"
        )));
    }
    let authority = if authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok(Endpoint {
        url: text.trim_end_matches('/').to_owned(),
        authority,
    })
}

fn parse_number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, BenchError> {
    text.trim()
        .parse()
        .map_err(|_| usage(format!("{flag}: bad number {text:?}")))
}

/// Parses the arguments (without the program name). `env` looks up environment variables.
pub fn parse(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Command, BenchError> {
    let Some(first) = args.first() else {
        return Ok(Command::Help);
    };
    match first.as_str() {
        "-h" | "--help" | "help" => Ok(Command::Help),
        "noop-server" => parse_noop(&args[1..]),
        op => parse_run(op, &args[1..], env),
    }
}

/// Splits `--flag=value` or takes the next argument as the value.
fn take_value(
    flag: &str,
    inline: Option<&str>,
    rest: &mut std::slice::Iter<'_, String>,
) -> Result<String, BenchError> {
    match inline {
        Some(value) => Ok(value.to_owned()),
        None => rest
            .next()
            .cloned()
            .ok_or_else(|| usage(format!("{flag} needs a value"))),
    }
}

fn parse_noop(args: &[String]) -> Result<Command, BenchError> {
    let mut config = NoopConfig {
        addr: "127.0.0.1:0".to_owned(),
        object_bytes: 64 << 20,
        pattern: false,
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (arg.as_str(), None),
        };
        match flag {
            "--addr" => config.addr = take_value(flag, inline, &mut rest)?,
            "--object-size" => {
                config.object_bytes = parse_size(&take_value(flag, inline, &mut rest)?)?;
            }
            "--pattern" => config.pattern = true,
            "-h" | "--help" => return Ok(Command::Help),
            _ => return Err(usage(format!("unknown noop-server argument {arg:?}"))),
        }
    }
    Ok(Command::NoopServer(config))
}

fn parse_run(
    op: &str,
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Command, BenchError> {
    let workload = match op {
        "mixed" => Workload::Mixed(parse_mix("put=15,get=45,head=30,delete=10")?),
        _ => Workload::Single(
            OpKind::from_name(op)
                .ok_or_else(|| usage(format!("unknown operation {op:?}; see --help")))?,
        ),
    };
    let mut config = RunConfig {
        endpoints: Vec::new(),
        workload,
        concurrency: 4,
        size: SizeSpec {
            min: 1 << 20,
            max: 1 << 20,
        },
        objects: 100,
        ops: None,
        duration: None,
        prefix: "bench/".to_owned(),
        bucket: "tessera-bench".to_owned(),
        buckets: 1,
        mode: PayloadMode::Unsigned,
        chunk_bytes: CHUNK_BYTES_DEFAULT,
        verify: false,
        setup: false,
        prepare: true,
        cleanup: false,
        json: false,
        progress: true,
        list_max_keys: 1000,
        seed: 1,
        access_key: env("AWS_ACCESS_KEY_ID").unwrap_or_default(),
        secret_key: env("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
        region: env("AWS_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
    };
    let mut mix_given = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (arg.as_str(), None),
        };
        match flag {
            "--endpoint" => {
                let endpoint = parse_endpoint(&take_value(flag, inline, &mut rest)?)?;
                config.endpoints.push(endpoint);
            }
            "-c" | "--concurrency" => {
                config.concurrency = parse_number(flag, &take_value(flag, inline, &mut rest)?)?;
            }
            "--size" => config.size = parse_size_spec(&take_value(flag, inline, &mut rest)?)?,
            "--objects" => {
                config.objects = parse_number(flag, &take_value(flag, inline, &mut rest)?)?;
            }
            "--ops" => {
                config.ops = Some(parse_number(flag, &take_value(flag, inline, &mut rest)?)?);
            }
            "--duration" => {
                config.duration = Some(parse_duration(&take_value(flag, inline, &mut rest)?)?);
            }
            "--prefix" => config.prefix = take_value(flag, inline, &mut rest)?,
            "--bucket" => config.bucket = take_value(flag, inline, &mut rest)?,
            "--buckets" => {
                config.buckets = parse_number(flag, &take_value(flag, inline, &mut rest)?)?;
            }
            "--mode" => {
                let name = take_value(flag, inline, &mut rest)?;
                config.mode = PayloadMode::from_name(&name)
                    .ok_or_else(|| usage(format!("unknown --mode {name:?}")))?;
            }
            "--chunk-size" => {
                let size = parse_size(&take_value(flag, inline, &mut rest)?)?;
                config.chunk_bytes =
                    usize::try_from(size).map_err(|_| usage("--chunk-size too large"))?;
            }
            "--mix" => {
                let weights = parse_mix(&take_value(flag, inline, &mut rest)?)?;
                mix_given = true;
                if let Workload::Mixed(w) = &mut config.workload {
                    *w = weights;
                }
            }
            "--verify" => config.verify = true,
            "--setup" => config.setup = true,
            "--no-prepare" => config.prepare = false,
            "--cleanup" => config.cleanup = true,
            "--json" => config.json = true,
            "--quiet" => config.progress = false,
            "--list-max-keys" => {
                config.list_max_keys = parse_number(flag, &take_value(flag, inline, &mut rest)?)?;
            }
            "--seed" => config.seed = parse_number(flag, &take_value(flag, inline, &mut rest)?)?,
            "--access-key" => config.access_key = take_value(flag, inline, &mut rest)?,
            "--secret-key" => config.secret_key = take_value(flag, inline, &mut rest)?,
            "--region" => config.region = take_value(flag, inline, &mut rest)?,
            "-h" | "--help" => return Ok(Command::Help),
            _ => return Err(usage(format!("unknown argument {arg:?}"))),
        }
    }
    validate(&config, mix_given)?;
    Ok(Command::Run(Box::new(config)))
}

fn validate(config: &RunConfig, mix_given: bool) -> Result<(), BenchError> {
    if config.endpoints.is_empty() {
        return Err(usage("at least one --endpoint is required"));
    }
    if config.endpoints.len() > ENDPOINTS_MAX {
        return Err(usage(format!("at most {ENDPOINTS_MAX} endpoints")));
    }
    if config.concurrency == 0 || config.concurrency > CONCURRENCY_MAX {
        return Err(usage(format!(
            "--concurrency must be in 1..={CONCURRENCY_MAX}"
        )));
    }
    if config.objects == 0 {
        return Err(usage("--objects must be positive"));
    }
    if config.buckets == 0 || config.buckets > BUCKETS_MAX {
        return Err(usage(format!("--buckets must be in 1..={BUCKETS_MAX}")));
    }
    if !(CHUNK_BYTES_MIN..=CHUNK_BYTES_MAX).contains(&config.chunk_bytes) {
        return Err(usage(format!(
            "--chunk-size must be in {CHUNK_BYTES_MIN}..={CHUNK_BYTES_MAX} bytes"
        )));
    }
    if config.list_max_keys == 0 || config.list_max_keys > 1000 {
        return Err(usage("--list-max-keys must be in 1..=1000"));
    }
    if mix_given && !matches!(config.workload, Workload::Mixed(_)) {
        return Err(usage("--mix only applies to the mixed workload"));
    }
    if config.access_key.is_empty() || config.secret_key.is_empty() {
        return Err(usage(
            "credentials missing: --access-key/--secret-key or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn run_config(list: &[&str]) -> RunConfig {
        match parse(&argv(list), &no_env) {
            Ok(Command::Run(config)) => *config,
            other => panic!("expected a run, got {other:?}"),
        }
    }

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        // Plain bytes, binary units (K, KiB, MiB, GiB) and decimal ones (KB, MB); bad input fails.
        assert_eq!(parse_size("4096").ok(), Some(4096));
        assert_eq!(parse_size("4KiB").ok(), Some(4096));
        assert_eq!(parse_size("4k").ok(), Some(4096));
        assert_eq!(parse_size("64MiB").ok(), Some(64 << 20));
        assert_eq!(parse_size("1GiB").ok(), Some(1 << 30));
        assert_eq!(parse_size("10KB").ok(), Some(10_000));
        assert_eq!(parse_size("2MB").ok(), Some(2_000_000));
        assert!(matches!(parse_size("4XB"), Err(BenchError::Usage(_))));
        assert!(matches!(parse_size("MiB"), Err(BenchError::Usage(_))));
        assert!(matches!(
            parse_size("99999999999999999999G"),
            Err(BenchError::Usage(_))
        ));
    }

    #[test]
    fn size_specs_are_fixed_or_ranges() {
        // `4KiB` is fixed, `1KiB..1MiB` a range; min > max and above 5 GiB are refused.
        assert_eq!(
            parse_size_spec("4KiB").ok(),
            Some(SizeSpec {
                min: 4096,
                max: 4096
            })
        );
        assert_eq!(
            parse_size_spec("1KiB..1MiB").ok(),
            Some(SizeSpec {
                min: 1024,
                max: 1 << 20
            })
        );
        assert!(matches!(
            parse_size_spec("2MiB..1MiB"),
            Err(BenchError::Usage(_))
        ));
        assert!(matches!(parse_size_spec("6GiB"), Err(BenchError::Usage(_))));
    }

    #[test]
    fn durations_parse() {
        // ms, s (also bare), m and h; zero and unknown units are refused.
        assert_eq!(
            parse_duration("500ms").ok(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_duration("10").ok(), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m").ok(), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h").ok(), Some(Duration::from_secs(3600)));
        assert!(matches!(parse_duration("0s"), Err(BenchError::Usage(_))));
        assert!(matches!(parse_duration("5d"), Err(BenchError::Usage(_))));
    }

    #[test]
    fn endpoints_parse_and_default_the_port() {
        // A port is kept, a missing one becomes 80, a trailing slash is dropped; https and paths fail.
        let e = parse_endpoint("http://127.0.0.1:9000/").expect("valid");
        assert_eq!(
            (e.url.as_str(), e.authority.as_str()),
            ("http://127.0.0.1:9000", "127.0.0.1:9000")
        );
        assert_eq!(
            parse_endpoint("http://s3.local").expect("valid").authority,
            "s3.local:80"
        );
        assert!(matches!(
            parse_endpoint("https://x:1"),
            Err(BenchError::Usage(_))
        ));
        assert!(matches!(
            parse_endpoint("http://x:1/bucket"),
            Err(BenchError::Usage(_))
        ));
    }

    #[test]
    fn a_full_command_line_sets_every_field() {
        // Every flag lands in its field, `--flag=value` works like `--flag value`, and two
        // endpoints are kept in order.
        let c = run_config(&[
            "get",
            "--endpoint",
            "http://127.0.0.1:1",
            "--endpoint=http://127.0.0.1:2",
            "-c",
            "16",
            "--size",
            "4KiB..8KiB",
            "--objects",
            "500",
            "--duration=3s",
            "--prefix",
            "p/",
            "--bucket",
            "bb",
            "--buckets",
            "3",
            "--mode",
            "chunked-crc32",
            "--chunk-size",
            "16KiB",
            "--verify",
            "--setup",
            "--no-prepare",
            "--cleanup",
            "--json",
            "--quiet",
            "--list-max-keys",
            "100",
            "--seed",
            "9",
            "--access-key",
            "AK",
            "--secret-key",
            "SK",
            "--region",
            "eu-west-1",
            "--ops",
            "77",
        ]);
        assert_eq!(c.endpoints.len(), 2);
        assert_eq!(c.endpoints[1].authority, "127.0.0.1:2");
        assert_eq!(c.workload, Workload::Single(OpKind::Get));
        assert_eq!(c.concurrency, 16);
        assert_eq!(
            c.size,
            SizeSpec {
                min: 4096,
                max: 8192
            }
        );
        assert_eq!(c.objects, 500);
        assert_eq!(c.ops, Some(77));
        assert_eq!(c.duration, Some(Duration::from_secs(3)));
        assert_eq!(
            (c.prefix.as_str(), c.bucket.as_str(), c.buckets),
            ("p/", "bb", 3)
        );
        assert_eq!(
            (c.mode, c.chunk_bytes),
            (PayloadMode::ChunkedCrc32, 16 * 1024)
        );
        assert!(c.verify && c.setup && !c.prepare && c.cleanup && c.json && !c.progress);
        assert_eq!((c.list_max_keys, c.seed), (100, 9));
        assert_eq!(
            (
                c.access_key.as_str(),
                c.secret_key.as_str(),
                c.region.as_str()
            ),
            ("AK", "SK", "eu-west-1")
        );
        assert_eq!(c.bucket_of(4), "bb-1");
        assert_eq!(c.key_of(255), "p/000000ff");
        assert_eq!(c.bucket_names(), vec!["bb-0", "bb-1", "bb-2"]);
    }

    #[test]
    fn credentials_come_from_the_environment_and_flags_win() {
        // AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION fill the defaults; a flag
        // overrides them; with neither the run is refused.
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("ENVAK".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("ENVSK".to_owned()),
            "AWS_REGION" => Some("ap-south-1".to_owned()),
            _ => None,
        };
        let Ok(Command::Run(c)) = parse(&argv(&["put", "--endpoint", "http://h:1"]), &env) else {
            panic!("parses");
        };
        assert_eq!(
            (
                c.access_key.as_str(),
                c.secret_key.as_str(),
                c.region.as_str()
            ),
            ("ENVAK", "ENVSK", "ap-south-1")
        );
        let Ok(Command::Run(c)) = parse(
            &argv(&["put", "--endpoint", "http://h:1", "--access-key", "F"]),
            &env,
        ) else {
            panic!("parses");
        };
        assert_eq!(c.access_key, "F");
        let missing = parse(&argv(&["put", "--endpoint", "http://h:1"]), &no_env);
        assert!(matches!(missing, Err(BenchError::Usage(m)) if m.contains("credentials")));
    }

    #[test]
    fn mixed_weights_and_defaults() {
        // `mixed` defaults to warp's 15/45/30/10 put/get/head/delete; --mix replaces it;
        // --mix on a single-op workload, unknown ops and all-zero weights are refused.
        let creds = ["--access-key", "a", "--secret-key", "s"];
        let mut base = vec!["mixed", "--endpoint", "http://h:1"];
        base.extend_from_slice(&creds);
        assert_eq!(
            run_config(&base).workload,
            Workload::Mixed([15, 45, 30, 10, 0])
        );
        let mut custom = base.clone();
        custom.extend_from_slice(&["--mix", "get=1,list=2"]);
        assert_eq!(
            run_config(&custom).workload,
            Workload::Mixed([0, 1, 0, 0, 2])
        );
        let mut wrong = vec!["get", "--endpoint", "http://h:1", "--mix", "get=1"];
        wrong.extend_from_slice(&creds);
        assert!(matches!(
            parse(&argv(&wrong), &no_env),
            Err(BenchError::Usage(_))
        ));
        assert!(matches!(parse_mix("copy=1"), Err(BenchError::Usage(_))));
        assert!(matches!(parse_mix("get=0"), Err(BenchError::Usage(_))));
    }

    #[test]
    fn limits_and_mistakes_are_refused() {
        // No endpoint, zero or huge concurrency, zero objects, too many buckets, a chunk below
        // 8 KiB, an unknown flag and an unknown operation each give a usage error.
        let creds = ["--access-key", "a", "--secret-key", "s"];
        let bad: &[&[&str]] = &[
            &["get"],
            &["get", "--endpoint", "http://h:1", "-c", "0"],
            &["get", "--endpoint", "http://h:1", "-c", "5000"],
            &["get", "--endpoint", "http://h:1", "--objects", "0"],
            &["get", "--endpoint", "http://h:1", "--buckets", "1001"],
            &["put", "--endpoint", "http://h:1", "--chunk-size", "4KiB"],
            &["get", "--endpoint", "http://h:1", "--frobnicate"],
            &["copy", "--endpoint", "http://h:1"],
            &["get", "--endpoint"],
        ];
        for case in bad {
            let mut list = case.to_vec();
            list.extend_from_slice(&creds);
            assert!(
                matches!(parse(&argv(&list), &no_env), Err(BenchError::Usage(_))),
                "{case:?}"
            );
        }
    }

    #[test]
    fn noop_server_and_help() {
        // noop-server takes an address, an object size and --pattern; no arguments is help.
        let cmd = parse(
            &argv(&[
                "noop-server",
                "--addr",
                "127.0.0.1:7",
                "--object-size",
                "4KiB",
                "--pattern",
            ]),
            &no_env,
        );
        assert!(matches!(
            cmd,
            Ok(Command::NoopServer(NoopConfig { ref addr, object_bytes: 4096, pattern: true })) if addr == "127.0.0.1:7"
        ));
        assert!(matches!(parse(&[], &no_env), Ok(Command::Help)));
        assert!(matches!(
            parse(&argv(&["--help"]), &no_env),
            Ok(Command::Help)
        ));
    }
}
