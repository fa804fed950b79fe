//! S3 listing: one core's page from its ordered index, and the merge of all cores' pages.
//!
//! ```text
//!  core 0 index ──list_page──► page 0 (<= max_keys items, sorted) ─┐
//!  core 1 index ──list_page──► page 1                              ├─ merge_pages ─► S3 page
//!  core N index ──list_page──► page N ─────────────────────────────┘
//! ```
//! Keys compare as UTF-8 bytes, which is S3's order. An item is an object or a common prefix;
//! `max_keys` bounds both together, as S3 does. Pure: no I/O.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::record::{ETag, Object};

/// What a listing shows of an object, kept in the ordered map beside each key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    pub size: u64,
    pub etag: ETag,
    pub mtime_ms: u64,
}

impl Listed {
    #[must_use]
    pub fn of(object: &Object) -> Listed {
        Listed {
            size: object.size,
            etag: object.etag,
            mtime_ms: object.mtime_ms,
        }
    }
}

/// Most items one page may hold; S3 never returns more than 1000 keys per page.
pub const LIST_KEYS_MAX: usize = 1000;

/// What to list within one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up into common prefixes at the first occurrence of this after the prefix.
    pub delimiter: Option<String>,
    /// Only items strictly after this (v1 `marker`, v2 `start-after` or the decoded continuation
    /// token; the caller passes the largest of them).
    pub start_after: Option<String>,
    /// Clamped to [`LIST_KEYS_MAX`].
    pub max_keys: usize,
}

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub key: String,
    pub size: u64,
    pub etag: ETag,
    pub mtime_ms: u64,
}

/// An object or a common prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListItem {
    Object(ListEntry),
    Prefix(String),
}

impl ListItem {
    /// The key or prefix: what orders items and what the next marker is made of.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            ListItem::Object(e) => &e.key,
            ListItem::Prefix(p) => p,
        }
    }
}

/// One page: items in key order, and whether more follow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub items: Vec<ListItem>,
    pub is_truncated: bool,
}

impl ListPage {
    /// The marker to continue from (`NextMarker`, or what a continuation token encodes): the
    /// last item's name, present only when the page is truncated.
    #[must_use]
    pub fn next_marker(&self) -> Option<&str> {
        if self.is_truncated {
            self.items.last().map(ListItem::name)
        } else {
            None
        }
    }

    /// The objects of the page (S3 `Contents`).
    pub fn objects(&self) -> impl Iterator<Item = &ListEntry> {
        self.items.iter().filter_map(|i| match i {
            ListItem::Object(e) => Some(e),
            ListItem::Prefix(_) => None,
        })
    }

    /// The common prefixes of the page (S3 `CommonPrefixes`).
    pub fn common_prefixes(&self) -> impl Iterator<Item = &str> {
        self.items.iter().filter_map(|i| match i {
            ListItem::Prefix(p) => Some(p.as_str()),
            ListItem::Object(_) => None,
        })
    }
}

/// The smallest byte string greater than every string that starts with `prefix`, or `None` when
/// no such string exists (a prefix of only 0xFF bytes, impossible in UTF-8 but handled).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < u8::MAX {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

/// Lists one core's objects of one bucket.
#[must_use]
pub fn list_page(objects: &BTreeMap<Box<[u8]>, Listed>, query: &ListQuery) -> ListPage {
    let limit = query.max_keys.min(LIST_KEYS_MAX);
    let mut page = ListPage::default();
    if limit == 0 {
        return page;
    }
    let prefix = query.prefix.as_bytes();
    let after = query.start_after.as_deref().map(str::as_bytes);
    let delimiter = query
        .delimiter
        .as_deref()
        .filter(|d| !d.is_empty())
        .map(str::as_bytes);
    let lower: Bound<&[u8]> = match after {
        Some(a) if a >= prefix => Bound::Excluded(a),
        _ => Bound::Included(prefix),
    };
    let mut iter = objects.range::<[u8], _>((lower, Bound::Unbounded));
    let mut seek: Vec<u8>;
    while let Some((key, object)) = iter.next() {
        if !key.starts_with(prefix) {
            break;
        }
        if page.items.len() == limit {
            // Another key under the prefix exists past the last item: as an object or as a
            // common prefix not yet returned (returned ones were skipped past), it is more.
            page.is_truncated = true;
            break;
        }
        let rolled = delimiter.and_then(|d| {
            key[prefix.len()..]
                .windows(d.len())
                .position(|w| w == d)
                .map(|at| &key[..prefix.len() + at + d.len()])
        });
        if let Some(common) = rolled {
            if after.is_none_or(|a| common > a) {
                // Safe: `common` is a prefix of a key ending right after a whole delimiter,
                // both UTF-8, so it is UTF-8 too.
                let name = std::str::from_utf8(common).map(str::to_owned);
                debug_assert!(name.is_ok());
                page.items.push(ListItem::Prefix(name.unwrap_or_default()));
            }
            match prefix_successor(common) {
                Some(next) => {
                    seek = next;
                    iter = objects.range::<[u8], _>((Bound::Included(&seek[..]), Bound::Unbounded));
                }
                None => break,
            }
            continue;
        }
        // Keys come from UTF-8 strings; a lossy conversion can never change one.
        page.items.push(ListItem::Object(ListEntry {
            key: String::from_utf8_lossy(key).into_owned(),
            size: object.size,
            etag: object.etag,
            mtime_ms: object.mtime_ms,
        }));
    }
    page
}

