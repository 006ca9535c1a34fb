//! The latest [`ServerReport`] of every configured server, shared between the scheduler (writer) and the HTTP
//! side (readers).
//!
//! This module only keeps reports; it does not probe, schedule or render. Readers get `Arc`s, so a scrape never
//! copies a report and never holds the lock while encoding.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::report::ServerReport;

/// The latest report per server name. Thread-safe; cheap to read.
#[derive(Debug, Default)]
pub struct Store {
    reports: RwLock<BTreeMap<String, Arc<ServerReport>>>,
}

impl Store {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `report` as the latest one for its server name, replacing any earlier one.
    pub fn insert(&self, report: ServerReport) {
        let report = Arc::new(report);
        self.write().insert(report.server_name.clone(), report);
    }

    /// Drops the reports of servers not in `keep` (servers removed from the configuration).
    pub fn retain(&self, keep: &HashSet<String>) {
        self.write().retain(|name, _| keep.contains(name));
    }

    #[must_use]
    pub fn get(&self, server_name: &str) -> Option<Arc<ServerReport>> {
        self.read().get(server_name).cloned()
    }

    /// Every report, sorted by server name. Clones `Arc`s only.
    #[must_use]
    pub fn snapshot(&self) -> Vec<Arc<ServerReport>> {
        self.read().values().cloned().collect()
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.read().len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    // A writer that panicked mid-`insert` leaves the map in a valid state (a map operation either happened or
    // not), so a poisoned lock is safe to keep using.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<ServerReport>>> {
        self.reports.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Arc<ServerReport>>> {
        self.reports.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::report::DiscoveryReport;

    fn report(name: &str, secs: u64) -> ServerReport {
        ServerReport {
            server_name: name.to_owned(),
            started_at: SystemTime::UNIX_EPOCH,
            finished_at: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            duration: Duration::from_secs(1),
            discovery: DiscoveryReport::empty(name),
            addresses: Vec::new(),
            failures: Vec::new(),
        }
    }

    #[test]
    fn insert_replaces_by_name_and_snapshot_is_sorted() {
        let store = Store::new();
        assert!(store.is_empty());
        store.insert(report("b.example", 1));
        store.insert(report("a.example", 1));
        store.insert(report("b.example", 2));
        assert_eq!(store.len(), 2);
        let names: Vec<_> = store
            .snapshot()
            .iter()
            .map(|r| r.server_name.clone())
            .collect();
        assert_eq!(names, ["a.example", "b.example"]);
        let b = store.get("b.example").expect("b is stored");
        assert_eq!(
            b.finished_at,
            SystemTime::UNIX_EPOCH + Duration::from_secs(2)
        );
        assert!(store.get("c.example").is_none());
    }

    #[test]
    fn retain_drops_unconfigured_servers() {
        let store = Store::new();
        store.insert(report("a.example", 1));
        store.insert(report("b.example", 1));
        store.retain(&HashSet::from(["b.example".to_owned()]));
        assert!(store.get("a.example").is_none());
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn snapshot_shares_reports() {
        let store = Store::new();
        store.insert(report("a.example", 1));
        let first = store.snapshot();
        let second = store.snapshot();
        assert!(Arc::ptr_eq(&first[0], &second[0]));
    }

    #[test]
    fn poisoned_lock_is_recovered() {
        let store = Arc::new(Store::new());
        store.insert(report("a.example", 1));
        let poisoner = Arc::clone(&store);
        let joined = std::thread::spawn(move || {
            let _guard = poisoner.write();
            panic!("poison the lock");
        })
        .join();
        assert!(joined.is_err());
        assert!(store.reports.is_poisoned());
        store.insert(report("b.example", 1));
        assert_eq!(store.len(), 2);
    }
}
