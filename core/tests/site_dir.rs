//! `dir` sites on real directories: round trips, crash visibility (a real `kill -9` of a
//! process in the middle of a write), and disk faults on tiny tmpfs mounts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tessera_core::site::config::{DirSiteConfig, FsyncPolicy};
use tessera_core::site::dir::TMP_DIR_NAME;
use tessera_core::site::{ByteRange, ChunkBuf, HealthState, Site, SiteConfig, SiteError};

fn run<F: std::future::Future>(future: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime")
        .block_on(future)
}

fn dir_site(path: &Path, fsync: FsyncPolicy) -> Result<Site, SiteError> {
    dir_site_with(path, fsync, true, true)
}

fn dir_site_with(
    path: &Path,
    fsync: FsyncPolicy,
    direct_io: bool,
    unnamed_files: bool,
) -> Result<Site, SiteError> {
    open_dir_site(path, fsync, direct_io, unnamed_files, true)
}

fn open_dir_site(
    path: &Path,
    fsync: FsyncPolicy,
    direct_io: bool,
    unnamed_files: bool,
    group_sync: bool,
) -> Result<Site, SiteError> {
    Site::open(&SiteConfig::Dir(DirSiteConfig {
        name: "disk".into(),
        path: path.to_path_buf(),
        fsync,
        direct_io,
        unnamed_files,
        group_sync,
    }))
}

fn group_sync_stats(site: &Site) -> tessera_core::site::dir::FsSyncStats {
    match site {
        Site::Dir(dir) => dir.group_sync_stats(),
        Site::S3(_) => unreachable!("a dir site"),
    }
}

async fn read_all(site: &Site, key: &str, len: usize) -> Vec<u8> {
    let (n, buf) = site
        .get_range(
            key,
            ByteRange {
                start: 0,
                len: len as u64,
            },
            Vec::with_capacity(len),
        )
        .await;
    assert_eq!(n.expect("get"), len, "{key}");
    buf
}

#[test]
fn listing_pages_walk_in_key_order() {
    // 2,600 shards in nested folders, with names that sort around folder boundaries ("a-b"
    // before every "a/..." key, "a0" after them): paging through with the continuation gives
    // exactly the sorted key list, with and without a prefix, and pages hold 1,000 keys.
    let dir = tempfile::tempdir().expect("tempdir");
    let site = dir_site(dir.path(), FsyncPolicy::Never).expect("open");
    let mut keys: Vec<String> = (0..2_590_u32)
        .map(|i| format!("{:02x}/{:08x}", i % 37, i.wrapping_mul(2_654_435_761)))
        .collect();
    keys.extend(
        [
            "a-b", "a/b", "a/c/d", "a/c-e", "a0", "b", "0a/x", "0a-", "0a/y/z", "a/c/f",
        ]
        .map(String::from),
    );
    run(async {
        for key in &keys {
            put(&site, key, key.as_bytes(), 64).await.expect("put");
        }
        for prefix in ["", "0a", "a/c", "1f/"] {
            let mut expected: Vec<&String> =
                keys.iter().filter(|k| k.starts_with(prefix)).collect();
            expected.sort();
            let mut listed = Vec::new();
            let mut continuation: Option<String> = None;
            loop {
                let page = site
                    .list(prefix, continuation.as_deref())
                    .await
                    .expect("list");
                assert!(page.entries.len() <= 1000);
                if page.continuation.is_some() {
                    assert_eq!(page.entries.len(), 1000, "only the last page is short");
                }
                listed.extend(page.entries.into_iter().map(|e| {
                    assert_eq!(e.len, e.key.len() as u64);
                    e.key
                }));
                continuation = page.continuation;
                if continuation.is_none() {
                    break;
                }
            }
            let expected: Vec<String> = expected.into_iter().cloned().collect();
            assert_eq!(listed, expected, "prefix {prefix:?}");
        }
    });
}

