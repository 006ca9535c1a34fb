//! Signing-key continuity: the verify keys a scheduled server served in the last [`KEY_MEMORY_SECS`] (at most
//! [`MAX_KEYS`]), and the changes seen between probes (`added`, `retired`, `dropped`, `replaced`), each kept for
//! [`KEY_MEMORY_SECS`] after it was seen.
//!
//! Plain data and one pure function, [`KeyHistory::observe`]. The store (`schedule/store.rs`) carries a history
//! from report to report of each scheduled server and across reloads for servers that stay; a restart starts
//! over. Reports of `/probe`, the report API's on-demand probes and `check` carry an empty one: they have no
//! previous report to compare with.
//!
//! Why it matters (the spec, server-server API, "Publishing Keys"): `old_verify_keys` are "the public keys that
//! the server used to use and when it stopped using them". Peers verify old events (backfill, state resolution)
//! with the key that signed them; a key that vanishes without an `old_verify_keys` entry leaves those events
//! unverifiable for peers that had not cached it, and a key id reused with a different key makes peers that did
//! cache the old key reject what the server signs now.
//!
//! How several addresses combine: the keys of one probe are the union over every address that served a key
//! document we can trust (it names the server and at least one of its ed25519 keys signed it), so one address
//! that lags behind a rotation does not look like a change on its own. A probe in which no address served such
//! a document changes nothing: a failing key endpoint is a failure of its own (stage `keys`), not a dropped key.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use super::{AddressReport, KeyChangeKind, ServerReport, SharedStr};

/// How long a key is remembered after it was last served, and how long a change row lives: 7 days.
pub const KEY_MEMORY_SECS: u64 = 7 * 24 * 60 * 60;
/// At most this many keys are remembered per server (the oldest goes first), and at most this many verify keys
/// of one probe are followed (the first by key id): a server that serves more is not followed beyond them.
pub const MAX_KEYS: usize = 16;
/// At most this many change rows are kept per server (the oldest goes first).
pub const MAX_CHANGES: usize = 16;
/// A key still served is marked as seen again at most this often, so that a probe that changes nothing shares
/// the previous report's history instead of allocating a new one (the 7 days are counted to within this).
const REFRESH_SECS: u64 = 60 * 60;

/// One server's key memory and its recent key changes. Cheap to clone (shared, immutable); empty until the
/// first probe whose key document could be trusted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyHistory(Option<Arc<Memory>>);

#[derive(Debug, Default, PartialEq, Eq)]
struct Memory {
    /// Sorted by key id, then key.
    seen: Vec<SeenKey>,
    /// Oldest first.
    changes: Vec<KeyChange>,
}

/// A verify key served in the last [`KEY_MEMORY_SECS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenKey {
    /// For example `ed25519:a_AbCd`.
    pub key_id: SharedStr,
    /// Unpadded base64, as served.
    pub key: SharedStr,
    /// When a probe last found it in `verify_keys` (Unix seconds, to within an hour).
    pub last_seen: u64,
    /// Whether the last probe that could be trusted found it in `verify_keys`.
    pub current: bool,
}

/// One change of a server's verify keys, and when the probe that saw it finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyChange {
    pub key_id: SharedStr,
    pub change: KeyChangeKind,
    /// Unix seconds.
    pub at: u64,
}

/// The keys one probe found: the union over every address whose key document can be trusted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedKeys<'a> {
    /// `(key_id, key)` of every valid ed25519 entry of `verify_keys`, sorted, at most [`MAX_KEYS`]. The report's
    /// own strings (shared), so that remembering a key copies nothing.
    pub verify: Vec<(SharedStr, SharedStr)>,
    /// The key ids of `old_verify_keys`, sorted.
    pub old: Vec<&'a str>,
}

