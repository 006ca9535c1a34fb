//! Plain data: what a homeserver's admin API said about its federation destinations (Synapse's
//! `GET /_synapse/admin/v1/federation/destinations`), kept as the last good list per configured homeserver.
//!
//! It holds no token, does no I/O and judges nothing: `probe/homeserver.rs` fills it, `schedule/homeservers.rs`
//! keeps it, `render/` joins it with our probes into a `Verdict`.

use std::sync::Arc;
use std::time::SystemTime;

use super::Verdict;

/// One destination as Synapse reported it. Times are Unix milliseconds, as the admin API gives them. Small on
/// purpose (a name and three numbers): a homeserver may list ten thousand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// A valid server name (destinations that are not one are skipped when the list is read).
    pub server_name: Arc<str>,
    /// `retry_last_ts`: when Synapse last tried (0 when it never had to retry).
    pub retry_last_ts: i64,
    /// `retry_interval`: the current backoff, 0 when Synapse is not backing off.
    pub retry_interval: i64,
    /// `failure_ts`: when the current run of failures began; `None` when Synapse is not failing.
    pub failure_ts: Option<i64>,
}

impl Destination {
    /// "Synapse fails": a run of failures began and no success has reset it since.
    #[must_use]
    pub fn synapse_fails(&self) -> bool {
        self.failure_ts.is_some()
    }

    /// The verdict once we have probed it (`probe_success` of our latest report).
    #[must_use]
    pub fn verdict(&self, probe_success: bool) -> Verdict {
        Verdict::of(self.synapse_fails(), probe_success)
    }
}

/// The state of one configured homeserver: its last good destination list and whether the last refresh worked.
#[derive(Clone, Debug)]
pub struct HomeserverView {
    /// The configured `name` (the `homeserver` label).
    pub name: Arc<str>,
    /// Whether the last refresh got a complete list (the API answered and accepted the token).
    pub up: bool,
    /// The last good list, sorted by server name, without the destinations skipped because Synapse has been
    /// failing them for longer than `skip_failing_longer_than`. Kept when a refresh fails.
    pub destinations: Arc<[Destination]>,
    /// How many destinations the last good answer listed (skipped and invalid ones included, up to
    /// `max_destinations`).
    pub listed: usize,
    /// Destinations left out of the last good list because they have been failing for too long.
    pub skipped_failing: usize,
    /// Destinations left out of the last good list because they are not valid server names.
    pub skipped_invalid: usize,
    /// The last good list stopped at `max_destinations`.
    pub truncated: bool,
    /// Why the last refresh failed (no token in it, ever); `None` when it worked.
    pub error: Option<String>,
    /// When the last refresh ended, successful or not (`None` before the first).
    pub refreshed_at: Option<SystemTime>,
    /// When the last good list was read.
    pub good_at: Option<SystemTime>,
}

impl HomeserverView {
    /// A homeserver not refreshed yet: down, with no destinations.
    #[must_use]
    pub fn new(name: Arc<str>) -> Self {
        Self {
            name,
            up: false,
            destinations: Arc::from(Vec::new()),
            listed: 0,
            skipped_failing: 0,
            skipped_invalid: 0,
            truncated: false,
            error: None,
            refreshed_at: None,
            good_at: None,
        }
    }

    /// The destination `server_name`, if the last good list has it.
    #[must_use]
    pub fn destination(&self, server_name: &str) -> Option<&Destination> {
        self.destinations
            .binary_search_by(|d| d.server_name.as_ref().cmp(server_name))
            .ok()
            .map(|i| &self.destinations[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_joins_synapse_and_probe() {
        let d = |failure_ts| Destination {
            server_name: Arc::from("a.example"),
            retry_last_ts: 0,
            retry_interval: 0,
            failure_ts,
        };
        assert_eq!(d(None).verdict(true), Verdict::Ok);
        assert_eq!(d(None).verdict(false), Verdict::UnseenFault);
        assert_eq!(d(Some(1)).verdict(false), Verdict::Them);
        assert_eq!(d(Some(1)).verdict(true), Verdict::Us);
    }
}