#[test]
fn large_shards_round_trip_at_every_alignment_and_replace_in_place() {
    // Shards of 256 KiB and more go through O_DIRECT and an aligned staging buffer: lengths
    // on and off block and staging boundaries, written in pieces that straddle them (an
    // engine chunk plus its 8-byte checksum, a block less one, one byte), read back exactly,
    // with the page cache path (direct_io = false) as the control, through unnamed files and
    // through named temporaries; and in engine chunk buffers written without a copy. Writing a key that exists (a repair re-creating a shard)
    // replaces its bytes whole.
    let dir = tempfile::tempdir().expect("tempdir");
    for (direct_io, unnamed) in [(true, true), (false, true), (true, false), (false, false)] {
        let site =
            dir_site_with(dir.path(), FsyncPolicy::Always, direct_io, unnamed).expect("open");
        run(async {
            let lengths = [
                256 << 10,
                (256 << 10) + 1,
                (1 << 20) + 3 * 8 + 17,
                (3 << 20) - 5,
            ];
            for (i, len) in lengths.into_iter().enumerate() {
                for piece in [(1 << 20) + 8, 4095, 100_003] {
                    let key = format!("d{direct_io}u{unnamed}/l{i}p{piece}");
                    let data = pattern(len, i as u8 ^ piece as u8);
                    put(&site, &key, &data, piece).await.expect("put");
                    assert_eq!(site.head(&key).await.expect("head").len, len as u64);
                    assert!(read_all(&site, &key, len).await == data, "{key}");
                }
                // As the engine writes: chunk buffers with the head room the writer asks for
                // (written from the buffer itself), or with the wrong room (copied), then a
                // footer from a plain buffer.
                for honest in [true, false] {
                    let key = format!("d{direct_io}u{unnamed}/l{i}chunks{honest}");
                    let data = pattern(len, i as u8 ^ 0x5a);
                    put_chunks(&site, &key, &data, (1 << 20) + 8, honest)
                        .await
                        .expect("put chunks");
                    assert!(read_all(&site, &key, len).await == data, "{key}");
                }
            }
            let key = format!("d{direct_io}u{unnamed}/replaced");
            put(&site, &key, &pattern(300_000, 1), 65_536)
                .await
                .expect("put");
            let newer = pattern(500_000, 2);
            put(&site, &key, &newer, 65_536).await.expect("replace");
            assert!(read_all(&site, &key, newer.len()).await == newer);
            let small = pattern(10, 3);
            put(&site, &key, &small, 4).await.expect("replace small");
            assert_eq!(read_all(&site, &key, small.len()).await, small);
        });
    }
    let leftovers = std::fs::read_dir(dir.path().join(TMP_DIR_NAME))
        .expect("tmp")
        .count();
    assert_eq!(leftovers, 0, "replacing left no temporary behind");
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn put(site: &Site, key: &str, data: &[u8], piece: usize) -> Result<(), SiteError> {
    let mut writer = site.put_shard(key, data.len() as u64).await?;
    let mut buf = Vec::with_capacity(piece);
    for chunk in data.chunks(piece) {
        buf.clear();
        buf.extend_from_slice(chunk);
        let (result, back) = writer.write(buf).await;
        buf = back;
        if let Err(err) = result {
            writer.abort().await;
            return Err(err);
        }
    }
    writer.finish().await
}

/// Writes `data` in `piece`-byte chunk buffers that leave the head room the writer asks for
/// (`honest`) or one byte more when it asks for any, then the last 100 bytes as a footer.
async fn put_chunks(
    site: &Site,
    key: &str,
    data: &[u8],
    piece: usize,
    honest: bool,
) -> Result<(), SiteError> {
    let mut writer = site.put_shard(key, data.len() as u64).await?;
    let (body, footer) = data.split_at(data.len().saturating_sub(100));
    let mut buf = ChunkBuf::take(piece);
    for chunk in body.chunks(piece) {
        let room = writer.head_room();
        buf.reset(if honest || room == 0 { room } else { room + 1 });
        buf.extend_from_slice(chunk);
        let (result, back) = writer.write_chunk(buf).await;
        buf = back;
        if let Err(err) = result {
            writer.abort().await;
            return Err(err);
        }
    }
    let (result, _) = writer.write(footer.to_vec()).await;
    result?;
    writer.finish().await
}

#[test]
fn small_shards_committed_together_share_a_syncfs() {
    // 40 small shards finishing at once on two sites of one filesystem (unnamed files and
    // named temporaries): with group_sync they take far fewer syncfs calls than commits and
    // all read back; large shards and sites without group_sync never use the batcher.
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&a).expect("mkdir");
    std::fs::create_dir(&b).expect("mkdir");
    std::thread::spawn(move || {
        let unnamed = open_dir_site(&a, FsyncPolicy::Always, true, true, true).expect("open");
        let named = open_dir_site(&b, FsyncPolicy::Always, true, false, true).expect("open");
        run(async {
            let writes: Vec<_> = (0..40_u8)
                .map(|i| {
                    let site = if i % 2 == 0 {
                        unnamed.clone()
                    } else {
                        named.clone()
                    };
                    monoio::spawn(async move {
                        let key = format!("{:02x}/small{i}", i % 5);
                        put(&site, &key, &pattern(4096 + usize::from(i), i), 1000).await
                    })
                })
                .collect();
            for write in writes {
                write.await.expect("put");
            }
            let stats = group_sync_stats(&unnamed);
            assert_eq!(
                stats,
                group_sync_stats(&named),
                "one batcher per filesystem"
            );
            assert_eq!(stats.served, 40);
            assert!(
                stats.syncs < 20,
                "40 concurrent commits took {} syncs",
                stats.syncs
            );
            for i in 0..40_u8 {
                let site = if i % 2 == 0 { &unnamed } else { &named };
                let key = format!("{:02x}/small{i}", i % 5);
                let len = 4096 + usize::from(i);
                assert_eq!(read_all(site, &key, len).await, pattern(len, i));
            }
            // A shard over 8 MiB does not use the batcher.
            let large = pattern((8 << 20) + 1, 9);
            put(&unnamed, "big/one", &large, 1 << 20)
                .await
                .expect("put");
            assert_eq!(group_sync_stats(&unnamed).served, 40);
        });
    })
    .join()
    .expect("thread");
    // Without group_sync (a new thread, so a new registry): no batcher is ever used.
    let c = dir.path().join("c");
    std::fs::create_dir(&c).expect("mkdir");
    std::thread::spawn(move || {
        let site = open_dir_site(&c, FsyncPolicy::Always, true, true, false).expect("open");
        run(async {
            put(&site, "00/x", b"hello", 5).await.expect("put");
            assert_eq!(read_all(&site, "00/x", 5).await, b"hello");
        });
        assert_eq!(group_sync_stats(&site).served, 0);
    })
    .join()
    .expect("thread");
}

