//! The `tessera-bench` binary: parses the arguments and runs a benchmark or the no-op server.
//! Exit codes: 0 success, 2 bad usage or setup, 3 the run finished but some requests failed.

use std::process::ExitCode;

use tessera_bench::args::{self, Command};
use tessera_bench::{noop, report, run};

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let env = |name: &str| std::env::var(name).ok();
    let command = match args::parse(&argv, &env) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("{e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{}", args::USAGE);
            ExitCode::SUCCESS
        }
        Command::NoopServer(config) => match noop::serve(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("noop-server: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run(config) => match run::run(&config) {
            Ok(results) => {
                if config.json {
                    print!("{}", report::json(&config, &results));
                } else {
                    print!("{}", report::table(&results));
                }
                if results.iter().any(|r| r.errors() > 0) {
                    ExitCode::from(3)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
    }
}
