//! The latest [`ServerReport`] of every configured server, shared between the scheduler (writer) and the HTTP
//! side (readers), with the server's recent state changes (`report::History`) and its signing keys of the last
//! 7 days (`report::KeyHistory`) carried on from report to report and across reloads for servers that stay.
//!
//! This module only keeps reports; it does not probe, schedule or render. Readers get `Arc`s, so a scrape never
//! copies a report and never holds the lock while encoding. One map holds each server's labels and report,
//! keyed by the name the configuration already holds (a shared string), and servers with the same labels
//! share one label set: at ten thousand servers each copy saved is worth about a hundred KB.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::config::targets::{Labels, Target};
use crate::report::ServerReport;
use crate::report::notary::NotaryReport;

/// The latest report per server name. Thread-safe; cheap to read.
#[derive(Debug, Default)]
pub struct Store {
    servers: RwLock<Servers>,
    /// Counts stored reports, so a waiter can learn that a new one arrived.
    inserted: tokio::sync::watch::Sender<u64>,
    /// The configured homeservers' destination lists (`homeservers:`), shown beside the reports.
    pub homeservers: crate::schedule::homeservers::Homeservers,
    /// The latest round of each configured notary, by notary name (`schedule/notaries.rs` writes it).
    notaries: RwLock<BTreeMap<String, Arc<NotaryReport>>>,
}

#[derive(Debug, Default)]
struct Servers {
    /// Whether `configure` was called. Until then every report is kept (with no extra labels); from then on
    /// only the reports of configured servers, so a probe that finishes just after its server was removed
    /// does not bring it back.
    configured: bool,
    /// Sorted by server name.
    by_name: BTreeMap<Arc<str>, Entry>,
}

