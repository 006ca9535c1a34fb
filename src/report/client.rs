//! Plain data: what client discovery found (`/.well-known/matrix/client`, then `/_matrix/client/versions`).
//! Produced by `probe/client.rs`; nothing here does I/O.

use super::{ClientOutcome, ClientResult, Failure};

/// The client discovery of one server name, as a client that follows the spec would walk it.
#[derive(Clone, Debug)]
pub struct ClientReport {
    /// What the spec tells a client to do with the well-known's answer.
    pub outcome: ClientOutcome,
    /// Which step decided, and why.
    pub result: ClientResult,
    /// The homeserver base URL a client ends with, without a trailing `/`: the well-known's `base_url`, or
    /// `https://<server_name>` after a 404. `None` when discovery stopped before one was known.
    pub base_url: Option<String>,
    /// The identity server's `base_url`, when the well-known names one (checked as a URL, never fetched).
    pub identity_server: Option<Box<str>>,
    /// The well-known URLs fetched, in order, with the HTTP status each answered (0 when no answer came).
    pub hops: super::Hops,
    /// Whether the well-known's 200 answer carried `Access-Control-Allow-Origin: *`; `None` without a 200.
    pub cors: Option<bool>,
    /// How many versions `/_matrix/client/versions` advertised (the list itself is not kept: only its
    /// highest is shown, and a stored report stays small).
    pub versions: u32,
    /// The highest advertised spec version (`v1.11` > `v1.2` > `r0.6.1`); `None` when none is a spec version.
    pub latest: Option<Box<str>>,
    /// How long the well-known fetch and the versions request took (`None`: not asked).
    pub well_known_duration: super::Micros,
    pub versions_duration: Option<super::Micros>,
    /// The failure (stage `client`) when a client would not end with a working homeserver URL; empty on
    /// success. Never part of `probe_success`.
    pub failures: Vec<Failure>,
}

impl ClientReport {
    /// What went wrong, in words, when the result is not `ok` (the failure's message: kept once).
    #[must_use]
    pub fn error(&self) -> Option<&str> {
        self.failures.first().map(|f| f.message.as_str())
    }

    /// A client that follows the spec ends with a working homeserver URL: the well-known's, or the fallback
    /// after a 404.
    #[must_use]
    pub fn success(&self) -> bool {
        matches!(self.result, ClientResult::Ok | ClientResult::NotFound)
    }

    /// The `Access-Control-Allow-Origin: *` header was missing from a 200 well-known.
    #[must_use]
    pub fn no_cors(&self) -> bool {
        self.cors == Some(false)
    }
}
