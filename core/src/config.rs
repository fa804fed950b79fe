//! Configuration: the TOML file, the command line, and the validation that names bad keys.
//!
//! Precedence: command-line flags override the file, the file overrides built-in defaults.
//! Every limit here is documented in README.md key by key.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The whole configuration of one `tessera serve` process.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
pub struct Config {
    /// Listeners, cores, data directory, naming.
    pub server: ServerConfig,
    /// Bounds on what one client can make the gateway hold or wait for.
    pub limits: LimitsConfig,
    /// Access keys accepted by the gateway.
    pub credentials: Vec<CredentialConfig>,
    /// Where shards live (`[[sites]]`); empty means the embedded default of three directories
    /// under the data directory.
    pub sites: Vec<crate::site::SiteConfig>,
    /// How objects are stored.
    pub engine: EngineConfig,
}

/// `[engine]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Policy of new buckets: `ec:K+M[:CHUNK]`, `replica:N` or `hybrid:THRESHOLD:N:K+M[:CHUNK]`.
    pub default_policy: String,
    /// `shuffle` (spread objects over all sites) or `priority` (first sites in order).
    pub placement: crate::engine::policy::Placement,
    /// Shards that must be durable before a PUT is acknowledged; 0 means the default (k + 1 for
    /// ec with parity, 2 for replicas). Clamped to k..=n for each object.
    pub write_quorum: usize,
    /// Largest object a single PUT may carry (S3: 5 GiB).
    pub object_size_max: u64,
    /// `md5` (ETag = MD5 of the content, as S3) or `fast` (opt-in: CRC-64/NVME + length, far
    /// cheaper, but ETags no longer equal the MD5 that some clients compare).
    pub etag: crate::engine::EtagMode,
    /// Hash the MD5 ETags of a core's concurrent uploads together in SIMD lanes (default on;
    /// off hashes each upload alone, as the body streams in).
    pub md5_lanes: bool,
    /// Longest an upload finishing its MD5 waits for other uploads of its core to queue stripes
    /// beside its last one, so they are hashed together (default 2 ms; 0 = never wait). Trades
    /// PUT latency under concurrency for CPU; see `engine::md5_lanes`.
    pub md5_finish_wait_ms: u64,
    /// Bytes of stripe buffers the uploads of one core may hold together (default 128 MiB);
    /// further uploads wait for their turn (their clients are slowed by TCP) instead of growing
    /// memory.
    pub upload_memory_per_core: usize,
    /// How old an unreferenced shard must be (since it was written, and since the scrub first
    /// saw it unreferenced) before the scrub deletes it. Default one hour.
    pub orphan_grace_ms: u64,
    /// Multipart uploads initiated longer ago than this many seconds are aborted by a
    /// per-core background step and their parts purged (default 7 days, at least 1).
    pub upload_age_max_s: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            default_policy: "ec:2+1".to_owned(),
            placement: crate::engine::policy::Placement::Shuffle,
            write_quorum: 0,
            object_size_max: 5 << 30,
            etag: crate::engine::EtagMode::Md5,
            md5_lanes: true,
            md5_finish_wait_ms: 2,
            upload_memory_per_core: crate::engine::budget::UPLOAD_MEMORY_PER_CORE_DEFAULT,
            orphan_grace_ms: crate::engine::scrub::ORPHAN_GRACE_MS_DEFAULT,
            upload_age_max_s: 7 * 86_400,
        }
    }
}

/// `[server]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// S3 listener address.
    pub listen: SocketAddr,
    /// Admin listener address (health, metrics).
    pub admin_listen: SocketAddr,
    /// Where metadata, generated credentials and default `dir` sites live.
    pub data_dir: PathBuf,
    /// Executor threads, one per CPU; 0 means one per available CPU.
    pub cores: usize,
    /// Virtual-host domain: requests to `BUCKET.<domain>` address BUCKET. Empty: path style only.
    pub domain: String,
    /// The region the gateway reports and that SigV4 scopes must name.
    pub region: String,
}

