//! Site declarations: the `[[sites]]` entries of the configuration file.
//!
//! ```toml
//! [[sites]]                      # a directory on a local disk
//! kind = "dir"
//! name = "disk-a"
//! path = "/mnt/disk-a/tessera"
//! fsync = "always"
//! direct_io = true               # large shards bypass the page cache
//! group_sync = true              # small shards made durable by one syncfs per batch
//!
//! [[sites]]                      # an S3 region or a self-hosted S3 server
//! kind = "s3"
//! name = "aws-eu-west-1"
//! endpoint = "https://s3.eu-west-1.amazonaws.com"
//! region = "eu-west-1"
//! bucket = "tessera-shards-eu"
//! addressing = "virtual_host"
//! access_key = "AKIA..."
//! secret_key = "..."
//! ```
//!
//! Every table rejects unknown keys so a typo fails at start-up, not at the first write.

use std::path::PathBuf;

use serde::Deserialize;

use super::SiteError;

/// Longest site name; it appears in logs, metrics and shard manifests.
pub const SITE_NAME_BYTES_MAX: usize = 64;
/// Most connections one core may open to one S3 site. Each holds a socket, a TLS session
/// (~40 KiB) and a 16 KiB read buffer, so 1024 bounds memory per core per site to ~60 MiB.
pub const CONNECTIONS_MAX_LIMIT: u32 = 1024;
/// Most retries of one idempotent request, to bound the time a request can take.
pub const RETRIES_MAX_LIMIT: u32 = 10;

/// One `[[sites]]` entry, told apart by `kind`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SiteConfig {
    /// `kind = "dir"`: a directory on a local disk.
    Dir(DirSiteConfig),
    /// `kind = "s3"`: a bucket on an S3-compatible endpoint.
    S3(S3SiteConfig),
}

impl SiteConfig {
    /// The site's name.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            SiteConfig::Dir(c) => &c.name,
            SiteConfig::S3(c) => &c.name,
        }
    }

    /// Checks every value against its limit; called once at start-up.
    pub fn validate(&self) -> Result<(), SiteError> {
        let name = self.name();
        let name_ok = !name.is_empty()
            && name.len() <= SITE_NAME_BYTES_MAX
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !name_ok {
            return Err(SiteError::Config(format!(
                "site name {name:?} must be 1..={SITE_NAME_BYTES_MAX} of [A-Za-z0-9._-]"
            )));
        }
        match self {
            SiteConfig::Dir(c) => {
                if !c.path.is_absolute() {
                    return Err(SiteError::Config(format!(
                        "site {name}: path {} must be absolute",
                        c.path.display()
                    )));
                }
            }
            SiteConfig::S3(c) => c.validate()?,
        }
        Ok(())
    }
}

/// When a dir site calls fsync.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// fsync the shard file before the rename and the directory after it (or, for shards that
    /// `group_sync` covers, one `syncfs` of the filesystem after the rename): a finished shard
    /// survives power loss. The default.
    #[default]
    Always,
    /// Never fsync: a finished shard survives a process crash (the rename is atomic) but not
    /// power loss. For benchmarks and disposable data.
    Never,
}

/// `kind = "dir"`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DirSiteConfig {
    /// `name`: the site's name, unique among sites ([A-Za-z0-9._-], at most 64 bytes).
    pub name: String,
    /// `path`: absolute path of the directory that holds the shards. It must exist: a missing
    /// directory is an unmounted disk, and the site reports itself down rather than writing
    /// onto the root filesystem.
    pub path: PathBuf,
    /// `fsync`: `"always"` (default) or `"never"`; see [`FsyncPolicy`].
    #[serde(default)]
    pub fsync: FsyncPolicy,
    /// `direct_io`: write shards of 256 KiB and more with `O_DIRECT`, bypassing the page
    /// cache (default true; ignored where the filesystem refuses it).
    #[serde(default = "yes")]
    pub direct_io: bool,
    /// `unnamed_files`: write each shard into an `O_TMPFILE` inode and link it under its key
    /// when complete (default true); false: a named temporary under `.tmp`, renamed. A crash
    /// leaves an unnamed inode that only an ext4 *without* a journal keeps (until fsck), while
    /// named temporaries are swept; set false there if crashes are frequent.
    #[serde(default = "yes")]
    pub unnamed_files: bool,
    /// `group_sync`: with `fsync = "always"`, make shards under 8 MiB durable in batches, by
    /// one `syncfs(2)` of the site's filesystem for all the shards that finished while the
    /// previous one ran, instead of an fsync of each shard file and its folder (default true).
    /// false: per-shard fsyncs, for a site whose filesystem other programs fill with dirty
    /// pages that a `syncfs` would have to wait for.
    #[serde(default = "yes")]
    pub group_sync: bool,
}

