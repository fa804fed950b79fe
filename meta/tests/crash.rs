//! Real crash test: a child process commits objects with group commit on `io_uring` files and
//! prints each key once its commit is acknowledged; the parent kills it with SIGKILL at a random
//! moment, reopens the directory and checks that every acknowledged key is there. Repeated for a
//! bounded number of rounds on the same directory, so later rounds also recover earlier ones.
//!
//! The test binary is its own child: with `TESSERA_META_CRASH_CHILD=<dir>` set it runs the
//! child loop instead of the test.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera_meta::storage::SplitMix64;
use tessera_meta::{testkit, FileStorage, MetaStore, StoreConfig};

const CHILD_ENV: &str = "TESSERA_META_CRASH_CHILD";
const ROUNDS: u64 = 6;
const CHILD_TASKS: u64 = 64;

fn config() -> StoreConfig {
    StoreConfig {
        // Small, so kills also land around snapshot writes.
        compact_log_bytes: 256 * 1024,
        ..StoreConfig::default()
    }
}

fn child(dir: &str, round: u64) {
    common::run_uring(async {
        let (store, _) = MetaStore::open(FileStorage::new(dir).unwrap(), config())
            .await
            .expect("child open");
        println!("ready");
        let mut tasks = Vec::new();
        for t in 0..CHILD_TASKS {
            let store = store.clone();
            tasks.push(monoio::spawn(async move {
                for i in 0.. {
                    let key = format!("r{round}-t{t}-{i}");
                    store
                        .put_object(testkit::typical_object("b", &key, i))
                        .await
                        .expect("child commit");
                    // Printed only after the commit is durable.
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {key}").unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await;
        }
    });
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let round = std::env::var("TESSERA_META_CRASH_ROUND")
            .unwrap()
            .parse()
            .unwrap();
        child(&dir, round);
        return;
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("crash test seed {seed}");
    let mut rng = SplitMix64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<String> = Vec::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, dir.path())
            .env("TESSERA_META_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let lines = lines.clone();
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    match line {
                        Ok(l) => lines.lock().unwrap().push(l),
                        Err(_) => break,
                    }
                }
            })
        };
        let started = Instant::now();
        // Wait for the first acknowledgement (not just "ready"): on a loaded machine the child
        // may need far longer than the random delay below to get its first commit through, and a
        // round that kills it before any ack tests nothing.
        while !lines.lock().unwrap().iter().any(|l| l.starts_with("ack ")) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "child never acknowledged a commit"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(20 + rng.below(300)));
        child.kill().unwrap(); // SIGKILL on Unix.
        child.wait().unwrap();
        reader.join().unwrap();
        let lines = lines.lock().unwrap();
        assert_eq!(lines.first().map(String::as_str), Some("ready"));
        let round_acks: Vec<String> = lines[1..]
            .iter()
            .filter_map(|l| l.strip_prefix("ack ").map(str::to_owned))
            .collect();
        assert!(
            !round_acks.is_empty(),
            "round {round}: the child acknowledged nothing"
        );
        acked.extend(round_acks.iter().cloned());
        let report = common::run_uring(async {
            let (store, report) = MetaStore::open(FileStorage::new(dir.path()).unwrap(), config())
                .await
                .expect("reopen after SIGKILL");
            for key in &acked {
                assert!(
                    store.object("b", key).is_some(),
                    "round {round}: acknowledged {key} lost"
                );
            }
            report
        });
        println!(
            "round {round}: {} acks this round, {} in total; recovered {} frames (snapshot {:?}), truncated {} bytes in {:?}",
            round_acks.len(),
            acked.len(),
            report.frames,
            report.snapshot,
            report.truncated_bytes,
            report.elapsed
        );
    }
    println!(
        "crash test ok: {ROUNDS} rounds, {} acknowledged commits all recovered",
        acked.len()
    );
}