/// `[limits]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Bytes of one request head (request line + headers).
    pub header_bytes_max: usize,
    /// Header lines in one request.
    pub header_count_max: usize,
    /// Bytes of the request target (path + query).
    pub uri_bytes_max: usize,
    /// Time a client has to send a complete request head once it started one.
    pub header_read_timeout_ms: u64,
    /// Time an idle keep-alive connection is kept open.
    pub idle_timeout_ms: u64,
    /// Time without progress while reading a request body.
    pub body_read_timeout_ms: u64,
    /// Open client connections per core; beyond it new connections get 503 SlowDown.
    pub connections_per_core_max: usize,
    /// On SIGINT/SIGTERM, how long in-flight requests may take before the process exits.
    pub shutdown_grace_ms: u64,
}

/// One `[[credentials]]` entry.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    /// Access key id (3–128 printable ASCII characters).
    pub access_key: String,
    /// Secret key (at least 8 characters).
    pub secret_key: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9001)),
            data_dir: PathBuf::from("./tessera-data"),
            cores: 0,
            domain: String::new(),
            region: "us-east-1".to_owned(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            header_bytes_max: 16 * 1024,
            header_count_max: 100,
            uri_bytes_max: 8 * 1024,
            header_read_timeout_ms: 30_000,
            idle_timeout_ms: 60_000,
            body_read_timeout_ms: 60_000,
            connections_per_core_max: 4096,
            shutdown_grace_ms: 10_000,
        }
    }
}

/// Directories of the embedded default (no `[[sites]]`): enough for the default ec 2+1.
pub const DEFAULT_SITES: usize = 3;

/// A configuration problem, naming the offending key or flag.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Flags of `tessera serve`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServeArgs {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--data-dir DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--listen HOST:PORT`.
    pub listen: Option<String>,
    /// `--admin-listen HOST:PORT`.
    pub admin_listen: Option<String>,
    /// `--cores N`.
    pub cores: Option<String>,
    /// `--domain NAME`.
    pub domain: Option<String>,
}

impl ServeArgs {
    /// Parses the arguments after `serve`; accepts `--flag value` and `--flag=value`.
    pub fn parse(args: &[String]) -> Result<Self, ConfigError> {
        let mut parsed = ServeArgs::default();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if arg.starts_with("--") => (flag, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            let mut value = || -> Result<String, ConfigError> {
                inline
                    .clone()
                    .or_else(|| iter.next().cloned())
                    .ok_or_else(|| ConfigError(format!("flag {flag} needs a value")))
            };
            match flag {
                "--config" => parsed.config = Some(PathBuf::from(value()?)),
                "--data-dir" => parsed.data_dir = Some(PathBuf::from(value()?)),
                "--listen" => parsed.listen = Some(value()?),
                "--admin-listen" => parsed.admin_listen = Some(value()?),
                "--cores" => parsed.cores = Some(value()?),
                "--domain" => parsed.domain = Some(value()?),
                other => {
                    return Err(ConfigError(format!(
                        "unknown flag {other} (see `tessera help`)"
                    )))
                }
            }
        }
        Ok(parsed)
    }
}

