//! Plain data: what one query of one notary found (`probe/notary.rs` makes it, `schedule/store.rs` keeps the
//! latest per notary, `render/` shows it).

use std::time::{Duration, SystemTime};

use super::NotaryResult;

/// One round of queries to one notary.
#[derive(Clone, Debug)]
pub struct NotaryReport {
    /// The notary's server name as configured (the `notary` label).
    pub notary: String,
    /// When the round started (wall clock) and how long it took.
    pub started_at: SystemTime,
    pub duration: Duration,
    /// The notary was reached and its own key document verified, so its answers could be judged.
    pub up: bool,
    /// Why it is not up (empty when it is).
    pub message: String,
    /// How many `POST /_matrix/key/v2/query` requests the round sent.
    pub requests: usize,
    /// One entry per server asked about, sorted by server name.
    pub servers: Vec<NotaryView>,
}

/// What the notary serves for one server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotaryView {
    pub server_name: String,
    pub result: NotaryResult,
    /// The latest `valid_until_ts` (ms) of the correctly signed objects the notary returned.
    pub valid_until_ts: Option<i64>,
    /// The verify keys (`key id`, unpadded base64) of the correctly signed objects the notary returned.
    pub keys: Vec<(String, String)>,
    /// What differs, or why the answer was refused (for logs, `check` and the status page; never a label).
    pub message: String,
}

impl NotaryReport {
    /// The view of `server_name`, if the notary was asked about it.
    #[must_use]
    pub fn view(&self, server_name: &str) -> Option<&NotaryView> {
        self.servers
            .binary_search_by(|v| v.server_name.as_str().cmp(server_name))
            .ok()
            .map(|i| &self.servers[i])
    }
}
