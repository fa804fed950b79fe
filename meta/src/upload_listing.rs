//! ListMultipartUploads: one core's page of in-progress uploads, and the merge of all cores'
//! pages. Uploads are partitioned over cores like the objects they will become.
//!
//! ```text
//!  core 0 index ──upload_page──► page 0 (<= max items, (key, upload id) order) ─┐
//!  core N index ──upload_page──► page N ─────────────────────────────────────────┴─ merge_upload_pages ─► S3 page
//! ```
//! An item is an upload or a common prefix (keys rolled up at the delimiter); `max_uploads`
//! bounds both together, as S3 does. Uploads of one key are ordered by upload id, which the
//! gateway makes time-ordered, so that is also S3's initiation order. Pure: no I/O.

use crate::index::Index;
use crate::listing::LIST_KEYS_MAX;

/// What to list: the parameters of `GET /bucket?uploads`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up into common prefixes at the first occurrence of this after the prefix.
    pub delimiter: Option<String>,
    /// Only uploads of keys after this (or, with `upload_id_marker`, of this key too).
    pub key_marker: Option<String>,
    /// With `key_marker`: uploads of that key with a greater upload id are listed too.
    pub upload_id_marker: Option<String>,
    /// Clamped to [`LIST_KEYS_MAX`].
    pub max_uploads: usize,
}

/// One in-progress upload in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadEntry {
    pub key: String,
    pub upload_id: String,
    pub initiated_ms: u64,
    pub owner: String,
}

/// An upload or a common prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadItem {
    Upload(UploadEntry),
    Prefix(String),
}

impl UploadItem {
    /// The order of items: (key or prefix, upload id or nothing).
    #[must_use]
    pub fn position(&self) -> (&[u8], &str) {
        match self {
            UploadItem::Upload(u) => (u.key.as_bytes(), u.upload_id.as_str()),
            UploadItem::Prefix(p) => (p.as_bytes(), ""),
        }
    }
}

/// One page of uploads and common prefixes in order, and whether more follow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadPage {
    pub items: Vec<UploadItem>,
    pub is_truncated: bool,
}

impl UploadPage {
    /// `NextKeyMarker` and `NextUploadIdMarker`: the last item's position, only when truncated.
    /// A common prefix gives a key marker alone, which skips every key under it.
    #[must_use]
    pub fn next_markers(&self) -> Option<(&str, Option<&str>)> {
        if !self.is_truncated {
            return None;
        }
        self.items.last().map(|item| match item {
            UploadItem::Upload(u) => (u.key.as_str(), Some(u.upload_id.as_str())),
            UploadItem::Prefix(p) => (p.as_str(), None),
        })
    }
}

/// Lists one core's uploads of `bucket`.
///
/// Keys under an already returned common prefix are stepped over one by one: uploads in
/// progress are few compared with objects, and the walk stops at `max_uploads + 1` items.
#[must_use]
pub fn upload_page(index: &Index, bucket: &str, query: &UploadQuery) -> UploadPage {
    let limit = query.max_uploads.min(LIST_KEYS_MAX);
    let prefix = query.prefix.as_str();
    let delimiter = query.delimiter.as_deref().filter(|d| !d.is_empty());
    let key_marker = query.key_marker.as_deref();
    let id_marker = key_marker.and(query.upload_id_marker.as_deref());
    // Start at the later of the prefix and the markers. An empty upload id sorts before every
    // real one, so `(k, "")` as an exclusive bound includes every upload of `k`.
    let start = match key_marker {
        Some(k) if k >= prefix => (k, id_marker.unwrap_or("")),
        _ => (prefix, ""),
    };
    let mut page = UploadPage::default();
    if limit == 0 {
        // As ListObjects does with max-keys=0: an empty, untruncated page, so that a client
        // paginating on IsTruncated cannot loop without progress.
        return page;
    }
    let mut last_prefix: Option<&str> = None;
    for state in index.uploads(bucket, Some(start)) {
        let upload = &state.upload;
        let key = upload.key.as_str();
        if !key.starts_with(prefix) {
            break;
        }
        if id_marker.is_none() && Some(key) == key_marker {
            continue;
        }
        let rolled = delimiter.and_then(|d| {
            key[prefix.len()..]
                .find(d)
                .map(|at| &key[..prefix.len() + at + d.len()])
        });
        let item = match rolled {
            Some(common) => {
                // Already returned on this page, or on an earlier one (the marker is at or
                // past it).
                if last_prefix == Some(common) || key_marker.is_some_and(|m| common <= m) {
                    continue;
                }
                last_prefix = Some(common);
                UploadItem::Prefix(common.to_owned())
            }
            None => UploadItem::Upload(UploadEntry {
                key: key.to_owned(),
                upload_id: upload.upload_id.clone(),
                initiated_ms: upload.initiated_ms,
                owner: upload.owner.clone(),
            }),
        };
        if page.items.len() == limit {
            page.is_truncated = true;
            break;
        }
        page.items.push(item);
    }
    page
}

