//! The `tessera` binary: `tessera serve [flags]` and `tessera recover [flags]`.

use std::process::ExitCode;

use tessera_core::config::{Config, ServeArgs};
use tessera_core::credentials::{KeySource, Keyring};
use tessera_core::{recover, runtime};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
tessera: an S3 gateway that erasure-codes objects across sites

usage:
  tessera serve [--config FILE] [--data-dir DIR] [--listen HOST:PORT]
                [--admin-listen HOST:PORT] [--cores N] [--domain NAME]
  tessera recover [--config FILE] [--data-dir DIR] [--cores N] [--force]
  tessera help

recover rebuilds DATA_DIR/meta from the shards at the configured sites (run it
with the gateway stopped). It refuses existing metadata unless --force, which
moves it aside to DATA_DIR/meta.replaced-<ms>.

Defaults: S3 on 127.0.0.1:9000, admin on 127.0.0.1:9001, data in ./tessera-data.
Credentials: [[credentials]] in the config file, or TESSERA_ACCESS_KEY and
TESSERA_SECRET_KEY; with neither, a pair is generated on first start and
stored in DATA_DIR/credentials.toml (mode 0600).
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(args.first().map(String::as_str), Some("serve" | "recover")) {
        // Before any thread exists: may replace the process with itself (same PID).
        tessera_core::rep_movsb::reexec_if_slow();
    }
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("recover") => recover(&args[1..]),
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

fn recover(args: &[String]) -> ExitCode {
    let force = args.iter().any(|a| a == "--force");
    let rest: Vec<String> = args.iter().filter(|a| *a != "--force").cloned().collect();
    let config = match ServeArgs::parse(&rest).and_then(|args| Config::load(&args)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tessera: {e}");
            return ExitCode::from(2);
        }
    };
    let mut runtime = match monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tessera: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let args = recover::RecoverArgs { force };
    let mut out = std::io::stdout();
    match runtime.block_on(recover::run(&config, &args, &mut out)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e @ recover::RecoverError::MetadataExists(_)) => {
            eprintln!("tessera: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("tessera: {e}");
            ExitCode::from(1)
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