impl<'a> ObservedKeys<'a> {
    /// The keys of `report`, or `None` when no address served a key document that names the server and is
    /// signed by one of its own ed25519 keys (a failing or forged key endpoint changes nothing).
    #[must_use]
    pub fn of(report: &'a ServerReport) -> Option<Self> {
        let mut observed = Self::default();
        let mut any = false;
        for keys in report.addresses.iter().filter_map(|a| a.keys.as_ref()) {
            let trusted = keys.server_name == report.server_name.as_str()
                && keys
                    .verify_keys
                    .iter()
                    .any(|k| k.valid_ed25519 && k.matching_signature);
            if !trusted {
                continue;
            }
            any = true;
            observed.verify.extend(
                keys.verify_keys
                    .iter()
                    .filter(|k| k.valid_ed25519)
                    .map(|k| (k.key_id.clone(), k.key.clone())),
            );
            observed
                .old
                .extend(keys.old_verify_keys.iter().map(|k| k.key_id.as_str()));
        }
        if !any {
            return None;
        }
        observed.verify.sort_unstable();
        observed.verify.dedup();
        observed.verify.truncate(MAX_KEYS);
        observed.old.sort_unstable();
        observed.old.dedup();
        Some(observed)
    }
}

impl KeyHistory {
    /// The keys remembered, sorted by key id.
    #[must_use]
    pub fn seen(&self) -> &[SeenKey] {
        self.0.as_ref().map_or(&[], |m| &m.seen)
    }

    /// Every change row still alive, oldest first.
    #[must_use]
    pub fn changes(&self) -> &[KeyChange] {
        self.0.as_ref().map_or(&[], |m| &m.changes)
    }

    /// The change rows that peers suffer from (`dropped`, `replaced`): the warnings.
    pub fn faults(&self) -> impl Iterator<Item = &KeyChange> + '_ {
        self.changes().iter().filter(|c| c.change.is_fault())
    }

    /// This history after `report` (see [`KeyHistory::observe`]), at the time the probe finished.
    #[must_use]
    pub fn next(&self, report: &ServerReport) -> Self {
        let now = report
            .finished_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.observe(ObservedKeys::of(report).as_ref(), now)
    }

    /// Points every verify key of `addresses` that this history remembers at the remembered strings, so that a
    /// stored report and the history hold one copy of each key between them, round after round (each probe
    /// reads its keys afresh).
    pub fn share_strings(&self, addresses: &mut [AddressReport]) {
        let keys = addresses
            .iter_mut()
            .filter_map(|a| a.keys.as_mut())
            .flat_map(|k| &mut k.verify_keys);
        for key in keys {
            if let Some(seen) = self
                .seen()
                .iter()
                .find(|s| s.key_id == key.key_id && s.key == key.key)
            {
                key.key_id = seen.key_id.clone();
                key.key = seen.key.clone();
            }
        }
    }

    /// The history after a probe that finished at `now` (Unix seconds) and found `observed` (`None`: no key
    /// document could be trusted, so only the 7 days run on). Keys and rows older than [`KEY_MEMORY_SECS`] go.
    /// With no key remembered, the keys found are the baseline and make no row. Then:
    /// - `added`: a key id not remembered appears in `verify_keys`;
    /// - `replaced`: a remembered key id appears in `verify_keys` with a different key than it had (or than the
    ///   last probe served under that id);
    /// - `retired`: a key in `verify_keys` last time is gone from it and its id is in `old_verify_keys` (or a
    ///   `dropped` key is listed there later);
    /// - `dropped`: a key in `verify_keys` last time is gone from it and from `old_verify_keys`.
    ///
    /// A key that comes back (same id and key, no other key served under its id meanwhile) makes no row. A change
    /// seen again moves its row to `now`. Shares this history when nothing but the time moved on (within an hour).
    #[must_use]
    pub fn observe(&self, observed: Option<&ObservedKeys<'_>>, now: u64) -> Self {
        let cutoff = now.saturating_sub(KEY_MEMORY_SECS);
        let mut seen: Vec<SeenKey> = self
            .seen()
            .iter()
            .filter(|k| k.last_seen > cutoff)
            .cloned()
            .collect();
        let mut changes: Vec<KeyChange> = self
            .changes()
            .iter()
            .filter(|c| c.at > cutoff)
            .cloned()
            .collect();
        if let Some(observed) = observed {
            let baseline = seen.is_empty();
            let found = compare(&mut seen, &changes, observed, now);
            // The first keys seen are the baseline: remembered, and no row.
            if !baseline {
                for (key_id, change) in found {
                    changes.retain(|c| !(c.key_id == key_id && c.change == change));
                    changes.push(KeyChange {
                        key_id,
                        change,
                        at: now,
                    });
                }
            }
        }
        seen.sort_by(|a, b| (&a.key_id, &a.key).cmp(&(&b.key_id, &b.key)));
        evict_oldest(&mut seen);
        let excess = changes.len().saturating_sub(MAX_CHANGES);
        changes.drain(..excess);
        let mut next = Memory { seen, changes };
        match &self.0 {
            Some(previous) if previous.same_within_refresh(&next) => self.clone(),
            _ if next.seen.is_empty() && next.changes.is_empty() => Self::default(),
            _ => {
                // Kept for a whole interval, like the report (`schedule/compact.rs`).
                next.seen.shrink_to_fit();
                next.changes.shrink_to_fit();
                Self(Some(Arc::new(next)))
            }
        }
    }
}

