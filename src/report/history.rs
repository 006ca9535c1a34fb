//! A server's recent history: the last [`History::CAPACITY`] changes of its state (verdict, failure reasons,
//! delegation, certificate, key set), each with the time the probe that saw it finished.
//!
//! Plain data, kept compact for ten thousand servers: a [`State`] is a few fixed-size digests (a bit per failure
//! reason, the first 8 bytes of the leaf certificate's SHA-256, a hash of the key set) and the delegated name,
//! shared with the previous entry while it does not change. [`History::next`] compares a new report with the
//! last entry without allocating, and allocates only when something changed. The store (`schedule/store.rs`)
//! keeps one history per scheduled server; reports of `/probe`, the report API's on-demand probes and `check`
//! carry none.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Method, Reason, ServerReport};

// One bit per reason.
const _: () = assert!(Reason::ALL.len() <= 64);

/// The recent state changes of one server, oldest first. Cheap to clone (a shared, immutable slice).
#[derive(Clone, Debug, Default)]
pub struct History(Option<Arc<[Change]>>);

/// One state change: the state a probe saw, and when that probe finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Unix seconds.
    pub at: u64,
    pub state: State,
}

/// What a probe found, reduced to what an operator asks "what changed?" about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// The tester's `FederationOK`.
    pub ok: bool,
    /// Every failure reason of the probe, server-level and per address, one bit each (see [`State::reasons`]).
    pub reasons: u64,
    pub method: Method,
    /// The `.well-known` `m.server` when it delegated.
    pub delegated_server: Option<Arc<str>>,
    /// The first 8 bytes of the leaf certificate's SHA-256 fingerprint (a prefix of `fingerprint_sha256`) when
    /// every address that presented one presented the same; else a digest of the different ones.
    pub certificate: u64,
    /// How many different leaf certificates the addresses presented.
    pub certificates: u8,
    /// A digest of the verify keys (`key_id` and key) the addresses served, when they all served the same set;
    /// else a digest of the different sets.
    pub key_set: u64,
    /// How many different key sets the addresses served.
    pub key_sets: u8,
}

impl History {
    /// At most this many changes are kept; the oldest goes first.
    pub const CAPACITY: usize = 20;

    /// Every change kept, oldest first.
    #[must_use]
    pub fn changes(&self) -> &[Change] {
        self.0.as_deref().unwrap_or_default()
    }

    /// This history with `report`'s state appended when it differs from the last entry (the first report
    /// always makes an entry), dropping the oldest beyond [`History::CAPACITY`]. No allocation when nothing
    /// changed: the result shares this history's slice.
    #[must_use]
    pub fn next(&self, report: &ServerReport) -> Self {
        let digest = Digest::of(report);
        let last = self.changes().last();
        let delegated = report.discovery.delegated_server.as_deref();
        if last.is_some_and(|c| {
            digest.matches(&c.state) && c.state.delegated_server.as_deref() == delegated
        }) {
            return self.clone();
        }
        let delegated_server = match (last, delegated) {
            (_, None) => None,
            (
                Some(Change {
                    state:
                        State {
                            delegated_server: Some(prev),
                            ..
                        },
                    ..
                }),
                Some(now),
            ) if **prev == *now => Some(prev.clone()),
            (_, Some(now)) => Some(Arc::from(now)),
        };
        let change = Change {
            at: report
                .finished_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            state: digest.into_state(delegated_server),
        };
        let kept = self.changes();
        let skip = (kept.len() + 1).saturating_sub(Self::CAPACITY);
        Self(Some(
            kept[skip..]
                .iter()
                .cloned()
                .chain(std::iter::once(change))
                .collect(),
        ))
    }
}

impl Change {
    /// When the probe finished.
    #[must_use]
    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_secs(self.at)
    }

    /// What differs from `previous` (`None` for the first entry), by the names the status page and the report
    /// API use: `verdict`, `failures`, `delegation`, `certificate`, `key_set`.
    #[must_use]
    pub fn changed(&self, previous: Option<&Change>) -> Vec<&'static str> {
        let Some(p) = previous.map(|p| &p.state) else {
            return vec!["first_probe"];
        };
        let s = &self.state;
        [
            (s.ok != p.ok, "verdict"),
            (s.reasons != p.reasons, "failures"),
            (
                s.method != p.method || s.delegated_server != p.delegated_server,
                "delegation",
            ),
            (
                s.certificate != p.certificate || s.certificates != p.certificates,
                "certificate",
            ),
            (
                s.key_set != p.key_set || s.key_sets != p.key_sets,
                "key_set",
            ),
        ]
        .into_iter()
        .filter_map(|(changed, name)| changed.then_some(name))
        .collect()
    }
}

impl State {
    /// The failure reasons, in the order of [`Reason::ALL`].
    pub fn reasons(&self) -> impl Iterator<Item = Reason> + '_ {
        Reason::ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| self.reasons & (1 << i) != 0)
            .map(|(_, r)| *r)
    }
}

/// A [`State`] without the delegated name, computed from a report without allocating.
struct Digest {
    ok: bool,
    reasons: u64,
    method: Method,
    certificate: Distinct,
    key_set: Distinct,
}