/// Merges the pages every core returned for the same query into the page S3 would return.
///
/// Correct because a truncated core page holds exactly `limit` items: the `limit` smallest
/// merged items are then all at or before that core's last item, so nothing it has not yet
/// returned can sort before the merged page's end.
#[must_use]
pub fn merge_pages(pages: Vec<ListPage>, max_keys: usize) -> ListPage {
    let limit = max_keys.min(LIST_KEYS_MAX);
    let mut any_truncated = false;
    let mut items: Vec<ListItem> = Vec::with_capacity(pages.iter().map(|p| p.items.len()).sum());
    for page in pages {
        assert!(
            !page.is_truncated || page.items.len() == limit,
            "a truncated core page is full"
        );
        any_truncated |= page.is_truncated;
        items.extend(page.items);
    }
    items.sort_by(|a, b| a.name().as_bytes().cmp(b.name().as_bytes()));
    // The same common prefix can come from several cores; a key is owned by one core only.
    items.dedup_by(|a, b| a.name() == b.name());
    let is_truncated = any_truncated || items.len() > limit;
    items.truncate(limit);
    ListPage {
        items,
        is_truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::typical_object;

    fn objects(keys: &[&str]) -> BTreeMap<Box<[u8]>, Listed> {
        keys.iter()
            .map(|k| (k.as_bytes().into(), Listed::of(&typical_object("b", k, 1))))
            .collect()
    }

    fn query(prefix: &str, delimiter: Option<&str>, after: Option<&str>, max: usize) -> ListQuery {
        ListQuery {
            prefix: prefix.to_owned(),
            delimiter: delimiter.map(str::to_owned),
            start_after: after.map(str::to_owned),
            max_keys: max,
        }
    }

    fn names(page: &ListPage) -> Vec<&str> {
        page.items.iter().map(ListItem::name).collect()
    }

    /// The example from the S3 documentation on listing keys hierarchically.
    const S3_DOC_KEYS: &[&str] = &[
        "sample.jpg",
        "photos/2006/January/sample.jpg",
        "photos/2006/February/sample2.jpg",
        "photos/2006/February/sample3.jpg",
        "photos/2006/February/sample4.jpg",
    ];

    #[test]
    fn delimiter_rolls_up_common_prefixes() {
        // The S3 docs example: delimiter "/" at the root gives one key and one common prefix;
        // prefix "photos/2006/" gives the two month prefixes.
        let objs = objects(S3_DOC_KEYS);
        let root = list_page(&objs, &query("", Some("/"), None, 1000));
        assert_eq!(names(&root), ["photos/", "sample.jpg"]);
        assert_eq!(root.common_prefixes().collect::<Vec<_>>(), ["photos/"]);
        assert_eq!(root.objects().count(), 1);
        assert!(!root.is_truncated);
        let nested = list_page(&objs, &query("photos/2006/", Some("/"), None, 1000));
        assert_eq!(
            nested.common_prefixes().collect::<Vec<_>>(),
            ["photos/2006/February/", "photos/2006/January/"]
        );
        let flat = list_page(&objs, &query("photos/", None, None, 1000));
        assert_eq!(flat.items.len(), 4);
    }

    #[test]
    fn marker_inside_a_common_prefix_skips_the_rest_of_it() {
        // With delimiter "/", a marker that lies inside "a/" (or equals it) must not return "a/"
        // again: listing resumes with the next prefix or key after it.
        let objs = objects(&["a/1", "a/2", "a/3", "b", "c/1"]);
        let inside = list_page(&objs, &query("", Some("/"), Some("a/2"), 1000));
        assert_eq!(names(&inside), ["b", "c/"]);
        let equal = list_page(&objs, &query("", Some("/"), Some("a/"), 1000));
        assert_eq!(names(&equal), ["b", "c/"]);
        let before = list_page(&objs, &query("", Some("/"), Some("a"), 1000));
        assert_eq!(names(&before), ["a/", "b", "c/"]);
    }

    #[test]
    fn pages_with_max_keys_continue_without_gaps() {
        // Pages of one item, each continuing from the previous next_marker, visit every item
        // exactly once; max-keys 0 returns nothing and max-keys above 1000 is clamped.
        let objs = objects(&["a/1", "a/2", "b", "c/1", "c/2", "d"]);
        let mut after: Option<String> = None;
        let mut seen = Vec::new();
        loop {
            let page = list_page(&objs, &query("", Some("/"), after.as_deref(), 1));
            assert!(page.items.len() <= 1);
            seen.extend(names(&page).iter().map(|s| (*s).to_owned()));
            match page.next_marker() {
                Some(m) => after = Some(m.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, ["a/", "b", "c/", "d"]);
        let zero = list_page(&objs, &query("", None, None, 0));
        assert!(zero.items.is_empty() && !zero.is_truncated);
        let many: Vec<String> = (0..1500).map(|i| format!("k{i:05}")).collect();
        let many_refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let big = objects(&many_refs);
        let page = list_page(&big, &query("", None, None, 5000));
        assert_eq!(page.items.len(), 1000);
        assert!(page.is_truncated);
        assert_eq!(page.next_marker(), Some("k00999"));
        let exact = list_page(&objects(&many_refs[..1000]), &query("", None, None, 1000));
        assert!(
            !exact.is_truncated,
            "exactly 1000 keys with max-keys 1000 is complete"
        );
    }

    #[test]
    fn unicode_keys_sort_by_utf8_bytes() {
        // S3 orders keys by UTF-8 bytes, which differs from UTF-16 order for keys above U+FFFF
        // and puts "Z" before "a" before "é" before "中" before "😀".
        let objs = objects(&["😀", "中文/x", "é", "a", "Z", "ａ"]);
        let page = list_page(&objs, &query("", Some("/"), None, 1000));
        assert_eq!(names(&page), ["Z", "a", "é", "中文/", "ａ", "😀"]);
        let prefixed = list_page(&objs, &query("中", None, None, 1000));
        assert_eq!(names(&prefixed), ["中文/x"]);
    }

    #[test]
    fn prefix_and_start_after_interact() {
        // start-after before the prefix is ignored; after the prefix range gives nothing; a
        // multi-byte delimiter works like a single byte one.
        let objs = objects(&["x/a", "x/b", "y/a", "x--1--a", "x--1--b"]);
        assert_eq!(
            names(&list_page(&objs, &query("x/", None, Some("a"), 10))),
            ["x/a", "x/b"]
        );
        assert!(list_page(&objs, &query("x/", None, Some("z"), 10))
            .items
            .is_empty());
        assert_eq!(
            names(&list_page(&objs, &query("x", Some("--"), None, 10))),
            ["x--", "x/a", "x/b"]
        );
    }

    #[test]
    fn merge_matches_a_single_index() {
        // Splits keys over three "cores" by partition_of and checks that merging their pages
        // gives, page after page, exactly the pages of one index holding every key.
        let keys: Vec<String> = (0..300)
            .map(|i| match i % 3 {
                0 => format!("dir{}/file{i}", i % 7),
                1 => format!("top{i}"),
                _ => format!("dir{}/sub/{i}", i % 5),
            })
            .collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let whole = objects(&refs);
        let mut cores = [BTreeMap::new(), BTreeMap::new(), BTreeMap::new()];
        for k in &keys {
            let c = crate::partition_of("b", k, 3).0 as usize;
            cores[c].insert(k.as_bytes().into(), Listed::of(&typical_object("b", k, 1)));
        }
        for (delimiter, max) in [
            (None, 7),
            (Some("/"), 3),
            (Some("/"), 1000),
            (Some("sub"), 4),
        ] {
            let mut after: Option<String> = None;
            loop {
                let q = query("", delimiter, after.as_deref(), max);
                let expected = list_page(&whole, &q);
                let merged = merge_pages(cores.iter().map(|c| list_page(c, &q)).collect(), max);
                assert_eq!(merged, expected, "delimiter {delimiter:?} after {after:?}");
                match merged.next_marker() {
                    Some(m) => after = Some(m.to_owned()),
                    None => break,
                }
            }
        }
    }
}