fn yes() -> bool {
    true
}

/// How the bucket is named in requests.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Addressing {
    /// `https://endpoint/bucket/key`: works with every server; the default.
    #[default]
    Path,
    /// `https://bucket.endpoint/key`: what AWS recommends; needs DNS (and a certificate) for
    /// `bucket.endpoint`.
    VirtualHost,
}

/// How request bodies are signed.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PayloadSigning {
    /// `unsigned` over TLS (TLS already protects the body), `signed` over plain HTTP.
    #[default]
    Auto,
    /// `UNSIGNED-PAYLOAD`: the body is sent as is; cheapest.
    Unsigned,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: the body is sent aws-chunked with a signature per
    /// chunk; costs a SHA-256 of every byte (~1.2 CPU-s/GiB) and one copy into the chunk frame.
    Signed,
}

/// `kind = "s3"`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct S3SiteConfig {
    /// `name`: the site's name, unique among sites ([A-Za-z0-9._-], at most 64 bytes).
    pub name: String,
    /// `endpoint`: `http://host[:port]` or `https://host[:port]`, without a path.
    pub endpoint: String,
    /// `region`: the `SigV4` region, e.g. `us-east-1`.
    pub region: String,
    /// `bucket`: the backend bucket that holds this site's shards; created on first use.
    pub bucket: String,
    /// `access_key`: the access key id.
    pub access_key: String,
    /// `secret_key`: the secret access key.
    pub secret_key: String,
    /// `addressing`: `"path"` (default) or `"virtual_host"`.
    #[serde(default)]
    pub addressing: Addressing,
    /// `payload_signing`: `"auto"` (default), `"unsigned"` or `"signed"`.
    #[serde(default)]
    pub payload_signing: PayloadSigning,
    /// `ca_file`: a PEM file of extra CA certificates trusted besides the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `insecure`: skip certificate verification. For tests only; never in production.
    #[serde(default)]
    pub insecure: bool,
    /// `create_bucket`: create the bucket on first use if it is missing (default true).
    #[serde(default = "default_true")]
    pub create_bucket: bool,
    /// `connections_max`: connections one core may hold open to this site (default 64,
    /// at most 1024); requests beyond it wait for a connection.
    #[serde(default = "default_connections_max")]
    pub connections_max: u32,
    /// `connect_timeout_ms`: TCP connect plus TLS handshake (default 3000).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// `first_byte_timeout_ms`: from the end of the request to the response head (default
    /// 10000; S3 may think for seconds before answering a large PUT).
    #[serde(default = "default_first_byte_timeout_ms")]
    pub first_byte_timeout_ms: u64,
    /// `idle_timeout_ms`: longest pause inside a transfer, and how long an unused pooled
    /// connection is kept (default 5000: below the usual 5–60 s server keep-alive).
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// `retries_max`: retries of an idempotent request after a timeout, a broken connection,
    /// 500 or 503/SlowDown (default 4, at most 10).
    #[serde(default = "default_retries_max")]
    pub retries_max: u32,
    /// `backoff_base_ms`: first retry delay; doubles each retry, with full jitter (default 50).
    #[serde(default = "default_backoff_base_ms")]
    pub backoff_base_ms: u64,
    /// `backoff_max_ms`: cap on one retry delay (default 2000).
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// `down_after_errors`: site faults in a row that mark the site down (default 5).
    #[serde(default = "default_down_after_errors")]
    pub down_after_errors: u32,
    /// `probe_interval_ms`: first wait before probing a down site; doubles up to 30 s
    /// (default 1000).
    #[serde(default = "default_probe_interval_ms")]
    pub probe_interval_ms: u64,
}

fn default_true() -> bool {
    true
}
fn default_connections_max() -> u32 {
    64
}
fn default_connect_timeout_ms() -> u64 {
    3000
}
fn default_first_byte_timeout_ms() -> u64 {
    10_000
}
fn default_idle_timeout_ms() -> u64 {
    5000
}
fn default_retries_max() -> u32 {
    4
}
fn default_backoff_base_ms() -> u64 {
    50
}
fn default_backoff_max_ms() -> u64 {
    2000
}
fn default_down_after_errors() -> u32 {
    5
}
fn default_probe_interval_ms() -> u64 {
    1000
}