impl Config {
    /// Parses a TOML document; unknown keys and wrong types are errors naming the key.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(format!("config: {e}")))
    }

    /// Loads the file named by `--config` (if any), applies the flags, and validates.
    pub fn load(args: &ServeArgs) -> Result<Self, ConfigError> {
        let mut config = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("--config {}: {e}", path.display())))?;
                Config::from_toml(&text)
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?
            }
            None => Config::default(),
        };
        if let Some(dir) = &args.data_dir {
            config.server.data_dir.clone_from(dir);
        }
        if let Some(listen) = &args.listen {
            config.server.listen = parse_addr("--listen", listen)?;
        }
        if let Some(listen) = &args.admin_listen {
            config.server.admin_listen = parse_addr("--admin-listen", listen)?;
        }
        if let Some(cores) = &args.cores {
            config.server.cores = cores
                .parse()
                .map_err(|_| ConfigError(format!("--cores: `{cores}` is not a number")))?;
        }
        if let Some(domain) = &args.domain {
            config.server.domain.clone_from(domain);
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks relations between values; the message names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let limits = &self.limits;
        let check = |ok: bool, key: &str, why: &str| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError(format!("{key}: {why}")))
            }
        };
        let (s3, admin) = (self.server.listen, self.server.admin_listen);
        let specific = !s3.ip().is_unspecified() && !admin.ip().is_unspecified();
        check(
            s3.port() == 0 || s3.port() != admin.port() || (s3.ip() != admin.ip() && specific),
            "server.admin_listen",
            "must differ from the S3 address (both listen with SO_REUSEPORT: the kernel would \
             hand S3 connections to the admin listener)",
        )?;
        check(
            (1024..=1 << 20).contains(&limits.header_bytes_max),
            "limits.header_bytes_max",
            "must be 1024..=1048576",
        )?;
        check(
            (8..=tessera_http::codec::head::HEADER_COUNT_CAP).contains(&limits.header_count_max),
            "limits.header_count_max",
            "must be 8..=256",
        )?;
        check(
            (256..=limits.header_bytes_max).contains(&limits.uri_bytes_max),
            "limits.uri_bytes_max",
            "must be 256..=header_bytes_max",
        )?;
        check(
            limits.header_read_timeout_ms > 0,
            "limits.header_read_timeout_ms",
            "must be > 0",
        )?;
        check(
            limits.idle_timeout_ms > 0,
            "limits.idle_timeout_ms",
            "must be > 0",
        )?;
        check(
            limits.body_read_timeout_ms > 0,
            "limits.body_read_timeout_ms",
            "must be > 0",
        )?;
        check(
            limits.connections_per_core_max > 0,
            "limits.connections_per_core_max",
            "must be > 0",
        )?;
        check(
            self.server.cores <= 1024,
            "server.cores",
            "must be at most 1024",
        )?;
        check(
            !self.server.region.is_empty(),
            "server.region",
            "must not be empty",
        )?;
        check(
            self.server.domain.is_empty() || self.server.domain.split('.').all(|l| !l.is_empty()),
            "server.domain",
            "must be a host name like s3.example.com",
        )?;
        let mut names = std::collections::HashSet::new();
        for (i, site) in self.sites.iter().enumerate() {
            site.validate()
                .map_err(|e| ConfigError(format!("sites[{i}]: {e}")))?;
            if !names.insert(site.name()) {
                return Err(ConfigError(format!(
                    "sites[{i}].name: `{}` is used twice",
                    site.name()
                )));
            }
        }
        check(
            u16::try_from(self.sites.len()).is_ok(),
            "sites",
            "too many sites",
        )?;
        let policy = crate::engine::policy::parse(&self.engine.default_policy)
            .map_err(|e| ConfigError(format!("engine.default_policy: {e}")))?;
        let site_count = if self.sites.is_empty() {
            DEFAULT_SITES
        } else {
            self.sites.len()
        };
        crate::engine::policy::validate(&policy, site_count)
            .map_err(|e| ConfigError(format!("engine.default_policy: {e}")))?;
        check(
            self.engine.object_size_max >= 1,
            "engine.object_size_max",
            "must be positive",
        )?;
        check(
            self.engine.md5_finish_wait_ms <= 1000,
            "engine.md5_finish_wait_ms",
            "must be at most 1000",
        )?;
        check(
            self.engine.upload_age_max_s >= 1,
            "engine.upload_age_max_s",
            "must be at least 1 second",
        )?;
        for (i, credential) in self.credentials.iter().enumerate() {
            let ak = &credential.access_key;
            check(
                (3..=128).contains(&ak.len())
                    && ak
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':'),
                &format!("credentials[{i}].access_key"),
                "must be 3-128 printable ASCII characters without '/' or ':'",
            )?;
            check(
                credential.secret_key.len() >= 8,
                &format!("credentials[{i}].secret_key"),
                "must be at least 8 characters",
            )?;
        }
        Ok(())
    }

    /// The sites to use: the configured ones, or the embedded default of [`DEFAULT_SITES`]
    /// directories under `data_dir/sites/`.
    #[must_use]
    pub fn effective_sites(&self) -> Vec<crate::site::SiteConfig> {
        if !self.sites.is_empty() {
            return self.sites.clone();
        }
        let root = std::path::absolute(&self.server.data_dir)
            .unwrap_or_else(|_| self.server.data_dir.clone());
        (0..DEFAULT_SITES)
            .map(|i| {
                crate::site::SiteConfig::Dir(crate::site::config::DirSiteConfig {
                    name: format!("local-{i}"),
                    path: root.join("sites").join(format!("local-{i}")),
                    fsync: crate::site::config::FsyncPolicy::default(),
                    direct_io: true,
                    unnamed_files: true,
                    group_sync: true,
                })
            })
            .collect()
    }

    /// The number of executor cores to run: the configured value or every available CPU.
    #[must_use]
    pub fn core_count(&self) -> usize {
        if self.server.cores == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            self.server.cores
        }
    }
}

