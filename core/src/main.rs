//! The `tessera` binary: `tessera serve [flags]`.

use std::process::ExitCode;

use tessera_core::config::{Config, ServeArgs};
use tessera_core::credentials::{KeySource, Keyring};
use tessera_core::runtime;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
tessera: an S3 gateway that erasure-codes objects across sites

usage:
  tessera serve [--config FILE] [--data-dir DIR] [--listen HOST:PORT]
                [--admin-listen HOST:PORT] [--cores N] [--domain NAME]
  tessera help

Defaults: S3 on 127.0.0.1:9000, admin on 127.0.0.1:9001, data in ./tessera-data.
Credentials: [[credentials]] in the config file, or TESSERA_ACCESS_KEY and
TESSERA_SECRET_KEY; with neither, a pair is generated on first start and
stored in DATA_DIR/credentials.toml (mode 0600).
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("tessera: unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
        None => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn serve(args: &[String]) -> ExitCode {
    let config = match ServeArgs::parse(args).and_then(|args| Config::load(&args)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tessera: {e}");
            return ExitCode::from(2);
        }
    };
    let (keyring, source) = match Keyring::load(&config, |name| std::env::var(name).ok()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("tessera: {e}");
            return ExitCode::from(2);
        }
    };
    match &source {
        KeySource::Generated(pair) => {
            println!(
                "Generated credentials (stored in {}):",
                config.server.data_dir.join("credentials.toml").display()
            );
            println!("  access key: {}", pair.access_key);
            println!("  secret key: {}", pair.secret_key);
        }
        KeySource::Stored => runtime::log(format_args!(
            "using the credentials stored in {}",
            config.server.data_dir.join("credentials.toml").display()
        )),
        KeySource::Config | KeySource::Environment => {
            runtime::log(format_args!("{} access key(s) configured", keyring.len()));
        }
    }
    if let Err(e) = std::fs::create_dir_all(&config.server.data_dir) {
        eprintln!(
            "tessera: data dir {}: {e}",
            config.server.data_dir.display()
        );
        return ExitCode::from(1);
    }
    match runtime::serve(config, keyring) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera: {e}");
            ExitCode::from(1)
        }
    }
}