impl Digest {
    fn of(report: &ServerReport) -> Self {
        let mut reasons = 0u64;
        for (_, failure) in report.all_failures() {
            reasons |= 1 << reason_bit(failure.reason);
        }
        let mut certificate = Distinct::default();
        let mut key_set = Distinct::default();
        for address in &report.addresses {
            if let Some(leaf) = address.certificate.as_ref().and_then(|c| c.chain.first()) {
                let bytes = &leaf.fingerprint_sha256.0;
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(&bytes[..8]);
                certificate.add(u64::from_be_bytes(prefix));
            }
            if let Some(keys) = &address.keys {
                // Order-independent within one document (key ids are unique there).
                let set = keys.verify_keys.iter().fold(0u64, |acc, k| {
                    let mut h = DefaultHasher::new();
                    (&k.key_id, &k.key).hash(&mut h);
                    acc ^ h.finish()
                });
                key_set.add(set);
            }
        }
        Self {
            ok: report.success(),
            reasons,
            method: report.discovery.method,
            certificate,
            key_set,
        }
    }

    fn matches(&self, state: &State) -> bool {
        self.ok == state.ok
            && self.reasons == state.reasons
            && self.method == state.method
            && (self.certificate.digest(), self.certificate.count())
                == (state.certificate, state.certificates)
            && (self.key_set.digest(), self.key_set.count()) == (state.key_set, state.key_sets)
    }

    fn into_state(self, delegated_server: Option<Arc<str>>) -> State {
        State {
            ok: self.ok,
            reasons: self.reasons,
            method: self.method,
            delegated_server,
            certificate: self.certificate.digest(),
            certificates: self.certificate.count(),
            key_set: self.key_set.digest(),
            key_sets: self.key_set.count(),
        }
    }
}

/// The different values seen (up to 8 kept; more only count), without allocating.
#[derive(Default)]
struct Distinct {
    seen: [u64; 8],
    len: u8,
}

impl Distinct {
    fn add(&mut self, value: u64) {
        let len = usize::from(self.len);
        if self.seen[..len.min(8)].contains(&value) {
            return;
        }
        if len < 8 {
            self.seen[len] = value;
        }
        self.len = self.len.saturating_add(1);
    }

    fn count(&self) -> u8 {
        self.len
    }

    /// The one value when there is one; an order-independent digest of several; 0 for none.
    fn digest(&self) -> u64 {
        self.seen[..usize::from(self.len).min(8)]
            .iter()
            .fold(0, |acc, v| acc ^ v)
    }
}

fn reason_bit(reason: Reason) -> usize {
    Reason::ALL
        .iter()
        .position(|r| *r == reason)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{DiscoveryReport, Failure, SharedStr, Stage};
    use std::time::Duration;

    fn report(at: u64, delegated: Option<&str>, failure: Option<Reason>) -> ServerReport {
        let mut discovery = DiscoveryReport::empty("a.test");
        discovery.delegated_server = delegated.map(Into::into);
        ServerReport {
            server_name: SharedStr::from("a.test"),
            started_at: UNIX_EPOCH + Duration::from_secs(at),
            finished_at: UNIX_EPOCH + Duration::from_secs(at),
            duration: Duration::ZERO,
            discovery,
            addresses: Vec::new(),
            failures: failure
                .map(|r| Failure::new(Stage::Dns, r, "x"))
                .into_iter()
                .collect(),
            history: History::default(),
            client: None,
            key_history: crate::report::KeyHistory::default(),
            support: None,
            local_certs: crate::report::LocalCertsReport::default(),
        }
    }

    #[test]
    fn only_changes_are_kept_and_the_oldest_go_first() {
        let mut h = History::default();
        h = h.next(&report(1, None, None));
        let same = h.next(&report(2, None, None));
        assert!(Arc::ptr_eq(same.0.as_ref().unwrap(), h.0.as_ref().unwrap()));
        h = h.next(&report(3, Some("m.a.test"), None));
        h = h.next(&report(4, Some("m.a.test"), Some(Reason::DnsNxdomain)));
        let c = h.changes();
        assert_eq!(c.iter().map(|c| c.at).collect::<Vec<_>>(), [1, 3, 4]);
        assert_eq!(c[1].changed(Some(&c[0])), ["delegation"]);
        // No address, so the verdict was "fails" already.
        assert_eq!(c[2].changed(Some(&c[1])), ["failures"]);
        assert!(Arc::ptr_eq(
            c[1].state.delegated_server.as_ref().unwrap(),
            c[2].state.delegated_server.as_ref().unwrap()
        ));
        assert_eq!(
            c[2].state.reasons().collect::<Vec<_>>(),
            [Reason::DnsNxdomain]
        );
        for at in 5..40 {
            let failure = (at % 2 == 0).then_some(Reason::DnsNxdomain);
            h = h.next(&report(at, None, failure));
        }
        assert_eq!(h.changes().len(), History::CAPACITY);
        assert_eq!(h.changes().last().unwrap().at, 39);
    }
}