#[derive(Debug)]
struct Entry {
    labels: Arc<Labels>,
    report: Option<Arc<ServerReport>>,
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
        crate::schedule::compact::shrink(&mut report);
        let mut servers = self.write();
        if let Some(entry) = servers.by_name.get_mut(report.server_name.as_str()) {
            // The server's recent changes go on with it (shared, unless this report changed something).
            report.history = match &entry.report {
                Some(previous) => previous.history.next(&report),
                None => report.history.next(&report),
            };
            // The signing keys of the last 7 days, carried on the same way (see `report/key_history.rs`).
            report.key_history = match &entry.report {
                Some(previous) => previous.key_history.next(&report),
                None => report.key_history.next(&report),
            };
            report.key_history.share_strings(&mut report.addresses);
            entry.report = Some(Arc::new(report));
        } else if !servers.configured {
            report.history = report.history.next(&report);
            report.key_history = report.key_history.next(&report);
            report.key_history.share_strings(&mut report.addresses);
            let report = Arc::new(report);
            let entry = Entry {
                labels: Arc::default(),
                report: Some(report.clone()),
            };
            servers
                .by_name
                .insert(report.server_name.as_str().into(), entry);
        } else {
            return;
        }
        drop(servers);
        self.inserted.send_modify(|n| *n += 1);
    }

    /// Makes `targets` the configured servers: their labels are used from now on, and the reports of every
    /// other server are dropped at once (their series vanish from the next scrape).
    pub fn configure(&self, targets: &[Target]) {
        // One `Arc` per distinct label set (most servers have none, or share their target file's).
        let mut shared: HashMap<&Labels, Arc<Labels>> = HashMap::new();
        let mut servers = self.write();
        let mut old = std::mem::take(&mut servers.by_name);
        for t in targets {
            let labels = shared
                .entry(&t.labels)
                .or_insert_with(|| Arc::new(t.labels.clone()))
                .clone();
            let report = old.remove(t.name.as_str()).and_then(|e| e.report);
            servers
                .by_name
                .insert(t.name.shared_str(), Entry { labels, report });
        }
        servers.configured = true;
    }

    /// Whether `server_name` is one of the servers of the last [`Store::configure`].
    #[must_use]
    pub fn is_configured(&self, server_name: &str) -> bool {
        let servers = self.read();
        servers.configured && servers.by_name.contains_key(server_name)
    }

    /// The servers of the last [`Store::configure`], sorted (none before it is called).
    #[must_use]
    pub fn configured(&self) -> Vec<Arc<str>> {
        let servers = self.read();
        if !servers.configured {
            return Vec::new();
        }
        servers.by_name.keys().cloned().collect()
    }

    /// The servers of the last [`Store::configure`], sorted; `None` before it is called (then every report is
    /// kept, see [`Store::insert`]).
    #[must_use]
    pub fn configured_names(&self) -> Option<Vec<Arc<str>>> {
        let servers = self.read();
        servers
            .configured
            .then(|| servers.by_name.keys().cloned().collect())
    }

    /// Changes whenever a report is stored.
    #[must_use]
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inserted.subscribe()
    }

    /// The extra labels of `server_name` (empty when it has none or is unknown).
    #[must_use]
    pub fn labels(&self, server_name: &str) -> Arc<Labels> {
        self.read()
            .by_name
            .get(server_name)
            .map(|e| e.labels.clone())
            .unwrap_or_default()
    }

    #[must_use]
    pub fn get(&self, server_name: &str) -> Option<Arc<ServerReport>> {
        self.read()
            .by_name
            .get(server_name)
            .and_then(|e| e.report.clone())
    }

    /// Every report with its server's extra labels, sorted by server name. Clones `Arc`s only.
    #[must_use]
    pub fn snapshot_labeled(&self) -> Vec<(Arc<ServerReport>, Arc<Labels>)> {
        self.read()
            .by_name
            .values()
            .filter_map(|e| Some((e.report.clone()?, e.labels.clone())))
            .collect()
    }

    /// Every report, sorted by server name. Clones `Arc`s only.
    #[must_use]
    pub fn snapshot(&self) -> Vec<Arc<ServerReport>> {
        self.read()
            .by_name
            .values()
            .filter_map(|e| e.report.clone())
            .collect()
    }

    /// How many reports are stored.
    #[must_use]
    pub fn len(&self) -> usize {
        self.read()
            .by_name
            .values()
            .filter(|e| e.report.is_some())
            .count()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A writer that panicked mid-`insert` leaves the map in a valid state (a map operation either happened or
    // not), so a poisoned lock is safe to keep using.
    fn read(&self) -> RwLockReadGuard<'_, Servers> {
        self.servers.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Servers> {
        self.servers.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The notaries' view, kept beside the reports it compares with.
impl Store {
    /// Stores `report` as the latest round of its notary.
    pub fn set_notary(&self, report: NotaryReport) {
        self.notaries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(report.notary.clone(), Arc::new(report));
    }

    /// Keeps only the rounds of `notaries` (a reload removed the others: their series vanish at once).
    pub fn retain_notaries(&self, notaries: &[&str]) {
        self.notaries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|name, _| notaries.contains(&name.as_str()));
    }

    /// The latest round of every notary, sorted by notary name.
    #[must_use]
    pub fn notaries(&self) -> Vec<Arc<NotaryReport>> {
        self.notaries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// The latest round of `notary`.
    #[must_use]
    pub fn notary(&self, notary: &str) -> Option<Arc<NotaryReport>> {
        self.notaries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(notary)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn configure_drops_removed_servers_and_refuses_their_late_reports() {
        use crate::config::server_name::ServerName;
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
            history: crate::report::History::default(),
            key_history: crate::report::KeyHistory::default(),
            local_certs: crate::report::LocalCertsReport::default(),
            server_name: name.into(),
            started_at: SystemTime::UNIX_EPOCH,
            finished_at: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            duration: Duration::from_secs(1),
            discovery: DiscoveryReport::empty(name),
            addresses: Vec::new(),
            failures: Vec::new(),
            client: None,
            support: None,
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
    fn history_goes_on_across_reports_and_reloads_for_servers_that_stay() {
        let store = Store::new();
        let target = |n: &str| Target {
            name: crate::config::server_name::ServerName::parse(n).unwrap(),
            labels: Labels::new(),
        };
        store.configure(&[target("a.example")]);
        store.insert(report("a.example", 1));
        let mut failing = report("a.example", 2);
        failing.failures.push(crate::report::Failure::new(
            crate::report::Stage::Dns,
            crate::report::Reason::DnsNxdomain,
            "gone",
        ));
        store.insert(failing);
        store.insert(report("a.example", 3));
        store.configure(&[target("a.example"), target("b.example")]);
        store.insert(report("a.example", 4));
        let times = |name: &str| -> Vec<u64> {
            store
                .get(name)
                .map(|r| r.history.changes().iter().map(|c| c.at).collect())
                .unwrap_or_default()
        };
        assert_eq!(
            times("a.example"),
            [1, 2, 3],
            "unchanged at 4, kept across the reload"
        );
        store.configure(&[target("b.example")]);
        store.configure(&[target("a.example")]);
        store.insert(report("a.example", 5));
        assert_eq!(times("a.example"), [5], "a server that left starts over");
    }

    #[test]
    fn configure_keeps_the_reports_of_servers_that_stay() {
        let store = Store::new();
        store.insert(report("a.example", 1));
        store.insert(report("b.example", 1));
        store.configure(&[Target {
            name: crate::config::server_name::ServerName::parse("b.example").unwrap(),
            labels: Labels::new(),
        }]);
        assert!(store.get("a.example").is_none());
        assert_eq!(store.len(), 1);
        assert!(store.get("b.example").is_some(), "kept across configure");
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
        assert!(store.servers.is_poisoned());
        store.insert(report("b.example", 1));
        assert_eq!(store.len(), 2);
    }
}