/// Merges the pages every core returned for the same query into the page S3 would return.
///
/// Correct for the reason [`crate::merge_pages`] is: a truncated core page holds exactly
/// `limit` items, so the `limit` smallest merged items all sort at or before its last one.
#[must_use]
pub fn merge_upload_pages(pages: Vec<UploadPage>, max_uploads: usize) -> UploadPage {
    let limit = max_uploads.min(LIST_KEYS_MAX);
    let mut any_truncated = false;
    let mut items: Vec<UploadItem> = Vec::with_capacity(pages.iter().map(|p| p.items.len()).sum());
    for page in pages {
        assert!(
            !page.is_truncated || page.items.len() == limit,
            "a truncated core page is full"
        );
        any_truncated |= page.is_truncated;
        items.extend(page.items);
    }
    items.sort_by(|a, b| a.position().cmp(&b.position()));
    // The same common prefix can come from several cores; an upload lives on one core only.
    items.dedup_by(|a, b| a.position() == b.position());
    let is_truncated = any_truncated || items.len() > limit;
    items.truncate(limit);
    UploadPage {
        items,
        is_truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ContentHeaders, Op, Policy, Upload};

    fn index(uploads: &[(&str, &str)]) -> Index {
        let mut index = Index::new();
        for &(key, upload_id) in uploads {
            index.apply(Op::PutUpload(Upload {
                bucket: "b".to_owned(),
                key: key.to_owned(),
                upload_id: upload_id.to_owned(),
                initiated_ms: 1,
                headers: ContentHeaders::default(),
                user_metadata: Vec::new(),
                checksum_algorithm: None,
                policy: Policy::Replica { n: 1 },
                owner: "o".to_owned(),
            }));
        }
        index
    }

    fn query(
        prefix: &str,
        delimiter: Option<&str>,
        marker: Option<(&str, Option<&str>)>,
        max: usize,
    ) -> UploadQuery {
        UploadQuery {
            prefix: prefix.to_owned(),
            delimiter: delimiter.map(str::to_owned),
            key_marker: marker.map(|(k, _)| k.to_owned()),
            upload_id_marker: marker.and_then(|(_, u)| u.map(str::to_owned)),
            max_uploads: max,
        }
    }

    fn names(page: &UploadPage) -> Vec<String> {
        page.items
            .iter()
            .map(|i| match i {
                UploadItem::Upload(u) => format!("{}#{}", u.key, u.upload_id),
                UploadItem::Prefix(p) => format!("{p}/*"),
            })
            .collect()
    }

    /// Pages through every upload with key and upload-id markers and sees each exactly once,
    /// in (key, upload id) order, including several uploads of one key split across pages.
    #[test]
    fn markers_page_through_every_upload_once() {
        let all = [("a", "1"), ("a", "2"), ("a", "3"), ("b", "1"), ("c", "9")];
        let index = index(&all);
        let mut seen = Vec::new();
        let mut marker: Option<(String, Option<String>)> = None;
        loop {
            let q = query(
                "",
                None,
                marker.as_ref().map(|(k, u)| (k.as_str(), u.as_deref())),
                2,
            );
            let page = upload_page(&index, "b", &q);
            seen.extend(names(&page));
            match page.next_markers() {
                Some((k, u)) => marker = Some((k.to_owned(), u.map(str::to_owned))),
                None => break,
            }
        }
        assert_eq!(seen, ["a#1", "a#2", "a#3", "b#1", "c#9"]);
    }

    /// A key marker without an upload-id marker skips every upload of that key.
    #[test]
    fn key_marker_alone_skips_the_key() {
        let index = index(&[("a", "1"), ("a", "2"), ("b", "1")]);
        let page = upload_page(&index, "b", &query("", None, Some(("a", None)), 10));
        assert_eq!(names(&page), ["b#1"]);
        assert!(!page.is_truncated);
    }

    /// Keys roll up at the delimiter into one common prefix that counts as one item; a marker
    /// equal to a common prefix (what NextKeyMarker says after a prefix) continues after it.
    #[test]
    fn delimiter_rolls_up_and_marker_inside_prefix_progresses() {
        let index = index(&[
            ("d/x", "1"),
            ("d/y", "1"),
            ("e", "1"),
            ("p/q/r", "1"),
            ("z", "1"),
        ]);
        let page = upload_page(&index, "b", &query("", Some("/"), None, 2));
        assert_eq!(names(&page), ["d//*", "e#1"]);
        assert!(page.is_truncated);
        assert_eq!(page.next_markers(), Some(("e", Some("1"))));
        let page = upload_page(&index, "b", &query("", Some("/"), Some(("d/", None)), 10));
        assert_eq!(names(&page), ["e#1", "p//*", "z#1"]);
        let page = upload_page(&index, "b", &query("p/", Some("/"), None, 10));
        assert_eq!(names(&page), ["p/q//*"]);
        let page = upload_page(
            &index,
            "b",
            &query("", Some("/"), Some(("d/x", Some("1"))), 10),
        );
        assert_eq!(names(&page), ["e#1", "p//*", "z#1"]);
    }

    /// Truncation is reported only when another listable item exists, not when the remaining
    /// uploads all fall under the last common prefix; max-uploads=0 gives an empty page.
    #[test]
    fn truncated_only_when_more_items() {
        let index = index(&[("d/x", "1"), ("d/y", "1")]);
        let page = upload_page(&index, "b", &query("", Some("/"), None, 1));
        assert_eq!(names(&page), ["d//*"]);
        assert!(!page.is_truncated);
        let page = upload_page(&index, "b", &query("", None, None, 0));
        assert!(page.items.is_empty() && !page.is_truncated);
    }

    /// Merging two cores' pages sorts, removes the duplicate common prefix, and truncates at
    /// the limit.
    #[test]
    fn merge_sorts_dedups_and_truncates() {
        let core0 = index(&[("a", "1"), ("d/x", "1"), ("f", "1")]);
        let core1 = index(&[("b", "1"), ("d/y", "1"), ("g", "1")]);
        let q = query("", Some("/"), None, 3);
        let merged = merge_upload_pages(
            vec![upload_page(&core0, "b", &q), upload_page(&core1, "b", &q)],
            3,
        );
        assert_eq!(names(&merged), ["a#1", "b#1", "d//*"]);
        assert!(merged.is_truncated);
        let q = query("", Some("/"), Some(("d/", None)), 3);
        let merged = merge_upload_pages(
            vec![upload_page(&core0, "b", &q), upload_page(&core1, "b", &q)],
            3,
        );
        assert_eq!(names(&merged), ["f#1", "g#1"]);
        assert!(!merged.is_truncated);
    }
}