#[test]
fn round_trip_ranges_head_list_delete() {
    // A shard written in pieces reads back whole and in ranges (including a range running
    // past the end, which comes back short); head, list (with prefix and paging state),
    // delete and delete_many behave, and deletes are idempotent.
    let dir = tempfile::tempdir().expect("tempdir");
    for fsync in [FsyncPolicy::Always, FsyncPolicy::Never] {
        let site = dir_site(dir.path(), fsync).expect("open");
        run(async {
            let data = pattern(300_001, 7);
            put(&site, "ab/cd/shard1", &data, 65_536)
                .await
                .expect("put");
            put(&site, "ab/cd/shard2", b"xyz", 2).await.expect("put");
            put(&site, "ef/shard3", b"", 1).await.expect("empty put");

            let (n, buf) = site
                .get_range(
                    "ab/cd/shard1",
                    ByteRange {
                        start: 0,
                        len: 300_001,
                    },
                    Vec::with_capacity(300_001),
                )
                .await;
            assert_eq!(n.expect("get"), 300_001);
            assert_eq!(buf, data);
            let (n, buf) = site
                .get_range(
                    "ab/cd/shard1",
                    ByteRange {
                        start: 1000,
                        len: 10,
                    },
                    buf,
                )
                .await;
            assert_eq!(n.expect("get"), 10);
            assert_eq!(buf, &data[1000..1010]);
            let (n, buf) = site
                .get_range(
                    "ab/cd/shard1",
                    ByteRange {
                        start: 299_990,
                        len: 100,
                    },
                    buf,
                )
                .await;
            assert_eq!(n.expect("short get"), 11);
            assert_eq!(buf, &data[299_990..]);
            let (n, buf) = site
                .get_range(
                    "ab/cd/shard1",
                    ByteRange {
                        start: 300_001,
                        len: 1,
                    },
                    buf,
                )
                .await;
            assert!(matches!(n, Err(SiteError::InvalidRange)));
            let (n, _) = site
                .get_range("ab/cd/missing", ByteRange { start: 0, len: 1 }, buf)
                .await;
            assert!(matches!(n, Err(SiteError::NotFound)));

            assert_eq!(site.head("ab/cd/shard2").await.expect("head").len, 3);
            assert_eq!(site.head("ef/shard3").await.expect("head").len, 0);
            assert!(matches!(site.head("nope").await, Err(SiteError::NotFound)));

            let page = site.list("ab/", None).await.expect("list");
            let keys: Vec<&str> = page.entries.iter().map(|e| e.key.as_str()).collect();
            assert_eq!(keys, ["ab/cd/shard1", "ab/cd/shard2"]);
            assert_eq!(page.entries[0].len, 300_001);
            assert!(page.continuation.is_none());
            let after = site.list("", Some("ab/cd/shard2")).await.expect("list");
            assert_eq!(after.entries.len(), 1);
            assert_eq!(after.entries[0].key, "ef/shard3");

            site.delete("ab/cd/shard2").await.expect("delete");
            site.delete("ab/cd/shard2")
                .await
                .expect("delete again is fine");
            let failed = site
                .delete_many(&[
                    "ab/cd/shard1".into(),
                    "ef/shard3".into(),
                    "../escape".into(),
                ])
                .await
                .expect("batch");
            assert_eq!(failed.len(), 1);
            assert!(matches!(failed[0].1, SiteError::InvalidKey));
            assert!(site.list("", None).await.expect("list").entries.is_empty());
            assert_eq!(site.health().state, HealthState::Up);
        });
    }
}