/// Updates `seen` with the keys of one trusted probe at `now` and returns the changes it shows, in order: each
/// key of `verify_keys` (`added`, `replaced`), then each remembered key (`retired`, `dropped`). `changes` are the
/// rows so far (a `dropped` key listed in `old_verify_keys` later is `retired`).
fn compare(
    seen: &mut Vec<SeenKey>,
    changes: &[KeyChange],
    observed: &ObservedKeys<'_>,
    now: u64,
) -> Vec<(SharedStr, KeyChangeKind)> {
    let mut found = Vec::new();
    // The keys the last trusted probe served, to tell a key that comes back from a replacement.
    let was_current: Vec<(SharedStr, SharedStr)> = seen
        .iter()
        .filter(|k| k.current)
        .map(|k| (k.key_id.clone(), k.key.clone()))
        .collect();
    for (key_id, key) in &observed.verify {
        if let Some(k) = seen
            .iter_mut()
            .find(|k| *k.key_id == *key_id && *k.key == *key)
        {
            k.last_seen = now;
            if !k.current
                && was_current
                    .iter()
                    .any(|(id, other)| *id == k.key_id && *other != k.key)
            {
                found.push((k.key_id.clone(), KeyChangeKind::Replaced));
            }
            k.current = true;
            continue;
        }
        let key_id = if let Some(known) = seen.iter().find(|k| *k.key_id == *key_id) {
            found.push((known.key_id.clone(), KeyChangeKind::Replaced));
            known.key_id.clone()
        } else {
            found.push((key_id.clone(), KeyChangeKind::Added));
            key_id.clone()
        };
        seen.push(SeenKey {
            key_id,
            key: key.clone(),
            last_seen: now,
            current: true,
        });
    }
    let listed_old = |id: &SharedStr| observed.old.binary_search(&id.as_str()).is_ok();
    let id_served = |id: &SharedStr| observed.verify.iter().any(|(v, _)| v == id);
    for k in seen.iter_mut() {
        if !k.current {
            // A dropped key listed in old_verify_keys later: the fix the warning asks for, so `retired`.
            let last = changes.iter().rev().find(|c| c.key_id == k.key_id);
            if last.is_some_and(|c| c.change == KeyChangeKind::Dropped)
                && listed_old(&k.key_id)
                && !id_served(&k.key_id)
            {
                found.push((k.key_id.clone(), KeyChangeKind::Retired));
            }
            continue;
        }
        if observed
            .verify
            .iter()
            .any(|(id, key)| *id == k.key_id && *key == k.key)
        {
            continue;
        }
        k.current = false;
        if id_served(&k.key_id) {
            // Served under the same id with another key: `replaced`, found above.
        } else if listed_old(&k.key_id) {
            found.push((k.key_id.clone(), KeyChangeKind::Retired));
        } else {
            found.push((k.key_id.clone(), KeyChangeKind::Dropped));
        }
    }
    found
}

