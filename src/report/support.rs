//! Plain data for two of the certificates FAQ's questions: the server name's own SRV records that a delegating
//! well-known shadows, and the support contacts of `/.well-known/matrix/support`.

use std::time::Duration;

use super::{ContactRole, SharedStr, SrvRecordName, SupportResult};

/// The server name's own SRV records, looked up after a delegating well-known (peers never read them then).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShadowedSrvReport {
    /// Every record found under both names, `_matrix-fed._tcp` first.
    pub records: Vec<ShadowedSrv>,
    /// How long both lookups took (they run together).
    pub duration: Duration,
    /// Lookups that gave no answer (SERVFAIL, timeout), in words; never a failure of the probe.
    pub errors: Vec<String>,
}

/// One shadowed SRV record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShadowedSrv {
    pub record: SrvRecordName,
    /// `host:port`, the host without its trailing dot (the `srv_target` label).
    pub target: SharedStr,
    pub priority: u16,
    pub weight: u16,
    /// True when `target` is not one of the `host:port` pairs the followed delegation leads to.
    pub elsewhere: bool,
}

/// The most contacts a report keeps (the counts cover all of them).
pub const MAX_CONTACTS: usize = 32;
/// The longest contact field or support page kept, in bytes; longer ones are cut.
pub const MAX_FIELD: usize = 512;

/// `GET https://<hostname>/.well-known/matrix/support` and what it said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupportReport {
    pub result: SupportResult,
    /// The contacts, in document order, at most [`MAX_CONTACTS`]. Hostile text: render it escaped, never as a label.
    pub contacts: Vec<SupportContact>,
    /// How many contacts the document lists per role (all of them, not only those kept).
    pub role_counts: [u32; 3],
    pub support_page: Option<Box<str>>,
    /// The URLs fetched, in order, with the HTTP status each answered (0 when no answer came).
    pub hops: super::Hops,
    /// What went wrong, in words, when the result is not `ok` and its words are not the result's own (read it
    /// through [`SupportReport::error_text`]).
    pub error: Option<Box<str>>,
    pub duration: super::Micros,
}

impl SupportReport {
    /// A report before anything was fetched: `error`, no contacts, no hops.
    #[must_use]
    pub fn unfetched() -> Self {
        Self {
            result: SupportResult::Error,
            contacts: Vec::new(),
            role_counts: [0; 3],
            support_page: None,
            hops: super::Hops::default(),
            error: None,
            duration: std::time::Duration::ZERO.into(),
        }
    }

    /// What went wrong, in words, when the result is not `ok`: the words kept, or those of `not_found`.
    #[must_use]
    pub fn error_text(&self) -> Option<&str> {
        match (&self.error, self.result) {
            (Some(words), _) => Some(words),
            (None, SupportResult::NotFound) => Some("HTTP 404: no support document"),
            (None, _) => None,
        }
    }

    /// How many contacts have `role`.
    #[must_use]
    pub fn count(&self, role: ContactRole) -> u32 {
        let i = ContactRole::ALL
            .iter()
            .position(|r| *r == role)
            .unwrap_or(0);
        self.role_counts[i]
    }
}

/// One contact of the support document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupportContact {
    /// The role as written (`m.role.admin`, `m.role.security`, or another).
    pub role: String,
    pub email_address: Option<String>,
    pub matrix_id: Option<String>,
}