fn parse_addr(flag: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    use std::net::ToSocketAddrs;
    value
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| ConfigError(format!("{flag}: `{value}` is not HOST:PORT")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty file gives the documented defaults.
    #[test]
    fn defaults() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(config.server.admin_listen.to_string(), "127.0.0.1:9001");
        assert_eq!(config.server.data_dir, PathBuf::from("./tessera-data"));
        assert_eq!(config.engine.upload_age_max_s, 7 * 86_400);
        assert!(config.validate().is_ok());
        let mut no_age = rejected(
            "[engine]\nupload_age_max_s = 0\n",
            "engine.upload_age_max_s",
        );
        no_age.engine.upload_age_max_s = 2;
        assert!(no_age.validate().is_ok());
        assert_eq!(config.engine.md5_finish_wait_ms, 2);
        let mut long_wait = rejected(
            "[engine]\nmd5_finish_wait_ms = 1001\n",
            "engine.md5_finish_wait_ms",
        );
        long_wait.engine.md5_finish_wait_ms = 0;
        assert!(long_wait.validate().is_ok());
    }

    /// Parses `toml`, asserts that validation fails naming `key`, and returns the config.
    fn rejected(toml: &str, key: &str) -> Config {
        let config = Config::from_toml(toml).unwrap();
        let err = config.validate().unwrap_err();
        assert!(err.0.contains(key), "{}", err.0);
        config
    }

    /// The admin listener cannot share the S3 address (both bind with SO_REUSEPORT, so the
    /// kernel would split connections between them); port 0 (any free port) is fine.
    #[test]
    fn admin_address_differs_from_the_s3_address() {
        let same = "[server]\nlisten = \"127.0.0.1:9100\"\nadmin_listen = \"127.0.0.1:9100\"\n";
        rejected(same, "server.admin_listen");
        let wildcard = "[server]\nlisten = \"0.0.0.0:9100\"\nadmin_listen = \"127.0.0.1:9100\"\n";
        assert!(Config::from_toml(wildcard).unwrap().validate().is_err());
        let other_ip = "[server]\nlisten = \"127.0.0.1:9100\"\nadmin_listen = \"127.0.0.2:9100\"\n";
        assert!(Config::from_toml(other_ip).unwrap().validate().is_ok());
        let any = "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n";
        assert!(Config::from_toml(any).unwrap().validate().is_ok());
    }

    /// Unknown keys and wrong types name the offending key.
    #[test]
    fn bad_keys_are_named() {
        let err = Config::from_toml("[server]\nlisten_port = 1\n").unwrap_err();
        assert!(err.0.contains("listen_port"), "{err}");
        let err = Config::from_toml("[limits]\nidle_timeout_ms = \"x\"\n").unwrap_err();
        assert!(err.0.contains("idle_timeout_ms"), "{err}");
        let mut config = Config::default();
        config.limits.header_count_max = 1000;
        assert!(config
            .validate()
            .unwrap_err()
            .0
            .contains("limits.header_count_max"));
        config =
            Config::from_toml("[[credentials]]\naccess_key = \"a:b\"\nsecret_key = \"12345678\"\n")
                .unwrap();
        assert!(config
            .validate()
            .unwrap_err()
            .0
            .contains("credentials[0].access_key"));
    }

    /// Flags override the file and bad flags are named.
    #[test]
    fn flags() {
        let args: Vec<String> = [
            "--listen",
            "127.0.0.1:9100",
            "--cores=1",
            "--domain",
            "s3.local",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let config = Config::load(&ServeArgs::parse(&args).unwrap()).unwrap();
        assert_eq!(config.server.listen.port(), 9100);
        assert_eq!(config.server.cores, 1);
        assert_eq!(config.server.domain, "s3.local");
        let bad = ServeArgs::parse(&["--frobnicate".to_owned()]).unwrap_err();
        assert!(bad.0.contains("--frobnicate"));
        let bad =
            Config::load(&ServeArgs::parse(&["--cores".to_owned(), "two".to_owned()]).unwrap())
                .unwrap_err();
        assert!(bad.0.contains("--cores"));
        assert!(ServeArgs::parse(&["--listen".to_owned()])
            .unwrap_err()
            .0
            .contains("needs a value"));
    }
}
