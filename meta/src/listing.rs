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
pub fn list_page(objects: &BTreeMap<Box<[u8]>, Object>, query: &ListQuery) -> ListPage {
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
    loop {
        let Some((key, object)) = iter.next() else {
            break;
        };
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
                page.items
                    .push(ListItem::Prefix(name.unwrap_or_default()));
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
        page.items.push(ListItem::Object(ListEntry {
            key: object.key.clone(),
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
        assert!(!page.is_truncated || page.items.len() == limit, "a truncated core page is full");
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