impl S3SiteConfig {
    /// A configuration with every optional key at its default, for tests and tools.
    #[must_use]
    pub fn new(
        name: &str,
        endpoint: &str,
        region: &str,
        bucket: &str,
        access_key: &str,
        secret_key: &str,
    ) -> S3SiteConfig {
        S3SiteConfig {
            name: name.to_owned(),
            endpoint: endpoint.to_owned(),
            region: region.to_owned(),
            bucket: bucket.to_owned(),
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            addressing: Addressing::default(),
            payload_signing: PayloadSigning::default(),
            ca_file: None,
            insecure: false,
            create_bucket: true,
            connections_max: default_connections_max(),
            connect_timeout_ms: default_connect_timeout_ms(),
            first_byte_timeout_ms: default_first_byte_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            retries_max: default_retries_max(),
            backoff_base_ms: default_backoff_base_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            down_after_errors: default_down_after_errors(),
            probe_interval_ms: default_probe_interval_ms(),
        }
    }

    fn validate(&self) -> Result<(), SiteError> {
        let fail = |what: String| Err(SiteError::Config(format!("site {}: {what}", self.name)));
        if super::s3::Endpoint::parse(&self.endpoint).is_none() {
            return fail(format!(
                "endpoint {:?} must be http://host[:port] or https://host[:port]",
                self.endpoint
            ));
        }
        let bucket_ok = (3..=63).contains(&self.bucket.len())
            && self
                .bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return fail(format!(
                "bucket {:?} is not a valid S3 bucket name",
                self.bucket
            ));
        }
        if self.region.is_empty() || self.access_key.is_empty() || self.secret_key.is_empty() {
            return fail("region, access_key and secret_key must not be empty".to_owned());
        }
        if self.connections_max == 0 || self.connections_max > CONNECTIONS_MAX_LIMIT {
            return fail(format!(
                "connections_max must be 1..={CONNECTIONS_MAX_LIMIT}"
            ));
        }
        if self.retries_max > RETRIES_MAX_LIMIT {
            return fail(format!("retries_max must be at most {RETRIES_MAX_LIMIT}"));
        }
        if self.down_after_errors == 0 {
            return fail("down_after_errors must be at least 1".to_owned());
        }
        let timeouts = [
            self.connect_timeout_ms,
            self.first_byte_timeout_ms,
            self.idle_timeout_ms,
            self.probe_interval_ms,
            self.backoff_base_ms,
        ];
        if timeouts.contains(&0) || self.backoff_max_ms < self.backoff_base_ms {
            return fail(
                "timeouts and intervals must be positive, backoff_max_ms ≥ backoff_base_ms"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        sites: Vec<SiteConfig>,
    }

    #[test]
    fn parses_dir_and_s3_sites_with_defaults() {
        // The README examples parse, defaults fill the omitted keys, and both validate.
        let text = r#"
            [[sites]]
            kind = "dir"
            name = "disk-a"
            path = "/mnt/disk-a/tessera"

            [[sites]]
            kind = "s3"
            name = "aws-eu"
            endpoint = "https://s3.eu-west-1.amazonaws.com"
            region = "eu-west-1"
            bucket = "tessera-shards-eu"
            addressing = "virtual_host"
            access_key = "AKIDEXAMPLE"
            secret_key = "wJalrXUtnFEMI"
        "#;
        let file: File = toml::from_str(text).expect("valid config");
        assert_eq!(file.sites.len(), 2);
        assert!(matches!(&file.sites[0], SiteConfig::Dir(d) if d.fsync == FsyncPolicy::Always));
        let SiteConfig::S3(s3) = &file.sites[1] else {
            panic!("second site is s3");
        };
        assert_eq!(s3.addressing, Addressing::VirtualHost);
        assert_eq!(s3.payload_signing, PayloadSigning::Auto);
        assert_eq!(s3.connections_max, 64);
        assert!(s3.create_bucket);
        for site in &file.sites {
            site.validate().expect("valid");
        }
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        // A typo in a key fails to parse; a relative path or a bad bucket fails validation.
        let typo = r#"
            [[sites]]
            kind = "dir"
            name = "a"
            path = "/x"
            fsnyc = "never"
        "#;
        assert!(toml::from_str::<File>(typo).is_err());
        let relative = SiteConfig::Dir(DirSiteConfig {
            name: "a".into(),
            path: "x".into(),
            fsync: FsyncPolicy::Never,
            direct_io: true,
            unnamed_files: true,
            group_sync: true,
        });
        assert!(matches!(relative.validate(), Err(SiteError::Config(_))));
        let mut s3 = S3SiteConfig::new("b", "https://h", "r", "Bad_Bucket", "ak", "sk");
        assert!(matches!(
            SiteConfig::S3(s3.clone()).validate(),
            Err(SiteError::Config(_))
        ));
        s3.bucket = "good-bucket".into();
        s3.endpoint = "ftp://h".into();
        assert!(matches!(
            SiteConfig::S3(s3).validate(),
            Err(SiteError::Config(_))
        ));
    }
}