#[test]
fn a_shard_is_invisible_until_finish_and_abort_leaves_nothing() {
    // While a writer is open the key does not exist; a wrong length fails finish and leaves
    // nothing; abort leaves nothing; overwriting replaces the shard atomically.
    let dir = tempfile::tempdir().expect("tempdir");
    let site = dir_site(dir.path(), FsyncPolicy::Always).expect("open");
    run(async {
        let mut writer = site.put_shard("k/1", 8).await.expect("put");
        let (r, _) = writer.write(b"half".to_vec()).await;
        r.expect("write");
        assert!(matches!(site.head("k/1").await, Err(SiteError::NotFound)));
        assert!(site.list("", None).await.expect("list").entries.is_empty());
        assert!(matches!(
            writer.finish().await,
            Err(SiteError::LengthMismatch {
                expected: 8,
                actual: 4
            })
        ));
        assert!(matches!(site.head("k/1").await, Err(SiteError::NotFound)));

        let mut writer = site.put_shard("k/1", 3).await.expect("put");
        let (r, _) = writer.write(b"toolong".to_vec()).await;
        assert!(matches!(r, Err(SiteError::LengthMismatch { .. })));
        writer.abort().await;
        assert!(matches!(site.head("k/1").await, Err(SiteError::NotFound)));

        put(&site, "k/1", b"first", 5).await.expect("put");
        put(&site, "k/1", b"second!", 5).await.expect("overwrite");
        let (n, buf) = site
            .get_range(
                "k/1",
                ByteRange { start: 0, len: 64 },
                Vec::with_capacity(64),
            )
            .await;
        assert_eq!(n.expect("get"), 7);
        assert_eq!(buf, b"second!");
    });
    let leftovers = std::fs::read_dir(dir.path().join(TMP_DIR_NAME))
        .expect("tmp dir")
        .count();
    assert_eq!(
        leftovers, 0,
        "aborted and failed writers leave no temporaries"
    );
}

#[test]
fn keys_that_could_escape_the_root_are_refused() {
    // `..`, absolute paths and names under `.tmp` never reach the file system.
    let dir = tempfile::tempdir().expect("tempdir");
    let site = dir_site(dir.path(), FsyncPolicy::Never).expect("open");
    run(async {
        for key in ["../x", "/etc/passwd", ".tmp/x", "a//b", ""] {
            assert!(
                matches!(site.put_shard(key, 1).await, Err(SiteError::InvalidKey)),
                "{key:?}"
            );
            assert!(
                matches!(site.head(key).await, Err(SiteError::InvalidKey)),
                "{key:?}"
            );
        }
    });
}