/// Keeps the [`MAX_KEYS`] most recently seen keys of `seen` (in their order); among keys seen at the same time,
/// the ones no longer served go first.
fn evict_oldest(seen: &mut Vec<SeenKey>) {
    if seen.len() <= MAX_KEYS {
        return;
    }
    let mut by_age: Vec<(u64, bool, usize)> = seen
        .iter()
        .enumerate()
        .map(|(i, k)| (k.last_seen, k.current, i))
        .collect();
    by_age.sort_unstable();
    let mut evicted: Vec<usize> = by_age[..seen.len() - MAX_KEYS]
        .iter()
        .map(|&(_, _, i)| i)
        .collect();
    evicted.sort_unstable();
    for i in evicted.into_iter().rev() {
        seen.remove(i);
    }
}

impl Memory {
    /// Equal but for `last_seen` times that moved less than [`REFRESH_SECS`].
    fn same_within_refresh(&self, next: &Memory) -> bool {
        self.changes == next.changes
            && self.seen.len() == next.seen.len()
            && self.seen.iter().zip(&next.seen).all(|(a, b)| {
                a.key_id == b.key_id
                    && a.key == b.key
                    && a.current == b.current
                    && b.last_seen.abs_diff(a.last_seen) < REFRESH_SECS
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000;
    const HOUR: u64 = 60 * 60;
    const DAY: u64 = 24 * HOUR;

    fn keys<'a>(verify: &[(&str, &str)], old: &[&'a str]) -> ObservedKeys<'a> {
        let mut verify: Vec<(SharedStr, SharedStr)> = verify
            .iter()
            .map(|&(id, key)| (id.into(), key.into()))
            .collect();
        verify.sort_unstable();
        let mut old = old.to_vec();
        old.sort_unstable();
        ObservedKeys { verify, old }
    }

    fn rows(h: &KeyHistory) -> Vec<(&str, &str, u64)> {
        h.changes()
            .iter()
            .map(|c| (c.key_id.as_str(), c.change.as_str(), c.at))
            .collect()
    }

    fn baseline() -> KeyHistory {
        KeyHistory::default().observe(Some(&keys(&[("ed25519:a", "AAAA")], &[])), T0)
    }

    #[test]
    fn a_stored_report_shares_the_remembered_key_strings() {
        let history = KeyHistory::default().observe(Some(&keys(&[("ed25519:a", "AAAA")], &[])), T0);
        let fresh = |text: &str| SharedStr::from(text.to_owned().as_str());
        let mut address =
            AddressReport::new("192.0.2.1:8448".parse().unwrap(), "example.org".into());
        address.keys = Some(crate::report::KeysReport {
            verify_keys: vec![
                crate::report::VerifyKey {
                    key_id: fresh("ed25519:a"),
                    key: fresh("AAAA"),
                    valid_ed25519: true,
                    matching_signature: true,
                },
                crate::report::VerifyKey {
                    key_id: fresh("ed25519:b"),
                    key: fresh("BBBB"),
                    valid_ed25519: true,
                    matching_signature: true,
                },
            ],
            ..Default::default()
        });
        let mut addresses = [address];
        history.share_strings(&mut addresses);
        let served = &addresses[0].keys.as_ref().unwrap().verify_keys;
        let remembered = &history.seen()[0];
        assert!(SharedStr::ptr_eq(&served[0].key_id, &remembered.key_id));
        assert!(SharedStr::ptr_eq(&served[0].key, &remembered.key));
        // A key the history does not hold keeps its own strings.
        assert_eq!(served[1].key.as_str(), "BBBB");
    }

