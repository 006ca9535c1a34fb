//! A server's recent state changes (`report::History`) in the words the status page and the report API share:
//! what changed, and each state's verdict, failure reasons, delegation, certificate and key set. Newest first.

use serde::Serialize;

use crate::report::{Change, History, Reason, State};

/// One change as the report API's extension key carries it.
#[derive(Serialize)]
pub struct JsonChange {
    /// Unix seconds: when the probe that saw this state finished.
    pub at: u64,
    /// What differs from the change before: `first_probe`, or some of `verdict`, `failures`, `delegation`,
    /// `certificate`, `key_set`.
    pub changed: Vec<&'static str>,
    pub federation_ok: bool,
    /// Failure reasons (the `reason` label's values).
    pub failures: Vec<&'static str>,
    /// The discovery `method` label's value, and the `.well-known` `m.server` when it delegated.
    pub method: &'static str,
    pub delegated_server: Option<String>,
    /// The leaf certificate: the first 16 hex digits of its SHA-256 fingerprint (a prefix of the
    /// `fingerprint_sha256` label) when every address presented the same one; see `certificates`.
    pub certificate: Option<String>,
    /// How many different leaf certificates the addresses presented.
    pub certificates: u8,
    /// A digest of the verify keys served (hex), when every address served the same set; see `key_sets`.
    pub key_set: Option<String>,
    pub key_sets: u8,
}

/// Every change, newest first, each with what changed from the one before it.
pub fn changes(history: &History) -> impl Iterator<Item = (&Change, Vec<&'static str>)> {
    let all = history.changes();
    all.iter()
        .enumerate()
        .rev()
        .map(move |(i, c)| (c, c.changed(i.checked_sub(1).map(|p| &all[p]))))
}

/// The report API's `history`: every change, newest first.
#[must_use]
pub fn json(history: &History) -> Vec<JsonChange> {
    changes(history)
        .map(|(c, changed)| {
            let s = &c.state;
            JsonChange {
                at: c.at,
                changed,
                federation_ok: s.ok,
                failures: s.reasons().map(Reason::as_str).collect(),
                method: s.method.as_str(),
                delegated_server: s.delegated_server.as_deref().map(str::to_owned),
                certificate: (s.certificates == 1).then(|| format!("{:016x}", s.certificate)),
                certificates: s.certificates,
                key_set: (s.key_sets == 1).then(|| format!("{:016x}", s.key_set)),
                key_sets: s.key_sets,
            }
        })
        .collect()
}

/// The certificate of a state, in words: its fingerprint prefix, "none", or how many different ones.
#[must_use]
pub fn certificate_words(state: &State) -> String {
    match state.certificates {
        0 => "none".to_owned(),
        1 => format!("{:016x}…", state.certificate),
        n => format!("{n} different"),
    }
}

/// The key set of a state, in words: its digest, "none", or how many different sets.
#[must_use]
pub fn key_set_words(state: &State) -> String {
    match state.key_sets {
        0 => "none".to_owned(),
        1 => format!("{:016x}", state.key_set),
        n => format!("{n} different"),
    }
}

/// The delegation of a state, in words: the delegated name when `.well-known` delegated, and the method.
#[must_use]
pub fn delegation_words(state: &State) -> String {
    match &state.delegated_server {
        Some(to) => format!("{to} ({})", state.method.as_str()),
        None => state.method.as_str().to_owned(),
    }
}