#[test]
fn a_missing_root_is_an_error_and_takes_the_site_down() {
    // Opening a missing directory fails with RootMissing; removing the directory under a
    // running site turns requests into RootMissing, marks the site down (then requests fail
    // fast with Down), and a probe brings it back once the directory is there again.
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("not-mounted");
    assert!(matches!(
        dir_site(&missing, FsyncPolicy::Always),
        Err(SiteError::RootMissing)
    ));

    let root = dir.path().join("disk");
    std::fs::create_dir(&root).expect("mkdir");
    let site = dir_site(&root, FsyncPolicy::Always).expect("open");
    let writer_site = dir_site(&root, FsyncPolicy::Always).expect("open");
    run(async {
        put(&site, "a", b"1", 1).await.expect("put");
        std::fs::remove_dir_all(&root).expect("rm");
        // A write into a key folder under the vanished root must not recreate the root.
        let err = put(&writer_site, "ab/c", b"1", 1)
            .await
            .expect_err("no root");
        assert!(matches!(err, SiteError::RootMissing), "{err:?}");
        assert!(!root.exists(), "the missing root was recreated");
        assert!(matches!(site.head("a").await, Err(SiteError::RootMissing)));
        assert_eq!(site.health().state, HealthState::Down);
        assert!(matches!(site.head("a").await, Err(SiteError::Down)));
        assert!(matches!(site.probe().await, Err(SiteError::RootMissing)));
        std::fs::create_dir_all(root.join(TMP_DIR_NAME)).expect("remount");
        site.probe().await.expect("probe");
        assert_eq!(site.health().state, HealthState::Degraded);
        put(&site, "a", b"2", 1).await.expect("put after recovery");
    });
}

/// A tmpfs mounted for one test and unmounted when dropped.
struct TinyMount(PathBuf);

impl TinyMount {
    fn new(options: &str) -> TinyMount {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CAP_SYS_ADMIN)"
        );
        TinyMount(dir)
    }
}

impl Drop for TinyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_full_disk_is_an_error_that_degrades_the_site() {
    // On a 256 KiB tmpfs, a 1 MiB shard fails with DiskFull (no panic), leaves no visible
    // shard and no temporary, and the site is degraded; smaller shards still fit afterwards.
    let mount = TinyMount::new("size=256k");
    let site = dir_site(&mount.0, FsyncPolicy::Always).expect("open");
    run(async {
        let big = pattern(1 << 20, 1);
        let err = put(&site, "big", &big, 64 * 1024)
            .await
            .expect_err("disk full");
        assert!(matches!(err, SiteError::DiskFull), "{err:?}");
        assert_eq!(site.health().state, HealthState::Degraded);
        assert!(matches!(site.head("big").await, Err(SiteError::NotFound)));
        // The aborted temporary's pages are freed when the kernel drops its last reference to
        // the file, which under load can trail the unlink by a moment: retry briefly.
        let mut small = put(&site, "small", b"fits", 4).await;
        for _ in 0..50 {
            if !matches!(small, Err(SiteError::DiskFull)) {
                break;
            }
            monoio::time::sleep(std::time::Duration::from_millis(20)).await;
            small = put(&site, "small", b"fits", 4).await;
        }
        small.expect("small put");
    });
    let leftovers = std::fs::read_dir(mount.0.join(TMP_DIR_NAME))
        .expect("tmp")
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn a_read_only_disk_is_permission_denied_and_takes_the_site_down() {
    // Root may write anywhere, so the read-only case uses a tmpfs remounted read-only: writes
    // fail with PermissionDenied and the site goes down; reads of existing shards still work
    // through a fresh site instance.
    let mount = TinyMount::new("size=1m");
    let site = dir_site(&mount.0, FsyncPolicy::Always).expect("open");
    run(async { put(&site, "old", b"kept", 4).await.expect("put") });
    let status = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&mount.0)
        .status()
        .expect("remount");
    assert!(status.success());
    run(async {
        let err = put(&site, "new", b"x", 1).await.expect_err("read-only");
        assert!(matches!(err, SiteError::PermissionDenied), "{err:?}");
        assert_eq!(site.health().state, HealthState::Down);
    });
    let fresh = dir_site(&mount.0, FsyncPolicy::Always).expect("open read-only");
    run(async {
        assert_eq!(fresh.head("old").await.expect("head").len, 4);
    });
}