    #[test]
    fn the_first_probe_sets_the_baseline_without_rows() {
        let h = KeyHistory::default().observe(
            Some(&keys(
                &[("ed25519:a", "AAAA"), ("ed25519:b", "BBBB")],
                &["ed25519:z"],
            )),
            T0,
        );
        assert!(h.changes().is_empty(), "{h:?}");
        let ids: Vec<_> = h
            .seen()
            .iter()
            .map(|k| (k.key_id.as_str(), k.current))
            .collect();
        assert_eq!(ids, [("ed25519:a", true), ("ed25519:b", true)]);
    }

    #[test]
    fn a_new_key_id_is_added() {
        let h = baseline().observe(
            Some(&keys(&[("ed25519:a", "AAAA"), ("ed25519:b", "BBBB")], &[])),
            T0 + HOUR,
        );
        assert_eq!(rows(&h), [("ed25519:b", "added", T0 + HOUR)]);
        assert_eq!(h.faults().count(), 0);
    }

    #[test]
    fn a_key_moved_into_old_verify_keys_is_retired() {
        let h = baseline().observe(
            Some(&keys(&[("ed25519:b", "BBBB")], &["ed25519:a"])),
            T0 + HOUR,
        );
        assert_eq!(
            rows(&h),
            [
                ("ed25519:b", "added", T0 + HOUR),
                ("ed25519:a", "retired", T0 + HOUR)
            ]
        );
        assert_eq!(h.faults().count(), 0);
    }

    #[test]
    fn a_key_gone_without_an_old_verify_keys_entry_is_dropped() {
        let h = baseline().observe(Some(&keys(&[("ed25519:b", "BBBB")], &[])), T0 + HOUR);
        assert_eq!(
            rows(&h),
            [
                ("ed25519:b", "added", T0 + HOUR),
                ("ed25519:a", "dropped", T0 + HOUR)
            ]
        );
        let faults: Vec<_> = h.faults().map(|c| c.key_id.as_str()).collect();
        assert_eq!(faults, ["ed25519:a"]);
        // Not reported again while it stays gone.
        let later = h.observe(Some(&keys(&[("ed25519:b", "BBBB")], &[])), T0 + 2 * HOUR);
        assert_eq!(rows(&later), rows(&h));
        // Listed in old_verify_keys later: `retired` (once), and the `dropped` row stays its 7 days.
        let listed = Some(keys(&[("ed25519:b", "BBBB")], &["ed25519:a"]));
        let fixed = later.observe(listed.as_ref(), T0 + 3 * HOUR);
        let fixed = fixed.observe(listed.as_ref(), T0 + 4 * HOUR);
        assert_eq!(
            rows(&fixed),
            [
                ("ed25519:b", "added", T0 + HOUR),
                ("ed25519:a", "dropped", T0 + HOUR),
                ("ed25519:a", "retired", T0 + 3 * HOUR)
            ]
        );
        // Served again: no row (the key is back).
        let back = h.observe(
            Some(&keys(&[("ed25519:a", "AAAA"), ("ed25519:b", "BBBB")], &[])),
            T0 + 2 * HOUR,
        );
        assert_eq!(rows(&back), rows(&h));
        assert!(back.seen().iter().all(|k| k.current));
    }

    #[test]
    fn the_same_key_id_with_another_key_is_replaced() {
        let h = baseline().observe(Some(&keys(&[("ed25519:a", "CCCC")], &[])), T0 + HOUR);
        assert_eq!(rows(&h), [("ed25519:a", "replaced", T0 + HOUR)]);
        assert_eq!(h.faults().count(), 1);
        // The old key is remembered as no longer served; the new one as current.
        let seen: Vec<_> = h
            .seen()
            .iter()
            .map(|k| (k.key.as_str(), k.current))
            .collect();
        assert_eq!(seen, [("AAAA", false), ("CCCC", true)]);
        // Replaced back: a second `replaced`, which moves the row.
        let back = h.observe(Some(&keys(&[("ed25519:a", "AAAA")], &[])), T0 + 2 * HOUR);
        assert_eq!(rows(&back), [("ed25519:a", "replaced", T0 + 2 * HOUR)]);
    }

