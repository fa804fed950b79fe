//! One core moving data to one S3 backend: PUT and GET throughput, the client thread's CPU
//! seconds per GiB, and the connection reuse rate, over plain HTTP (unsigned and signed
//! payloads) and over TLS. The backend is radosgw (`perf-scripts/s3-servers/radosgw.sh`).
//! PUTs stream 4 MiB shards in 1 MiB buffers, as the engine writes them; GETs read in the
//! ranges the engine asks a site for (4 MiB for a 2+1 object), and again in 1 MiB ranges.
//!
//! By default it moves a small amount (32 MiB each way per mode) so it stays a quick test that
//! checks the data and the reuse rate; `perf-scripts/s3-servers/site-bench.sh` runs it in
//! release with `TESSERA_SITE_BENCH_MIB` set higher and prints the figures. Only the CPU time
//! of the thread running the site is counted, so the backend's own cost is excluded.

use std::time::{Duration, Instant};

// The site client runs inside the gateway, which runs on mimalloc (rustls allocates per record).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use tessera_core::site::config::{PayloadSigning, S3SiteConfig};
use tessera_core::site::{ByteRange, Site, SiteConfig};

/// Shard size: the engine's 1 MiB chunk × 4 stripes.
const SHARD_BYTES: usize = 4 << 20;
/// Buffer size handed to each write and read, like the engine's pool buffers.
const BUFFER_BYTES: usize = 1 << 20;
/// Concurrent transfers on the core.
const TASKS: usize = 4;

/// CPU time of the calling thread: (user, system).
fn thread_cpu() -> (Duration, Duration) {
    // SAFETY: rusage is plain data, fully written by getrusage on success.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage; RUSAGE_THREAD exists on Linux ≥ 2.6.26.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &raw mut usage) };
    assert_eq!(rc, 0);
    let time = |t: libc::timeval| {
        let micros = u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000
            + u64::try_from(t.tv_usec).unwrap_or(0);
        Duration::from_micros(micros)
    };
    (time(usage.ru_utime), time(usage.ru_stime))
}

struct Figures {
    mib_per_s: f64,
    cpu_s_per_gib: f64,
    user_s_per_gib: f64,
}

fn figures(bytes: usize, wall: Duration, start: (Duration, Duration)) -> Figures {
    let end = thread_cpu();
    let (user, system) = (end.0.saturating_sub(start.0), end.1.saturating_sub(start.1));
    let gib = bytes as f64 / f64::from(1u32 << 30);
    Figures {
        mib_per_s: bytes as f64 / f64::from(1u32 << 20) / wall.as_secs_f64(),
        cpu_s_per_gib: (user + system).as_secs_f64() / gib,
        user_s_per_gib: user.as_secs_f64() / gib,
    }
}

/// Range of one GET in the engine's reads of a 2+1 object from `s3` sites: half of its
/// per-step batch (each of the two data shards gives its part of the batch in one request).
const ENGINE_RANGE_BYTES: usize = (tessera_core::engine::read::READ_BATCH_BYTES / 2) as usize;
const _: () = assert!(SHARD_BYTES % ENGINE_RANGE_BYTES == 0 && SHARD_BYTES % BUFFER_BYTES == 0);

/// Reads every shard the PUT phase wrote, `range_bytes` per request in `TASKS` concurrent
/// tasks, checking the bytes; returns the figures.
async fn get_all(
    site: &Site,
    shards_per_task: usize,
    range_bytes: usize,
    pattern: &[u8],
) -> Figures {
    let (wall0, cpu0) = (Instant::now(), thread_cpu());
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let site = site.clone();
        let expected = pattern.to_vec();
        handles.push(monoio::spawn(async move {
            let mut buf = Vec::with_capacity(range_bytes);
            for i in 0..shards_per_task {
                let key = format!("bench/{task}/{i}");
                for part in 0..SHARD_BYTES / range_bytes {
                    let range = ByteRange {
                        start: (part * range_bytes) as u64,
                        len: range_bytes as u64,
                    };
                    let (n, back) = site.get_range(&key, range, buf).await;
                    assert_eq!(n.expect("get"), range_bytes);
                    buf = back;
                    // The shard is the pattern over and over, and every range starts at a
                    // multiple of its length. Checking one byte per KiB keeps the check out of
                    // the CPU figure.
                    assert!(buf
                        .iter()
                        .step_by(1024)
                        .zip(expected.iter().cycle().step_by(1024))
                        .all(|(a, b)| a == b));
                }
            }
        }));
    }
    for handle in handles {
        handle.await;
    }
    figures(shards_per_task * TASKS * SHARD_BYTES, wall0.elapsed(), cpu0)
}