const CRASH_CHILD_ENV: &str = "TESSERA_SITE_CRASH_CHILD_DIR";
const CRASH_CHILD_UNNAMED_ENV: &str = "TESSERA_SITE_CRASH_CHILD_UNNAMED";

#[test]
fn crash_while_writing_leaves_no_visible_shard() {
    // Runs itself as a child process that writes a large shard slowly (with O_DIRECT, into an
    // unnamed file, then into a named temporary), kills it with SIGKILL in the middle of the
    // write, and checks that the key is absent (head, get, list): the unnamed file left no
    // name at all, the named temporary is swept.
    if let Ok(dir) = std::env::var(CRASH_CHILD_ENV) {
        // Child: write forever-ish, telling the parent when the shard is half-written.
        let unnamed = std::env::var(CRASH_CHILD_UNNAMED_ENV).is_ok_and(|v| v == "1");
        let site =
            dir_site_with(Path::new(&dir), FsyncPolicy::Always, true, unnamed).expect("open");
        run(async {
            let mut writer = site.put_shard("victim/shard", 64 << 20).await.expect("put");
            let mut buf = vec![0xA5u8; 1 << 20];
            for i in 0..64 {
                let (r, back) = writer.write(buf).await;
                r.expect("write");
                buf = back;
                if i == 3 {
                    let marker = Path::new(&dir).with_extension("ready");
                    std::fs::write(marker, b"").expect("marker");
                }
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
            writer.finish().await.expect("finish");
        });
        return;
    }
    for unnamed in [true, false] {
        crash_one_writer(unnamed);
    }
}

fn crash_one_writer(unnamed: bool) {
    let top = tempfile::tempdir().expect("tempdir");
    let site_dir = top.path().join("site");
    std::fs::create_dir(&site_dir).expect("mkdir");
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "crash_while_writing_leaves_no_visible_shard",
            "--nocapture",
        ])
        .env(CRASH_CHILD_ENV, &site_dir)
        .env(CRASH_CHILD_UNNAMED_ENV, if unnamed { "1" } else { "0" })
        .spawn()
        .expect("spawn child");
    let ready = site_dir.with_extension("ready");
    let mut waited = 0;
    while !ready.exists() {
        assert!(waited < 600, "child never got half-way");
        std::thread::sleep(Duration::from_millis(50));
        waited += 1;
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the child was killed, not finished");

    let temporaries: Vec<u64> = std::fs::read_dir(site_dir.join(TMP_DIR_NAME))
        .expect("tmp")
        .map(|e| e.expect("entry").metadata().expect("meta").len())
        .collect();
    if unnamed {
        // (A filesystem without O_TMPFILE falls back to a named temporary.)
        assert!(temporaries.len() <= 1, "{temporaries:?}");
    } else {
        assert_eq!(
            temporaries.len(),
            1,
            "the half-written shard is a temporary"
        );
        assert!(temporaries[0] >= 4 << 20 && temporaries[0] < 64 << 20);
    }
    let names: Vec<_> = std::fs::read_dir(site_dir.join("victim"))
        .map(|dir| dir.map(|e| e.expect("entry").file_name()).collect())
        .unwrap_or_default();
    assert!(
        names.is_empty(),
        "nothing named in the key's folder: {names:?}"
    );
    let site = dir_site(&site_dir, FsyncPolicy::Always).expect("reopen");
    run(async {
        assert!(matches!(
            site.head("victim/shard").await,
            Err(SiteError::NotFound)
        ));
        let (r, _) = site
            .get_range(
                "victim/shard",
                ByteRange { start: 0, len: 1 },
                Vec::with_capacity(1),
            )
            .await;
        assert!(matches!(r, Err(SiteError::NotFound)));
        assert!(site.list("", None).await.expect("list").entries.is_empty());
    });
    let Site::Dir(dir_site) = &site else {
        panic!("dir site");
    };
    assert_eq!(
        dir_site.sweep_temporaries(Duration::ZERO).expect("sweep"),
        temporaries.len()
    );
}