    #[test]
    fn a_probe_without_a_trusted_key_document_changes_nothing() {
        let h = baseline();
        let failed = h.observe(None, T0 + HOUR);
        assert_eq!(failed, h);
        let again = failed.observe(Some(&keys(&[("ed25519:a", "AAAA")], &[])), T0 + 2 * HOUR);
        assert!(again.changes().is_empty(), "{again:?}");
    }

    #[test]
    fn an_unchanged_probe_shares_the_history_and_refreshes_hourly() {
        let h = baseline();
        let same = h.observe(Some(&keys(&[("ed25519:a", "AAAA")], &[])), T0 + 60);
        assert!(Arc::ptr_eq(h.0.as_ref().unwrap(), same.0.as_ref().unwrap()));
        let refreshed = h.observe(Some(&keys(&[("ed25519:a", "AAAA")], &[])), T0 + HOUR);
        assert_eq!(refreshed.seen()[0].last_seen, T0 + HOUR);
    }

    #[test]
    fn rows_and_keys_expire_after_seven_days() {
        let dropped = baseline().observe(Some(&keys(&[("ed25519:b", "BBBB")], &[])), T0 + HOUR);
        let b = Some(keys(&[("ed25519:b", "BBBB")], &[]));
        let still = dropped.observe(b.as_ref(), T0 + HOUR + 7 * DAY - 1);
        assert_eq!(still.faults().count(), 1, "alive for 7 days");
        let gone = still.observe(b.as_ref(), T0 + HOUR + 7 * DAY);
        assert!(gone.changes().is_empty(), "{gone:?}");
        let ids: Vec<_> = gone.seen().iter().map(|k| k.key_id.as_str()).collect();
        assert_eq!(ids, ["ed25519:b"], "the dropped key is forgotten too");
        // A key id forgotten is new again.
        let back = gone.observe(
            Some(&keys(&[("ed25519:a", "AAAA"), ("ed25519:b", "BBBB")], &[])),
            T0 + 8 * DAY,
        );
        assert_eq!(rows(&back), [("ed25519:a", "added", T0 + 8 * DAY)]);
        // Nothing trusted for 7 days: everything is forgotten, and the next probe is a baseline again.
        let silent = back.observe(None, T0 + 15 * DAY);
        assert_eq!(silent, KeyHistory::default());
        let fresh = silent.observe(Some(&keys(&[("ed25519:c", "CCCC")], &[])), T0 + 16 * DAY);
        assert!(fresh.changes().is_empty());
    }

    #[test]
    fn at_most_sixteen_keys_and_rows_are_kept_oldest_first_out() {
        let ids: Vec<String> = (0..40).map(|i| format!("ed25519:k{i:02}")).collect();
        let mut h = baseline();
        for (i, id) in ids.iter().enumerate() {
            // One new key an hour, each replacing the last.
            h = h.observe(Some(&keys(&[(id, "KEY")], &[])), T0 + (i as u64 + 1) * HOUR);
            assert!(h.seen().len() <= MAX_KEYS);
            assert!(h.changes().len() <= MAX_CHANGES);
        }
        assert_eq!(h.seen().len(), MAX_KEYS);
        let newest = h.seen().iter().max_by_key(|k| k.last_seen).unwrap();
        assert_eq!(newest.key_id.as_str(), "ed25519:k39");
        assert!(newest.current);
        assert!(h.seen().iter().all(|k| k.key_id.as_str() >= "ed25519:k24"));
        assert_eq!(h.changes().len(), MAX_CHANGES);
        assert_eq!(h.changes().last().unwrap().at, T0 + 40 * HOUR);
        // A probe serving more than 16 keys follows the first 16 by id, and the rest never make rows.
        let many: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "K")).collect();
        let mut observed = keys(&many, &[]);
        observed.verify.truncate(MAX_KEYS);
        let big = KeyHistory::default().observe(Some(&observed), T0);
        let again = big.observe(Some(&observed), T0 + 2 * HOUR);
        assert!(again.changes().is_empty());
        assert_eq!(again.seen().len(), MAX_KEYS);
    }
}
