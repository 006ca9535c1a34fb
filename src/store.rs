//! The latest [`ServerReport`] of every configured server, shared between the scheduler (writer) and the HTTP
//! side (readers).
//!
//! This module only keeps reports; it does not probe, schedule or render. Readers get `Arc`s, so a scrape never
//! copies a report and never holds the lock while encoding.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::report::ServerReport;
use crate::targets::{Labels, Target};

/// The latest report per server name. Thread-safe; cheap to read.
#[derive(Debug, Default)]
pub struct Store {
    reports: RwLock<BTreeMap<String, Arc<ServerReport>>>,
    /// The configured servers and their extra labels, once `configure` was called. A report of a server not in
    /// it is not stored: a probe that finishes just after its server was removed must not bring it back.
    servers: RwLock<Option<HashMap<String, Arc<Labels>>>>,
    /// Counts stored reports, so a waiter can learn that a new one arrived.
    inserted: tokio::sync::watch::Sender<u64>,
}

impl Store {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `report` as the latest one for its server name, replacing any earlier one. A report of a server
    /// that is not configured (see [`Store::configure`]) is dropped.
    pub fn insert(&self, mut report: ServerReport) {
        // Kept for a whole interval: return the spare capacity first.
        crate::compact::shrink(&mut report);
        // Held while writing, so `configure` cannot remove the server between the check and the insert.
        let servers = self.servers.read().unwrap_or_else(PoisonError::into_inner);
        if servers
            .as_ref()
            .is_none_or(|servers| servers.contains_key(&report.server_name))
        {
            let report = Arc::new(report);
            self.write().insert(report.server_name.clone(), report);
            self.inserted.send_modify(|n| *n += 1);
        }
    }

    /// Makes `targets` the configured servers: their labels are used from now on, and the reports of every
    /// other server are dropped at once (their series vanish from the next scrape).
    pub fn configure(&self, targets: &[Target]) {
        let servers: HashMap<String, Arc<Labels>> = targets
            .iter()
            .map(|t| (t.name.as_str().to_owned(), Arc::new(t.labels.clone())))
            .collect();
        // Both locks, in the same order as `insert`, so the two views never disagree.
        let mut current = self.servers.write().unwrap_or_else(PoisonError::into_inner);
        self.write().retain(|name, _| servers.contains_key(name));
        *current = Some(servers);
    }

    /// Changes whenever a report is stored.
    #[must_use]
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inserted.subscribe()
    }

    /// The extra labels of `server_name` (empty when it has none or is unknown).
    #[must_use]
    pub fn labels(&self, server_name: &str) -> Arc<Labels> {
        self.servers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(|s| s.get(server_name).cloned())
            .unwrap_or_default()
    }

    /// Drops the reports of servers not in `keep` (servers removed from the configuration).
    pub fn retain(&self, keep: &HashSet<String>) {
        self.write().retain(|name, _| keep.contains(name));
    }

    #[must_use]
    pub fn get(&self, server_name: &str) -> Option<Arc<ServerReport>> {
        self.read().get(server_name).cloned()
    }

    /// Every report with its server's extra labels, sorted by server name. Clones `Arc`s only.
    #[must_use]
    pub fn snapshot_labeled(&self) -> Vec<(Arc<ServerReport>, Arc<Labels>)> {
        let servers = self.servers.read().unwrap_or_else(PoisonError::into_inner);
        let none = Arc::new(Labels::new());
        self.read()
            .values()
            .map(|r| {
                let labels = servers
                    .as_ref()
                    .and_then(|s| s.get(&r.server_name).cloned())
                    .unwrap_or_else(|| none.clone());
                (r.clone(), labels)
            })
            .collect()
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
    #[test]
    fn configure_drops_removed_servers_and_refuses_their_late_reports() {
        use crate::server_name::ServerName;
        let store = Store::new();
        store.insert(report("a.test", 1));
        store.insert(report("b.test", 1));
        let target = |n: &str| Target {
            name: ServerName::parse(n).unwrap(),
            labels: [("team".to_owned(), n.to_owned())].into(),
        };
        store.configure(&[target("a.test"), target("c.test")]);
        assert!(store.get("b.test").is_none());
        store.insert(report("b.test", 2));
        assert!(
            store.get("b.test").is_none(),
            "a removed server's late report is dropped"
        );
        store.insert(report("c.test", 2));
        assert!(store.get("c.test").is_some());
        assert_eq!(
            store.labels("a.test").get("team").map(String::as_str),
            Some("a.test")
        );
        assert!(store.labels("zzz.test").is_empty());
    }

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