fn bench_mode(label: &str, config: &S3SiteConfig, total_mib: usize) {
    // `TESSERA_SITE_BENCH_MODES=https` (a comma-separated list of labels' first words or whole
    // labels) runs only those modes, e.g. to profile one.
    if let Ok(modes) = std::env::var("TESSERA_SITE_BENCH_MODES") {
        if !modes
            .split(',')
            .any(|m| label == m || label.starts_with(&format!("{m} ")))
        {
            return;
        }
    }
    let site = Site::open(&SiteConfig::S3(config.clone())).expect("open");
    let shards = (total_mib << 20) / SHARD_BYTES;
    let shards_per_task = shards.div_ceil(TASKS);
    let mut runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // Warm up: bucket creation and first connections are not part of the figures.
        if let Site::S3(s3) = &site {
            s3.ensure_bucket().await.expect("bucket");
        }
        let pattern: Vec<u8> = (0..BUFFER_BYTES).map(|i| (i % 251) as u8).collect();

        let (wall0, cpu0) = (Instant::now(), thread_cpu());
        let mut handles = Vec::new();
        for task in 0..TASKS {
            let site = site.clone();
            let pattern = pattern.clone();
            handles.push(monoio::spawn(async move {
                // The buffer comes back unchanged from each write, so it is filled once: the
                // figures count the site's work, not the filling of buffers.
                let mut buf = pattern;
                for i in 0..shards_per_task {
                    let key = format!("bench/{task}/{i}");
                    let mut writer = site.put_shard(&key, SHARD_BYTES as u64).await.expect("put");
                    for _ in 0..SHARD_BYTES / BUFFER_BYTES {
                        let (r, back) = writer.write(buf).await;
                        r.expect("write");
                        buf = back;
                    }
                    writer.finish().await.expect("finish");
                }
            }));
        }
        for handle in handles {
            handle.await;
        }
        let put = figures(shards_per_task * TASKS * SHARD_BYTES, wall0.elapsed(), cpu0);

        let get = get_all(&site, shards_per_task, ENGINE_RANGE_BYTES, &pattern).await;
        let get_small = get_all(&site, shards_per_task, BUFFER_BYTES, &pattern).await;

        let keys: Vec<String> = (0..TASKS)
            .flat_map(|t| (0..shards_per_task).map(move |i| format!("bench/{t}/{i}")))
            .collect();
        for batch in keys.chunks(1000) {
            assert!(site.delete_many(batch).await.expect("cleanup").is_empty());
        }
        let Site::S3(s3) = &site else { unreachable!() };
        let stats = s3.pool_stats();
        let reuse = stats.reused as f64 / (stats.reused + stats.opened) as f64;
        println!(
            "site-bench {label:<15} PUT {:>5.0} MiB/s {:>5.3} CPU-s/GiB (user {:>5.3}) | \
             GET {:>5.0} MiB/s {:>5.3} CPU-s/GiB (user {:>5.3}) | \
             GET 1 MiB ranges {:>5.0} MiB/s {:>5.3} CPU-s/GiB | \
             connections opened {} reused {} (reuse {:.1} %)",
            put.mib_per_s,
            put.cpu_s_per_gib,
            put.user_s_per_gib,
            get.mib_per_s,
            get.cpu_s_per_gib,
            get.user_s_per_gib,
            get_small.mib_per_s,
            get_small.cpu_s_per_gib,
            stats.opened,
            stats.reused,
            reuse * 100.0
        );
        assert!(
            stats.opened <= TASKS as u64 + 1,
            "pool bounded by concurrency: {stats:?}"
        );
        assert!(reuse > 0.8, "keep-alive reuse under load: {stats:?}");
    });
}

/// What moving the same bytes costs this machine's kernel with no client logic at all: a
/// blocking `std::net` writer of `BUFFER_BYTES` at a time over loopback TCP to a thread that
/// reads them into one buffer: (sender, receiver) figures, each thread's own CPU. No client
/// sends for less here (the receiver's one buffer stays in the CPU cache, which a client reading
/// many ranges does not get); on loopback the kernel also runs the peer's TCP input on the
/// sending thread (a real NIC leaves that to the other host).
fn tcp_floor(total: usize) -> (Figures, Figures) {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let reader = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; BUFFER_BYTES];
        let (wall0, cpu0) = (Instant::now(), thread_cpu());
        let mut read = 0;
        while let Ok(n @ 1..) = socket.read(&mut buf) {
            read += n;
        }
        (read, figures(read, wall0.elapsed(), cpu0))
    });
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let buf: Vec<u8> = (0..BUFFER_BYTES).map(|i| (i % 251) as u8).collect();
    let (wall0, cpu0) = (Instant::now(), thread_cpu());
    for _ in 0..total / BUFFER_BYTES {
        stream.write_all(&buf).expect("send");
    }
    let sent = figures(total / BUFFER_BYTES * BUFFER_BYTES, wall0.elapsed(), cpu0);
    drop(stream);
    let (read, received) = reader.join().expect("reader");
    assert_eq!(read, total / BUFFER_BYTES * BUFFER_BYTES);
    (sent, received)
}

