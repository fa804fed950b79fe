//! The buckets deleted through this data directory, and when: what lets the scrub collect the
//! shards of a bucket the metadata no longer knows.
//!
//! DeleteBucket needs the bucket empty, but shards nobody references can outlive it: a write
//! the gateway was killed in, the part index of a completion that lost its condition. While
//! the bucket exists, the scrub collects them after the grace period. Once it is gone, the
//! scrub cannot tell them from the shards a gateway on an empty data directory sees before
//! `tessera recover` ran, which it must keep. This file tells the two apart: a shard of a
//! bucket listed here, written before that deletion, is an orphan.
//!
//! One line per deletion, `<milliseconds since the epoch> <bucket name>`, appended and
//! fsynced after the deletion commits (a crash in between keeps the orphans: the safe side).
//! It lives beside the metadata, so a lost data directory loses both together. It is not part
//! of the metadata log: the log's record format is frozen.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// The file's name in the data directory.
pub const FILE: &str = "deleted-buckets";

/// Appends the deletion of `name` at `when_ms` and makes it durable.
pub fn record(data_dir: &Path, name: &str, when_ms: u64) -> std::io::Result<()> {
    use std::io::{Read as _, Seek as _};
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(data_dir.join(FILE))?;
    // A line torn by a crash mid-append is ended first, so that it cannot run into this one
    // (and, say, lend its digits to this line's time).
    let mut line = String::new();
    if file.seek(std::io::SeekFrom::End(0))? > 0 {
        let mut last = [0_u8; 1];
        file.seek(std::io::SeekFrom::End(-1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            line.push('\n');
        }
    }
    let _ = writeln!(line, "{when_ms} {name}");
    file.write_all(line.as_bytes())?;
    file.sync_all()
}

/// The last deletion time of every bucket named in `text`; lines that do not parse (a torn
/// last line) are skipped.
#[must_use]
pub fn parse(text: &str) -> HashMap<String, u64> {
    let mut deleted = HashMap::new();
    for line in text.lines() {
        let Some((when, name)) = line.split_once(' ') else {
            continue;
        };
        let Ok(when) = when.parse::<u64>() else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let last = deleted.entry(name.to_owned()).or_insert(when);
        *last = (*last).max(when);
    }
    deleted
}

/// The deletions recorded in `data_dir` (none when the file is missing or unreadable). A
/// time after `now_ms` cannot be a deletion that happened: such a line is ignored.
#[must_use]
pub fn load(data_dir: &Path, now_ms: u64) -> HashMap<String, u64> {
    let mut deleted = std::fs::read_to_string(data_dir.join(FILE))
        .map(|text| parse(&text))
        .unwrap_or_default();
    deleted.retain(|_, when| *when <= now_ms);
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_deletion_of_each_bucket_counts() {
        let deleted =
            parse("100 photos\n250 logs\n300 photos\n200 photos\nbad line\n12x a\n7 \n40");
        assert_eq!(deleted.len(), 2);
        assert_eq!(deleted["photos"], 300);
        assert_eq!(deleted["logs"], 250);
    }

    #[test]
    fn records_append_and_load_back() {
        let dir = std::env::temp_dir().join(format!("tessera-deleted-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(load(&dir, 100).is_empty());
        record(&dir, "a", 5).unwrap();
        record(&dir, "b", 6).unwrap();
        record(&dir, "a", 9).unwrap();
        let deleted = load(&dir, 100);
        assert_eq!((deleted["a"], deleted["b"]), (9, 6));
        // A torn last line ("1" of a time) does not merge with the next record.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join(FILE))
            .unwrap()
            .write_all(b"1")
            .unwrap();
        record(&dir, "c", 7).unwrap();
        let deleted = load(&dir, 100);
        assert_eq!(deleted.get("c"), Some(&7));
        // Times from the future are no deletions.
        record(&dir, "d", 500).unwrap();
        assert_eq!(load(&dir, 100).get("d"), None);
        assert_eq!(load(&dir, 500).get("d"), Some(&500));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
