//! Access keys: from the config file, from the environment, or generated once and kept in the
//! data directory (mode 0600). There is never a well-known default key.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use crate::config::{Config, ConfigError, CredentialConfig};

/// File in the data directory holding a generated key pair.
pub const GENERATED_FILE: &str = "credentials.toml";

/// The access keys the gateway accepts, looked up by access key id.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    secrets: HashMap<String, String>,
}

/// Where the keys came from (printed at start).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `[[credentials]]` in the config file (and possibly the environment).
    Config,
    /// `TESSERA_ACCESS_KEY` / `TESSERA_SECRET_KEY`.
    Environment,
    /// Generated earlier and read back from the data directory.
    Stored,
    /// Generated now; the pair is printed once.
    Generated(CredentialConfig),
}

impl Keyring {
    /// The secret for `access_key`, if known.
    #[must_use]
    pub fn secret(&self, access_key: &str) -> Option<&str> {
        self.secrets.get(access_key).map(String::as_str)
    }

    /// Number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// True when no key is configured (never the case after [`Keyring::load`]).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    fn insert(&mut self, credential: &CredentialConfig) {
        self.secrets
            .insert(credential.access_key.clone(), credential.secret_key.clone());
    }

    /// Builds the keyring: config entries, then the environment pair; with neither, the pair
    /// stored in `data_dir`, generating and storing one on first start.
    pub fn load(
        config: &Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Self, KeySource), ConfigError> {
        let mut keyring = Keyring::default();
        for credential in &config.credentials {
            keyring.insert(credential);
        }
        let mut source = KeySource::Config;
        match (env("TESSERA_ACCESS_KEY"), env("TESSERA_SECRET_KEY")) {
            (Some(access_key), Some(secret_key)) => {
                let credential = CredentialConfig {
                    access_key,
                    secret_key,
                };
                let probe = Config {
                    credentials: vec![credential.clone()],
                    ..Config::default()
                };
                probe.validate().map_err(|e| {
                    ConfigError(format!("TESSERA_ACCESS_KEY/TESSERA_SECRET_KEY: {e}"))
                })?;
                if keyring.is_empty() {
                    source = KeySource::Environment;
                }
                keyring.insert(&credential);
            }
            (None, None) => {}
            _ => {
                return Err(ConfigError(
                    "TESSERA_ACCESS_KEY and TESSERA_SECRET_KEY must be set together".to_owned(),
                ))
            }
        }
        if !keyring.is_empty() {
            return Ok((keyring, source));
        }
        let path = config.server.data_dir.join(GENERATED_FILE);
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
            let stored = Config::from_toml(&text)
                .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
            stored
                .validate()
                .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
            if stored.credentials.is_empty() {
                return Err(ConfigError(format!(
                    "{}: no [[credentials]] entry",
                    path.display()
                )));
            }
            for credential in &stored.credentials {
                keyring.insert(credential);
            }
            return Ok((keyring, KeySource::Stored));
        }
        let credential = generate()?;
        store(&config.server.data_dir, &credential)?;
        keyring.insert(&credential);
        Ok((keyring, KeySource::Generated(credential)))
    }
}

/// A random pair: a 20-character upper-case access key and a 40-character secret.
fn generate() -> Result<CredentialConfig, ConfigError> {
    const ACCESS_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET_ALPHABET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut random = [0_u8; 60];
    getrandom::getrandom(&mut random)
        .map_err(|e| ConfigError(format!("cannot generate credentials: {e}")))?;
    // Modulo bias is irrelevant at these alphabet sizes for key material of 100+ bits.
    let pick = |alphabet: &[u8], bytes: &[u8]| -> String {
        bytes
            .iter()
            .map(|&b| alphabet[usize::from(b) % alphabet.len()] as char)
            .collect()
    };
    Ok(CredentialConfig {
        access_key: format!("TS{}", pick(ACCESS_ALPHABET, &random[..18])),
        secret_key: pick(SECRET_ALPHABET, &random[20..60]),
    })
}

fn store(data_dir: &Path, credential: &CredentialConfig) -> Result<(), ConfigError> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| ConfigError(format!("data dir {}: {e}", data_dir.display())))?;
    let path = data_dir.join(GENERATED_FILE);
    let text = format!(
        "# Generated by tessera on first start. Keep this file private.\n[[credentials]]\naccess_key = \"{}\"\nsecret_key = \"{}\"\n",
        credential.access_key, credential.secret_key
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| ConfigError(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// With no keys anywhere a pair is generated, stored with mode 0600, and read back unchanged
    /// on the next start.
    #[test]
    fn generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.server.data_dir = dir.path().to_path_buf();
        let (first, source) = Keyring::load(&config, |_| None).unwrap();
        let KeySource::Generated(pair) = source else {
            panic!("expected a generated pair")
        };
        assert_eq!(
            first.secret(&pair.access_key),
            Some(pair.secret_key.as_str())
        );
        assert_eq!(pair.secret_key.len(), 40);
        let mode = std::fs::metadata(dir.path().join(GENERATED_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (second, source) = Keyring::load(&config, |_| None).unwrap();
        assert_eq!(source, KeySource::Stored);
        assert_eq!(
            second.secret(&pair.access_key),
            Some(pair.secret_key.as_str())
        );
    }

    /// The environment pair is used, and half a pair is an error.
    #[test]
    fn environment_pair() {
        let config = Config::default();
        let env = |name: &str| match name {
            "TESSERA_ACCESS_KEY" => Some("envkey".to_owned()),
            "TESSERA_SECRET_KEY" => Some("envsecret1".to_owned()),
            _ => None,
        };
        let (keyring, source) = Keyring::load(&config, env).unwrap();
        assert_eq!(source, KeySource::Environment);
        assert_eq!(keyring.secret("envkey"), Some("envsecret1"));
        let half = |name: &str| (name == "TESSERA_ACCESS_KEY").then(|| "k".to_owned());
        assert!(Keyring::load(&config, half).is_err());
    }
}