/// What AES-256-GCM (the suite radosgw's TLS 1.3 picks) costs alone, sealing `total` bytes in
/// full 16 KiB records with ring, the provider rustls runs on.
fn aes_gcm_floor(total: usize) -> Figures {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).expect("key"));
    let mut record = vec![0x5au8; 16 * 1024];
    let (wall0, cpu0) = (Instant::now(), thread_cpu());
    for seq in 0..total / record.len() {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&(seq as u64).to_be_bytes());
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut record,
            )
            .expect("seal");
        let _ = std::hint::black_box(tag);
    }
    figures(total, wall0.elapsed(), cpu0)
}

#[test]
fn one_core_put_get_throughput_cpu_and_reuse() {
    // Moves data through one site on one core in each transport mode and checks the data and
    // that connections are reused; prints MiB/s, CPU-s/GiB and the reuse rate.
    if let Some((tunables, slowdown)) = tessera_core::rep_movsb::tunables_needed() {
        // The gateway re-executes itself with this glibc tunable on such CPUs
        // (`tessera_core::rep_movsb`); the site client is measured as it runs there.
        println!("site-bench: memcpy {slowdown:.0}x slower misaligned; rerun with GLIBC_TUNABLES={tunables}");
        let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "one_core_put_get_throughput_cpu_and_reuse",
                "--nocapture",
            ])
            .env("GLIBC_TUNABLES", tunables)
            .status()
            .expect("rerun");
        assert!(status.success(), "the rerun failed: {status}");
        return;
    }
    let var = |name: &str| std::env::var(name).ok();
    let (Some(endpoint), Some(access_key), Some(secret_key)) = (
        var("TESSERA_RGW_ENDPOINT"),
        var("TESSERA_RGW_ACCESS_KEY"),
        var("TESSERA_RGW_SECRET_KEY"),
    ) else {
        let hint = "TESSERA_RGW_* not set: run perf-scripts/s3-servers/radosgw.sh start";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{hint}");
        eprintln!("not run: {hint}");
        return;
    };
    let total_mib: usize = var("TESSERA_SITE_BENCH_MIB").map_or(32, |v| v.parse().expect("MiB"));
    let mut bucket = [0u8; 4];
    getrandom::getrandom(&mut bucket).expect("random");
    let mut config = S3SiteConfig::new(
        "bench",
        &endpoint,
        "us-east-1",
        &format!("tessera-bench-{}", hex::encode(bucket)),
        &access_key,
        &secret_key,
    );
    config.connections_max = 16;
    config.first_byte_timeout_ms = 30_000;
    config.idle_timeout_ms = 30_000;
    config.payload_signing = PayloadSigning::Unsigned;
    let ((send, receive), aes) = (tcp_floor(total_mib << 20), aes_gcm_floor(total_mib << 20));
    println!(
        "site-bench floor: loopback TCP send {:.3} receive {:.3} CPU-s/GiB; AES-256-GCM seal \
         {:.0} MiB/s {:.3} CPU-s/GiB; TLS send floor (TCP send + seal) {:.3} CPU-s/GiB",
        send.cpu_s_per_gib,
        receive.cpu_s_per_gib,
        aes.mib_per_s,
        aes.cpu_s_per_gib,
        send.cpu_s_per_gib + aes.cpu_s_per_gib
    );
    bench_mode("http unsigned", &config, total_mib);
    config.payload_signing = PayloadSigning::Signed;
    bench_mode("http signed", &config, total_mib);
    if let (Some(tls), Some(ca)) = (var("TESSERA_RGW_TLS_ENDPOINT"), var("TESSERA_RGW_CA_FILE")) {
        config.endpoint = tls;
        config.ca_file = Some(ca.into());
        config.payload_signing = PayloadSigning::Auto;
        bench_mode("https unsigned", &config, total_mib);
    }
}
