//! Plain data: what one probe of one server name found.
//!
//! A probe (see `probe/mod.rs`) produces a [`ServerReport`]; `/metrics`, the JSON API and the `check` CLI only
//! read it. Nothing here does I/O, and nothing here knows about Prometheus types. Every failure is a
//! [`Failure`] with a closed [`Stage`] and [`Reason`]; the free-text `message` is for humans (logs, JSON,
//! CLI) and never becomes a label value.

mod address;
pub mod address_class;
mod client;
mod history;
pub mod homeserver;
mod hops;
pub mod key_history;
mod labels;
pub mod notary;
mod shared_str;
mod support;
mod timings;

pub use address::{
    AddressReport, CertFacts, CertReport, Fingerprint, KeysReport, OldVerifyKey, TlsFacts,
    VerifyKey, VersionReport,
};
pub use client::ClientReport;
pub use history::{Change, History, State};
pub use hops::Hops;
pub use key_history::KeyHistory;
pub use labels::{
    AddressClass, ClientOutcome, ClientResult, ContactRole, Family, KeyChangeKind, Method,
    NotaryResult, Phase, Reason, SrvRecordName, Stage, Step, SupportResult, Verdict, Warning,
    WellKnownOutcome,
};
pub use shared_str::SharedStr;
pub use support::{
    MAX_CONTACTS, MAX_FIELD, ShadowedSrv, ShadowedSrvReport, SupportContact, SupportReport,
};
pub use timings::{Micros, Timed, Timings};

/// A server's extra labels (from a target file), sorted by name; every series of the server carries them.
pub type Labels = std::collections::BTreeMap<String, String>;

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The result of probing one server name once.
#[derive(Clone, Debug)]
pub struct ServerReport {
    /// The server name as configured (the `server_name` label).
    pub server_name: SharedStr,
    /// When the probe started and finished (wall clock).
    pub started_at: SystemTime,
    pub finished_at: SystemTime,
    /// How long the whole probe took.
    pub duration: Duration,
    /// How the server name was resolved.
    pub discovery: DiscoveryReport,
    /// One entry per resolved `ip:port`, in discovery order.
    pub addresses: Vec<AddressReport>,
    /// Failures that belong to no single address (discovery and DNS).
    pub failures: Vec<Failure>,
    /// The server's recent state changes, this report's included; set by the store for scheduled servers,
    /// empty in the reports of `/probe`, on-demand probes and `check`.
    pub history: History,
    /// Client discovery (`probe.checks.client`); `None` when the check is off or did not run. Never part of
    /// [`ServerReport::success`].
    pub client: Option<ClientReport>,
    /// The server's signing keys of the last 7 days and how they changed (see `report/key_history.rs`); set by
    /// the store for scheduled servers, empty in the reports of `/probe`, on-demand probes and `check`.
    pub key_history: KeyHistory,
    /// `/.well-known/matrix/support`; `None` when `probe.checks.support` is off or the probe was cut.
    pub support: Option<SupportReport>,
    /// The certificate files of `local_certificates` for this server and how they compare with what it serves
    /// (empty when none is configured).
    pub local_certs: LocalCertsReport,
}

impl ServerReport {
    /// The federation tester's `FederationOK`: discovery found at least one address, no server-level failure
    /// was recorded, and every address passed every enabled check.
    #[must_use]
    pub fn success(&self) -> bool {
        !self.addresses.is_empty()
            && self.failures.is_empty()
            && self.addresses.iter().all(AddressReport::success)
    }

    /// Every current failure, server-level first, each with the address it belongs to (`None` for the server).
    pub fn all_failures(&self) -> impl Iterator<Item = (Option<SocketAddr>, &Failure)> {
        self.failures.iter().map(|f| (None, f)).chain(
            self.addresses
                .iter()
                .flat_map(|a| a.failures.iter().map(move |f| (Some(a.address), f))),
        )
    }

    /// Things that do not fail the probe but deserve a look, derived from discovery: every SRV target that
    /// resolved through a CNAME, then (when some address was probed) every address left unprobed because
    /// default-configured peers refuse it, then every `dropped` or `replaced` signing key of the key history.
    /// When every address is refused, that is the `address_not_public` failure instead. The words for each (its message and fix) are in `render/explain.rs`.
    #[must_use]
    pub fn warnings(&self) -> Vec<ServerWarning> {
        self.warning_sources()
            .map(|(warning, address, host)| ServerWarning {
                warning,
                address,
                host: host.clone(),
            })
            .collect()
    }

    /// The label values of [`ServerReport::warnings`], in the same order, without collecting them.
    pub fn warning_labels(&self) -> impl Iterator<Item = (Warning, Option<SocketAddr>)> + '_ {
        self.warning_sources().map(|(w, address, _)| (w, address))
    }

    /// Each warning with its address and the host it is about.
    fn warning_sources(
        &self,
    ) -> impl Iterator<Item = (Warning, Option<SocketAddr>, &SharedStr)> + '_ {
        let d = &self.discovery;
        let cnames = d
            .targets
            .iter()
            .filter(|t| t.srv.is_some() && t.via_cname)
            .map(|t| (Warning::SrvTargetCname, None, &t.host));
        let some_probed = !self.addresses.is_empty();
        let refused = d
            .refused
            .iter()
            .filter(move |_| some_probed)
            .map(|r| (Warning::AddressNotPublic, Some(r.address), &r.target_host));
        let unreadable = self
            .local_certs
            .files
            .iter()
            .filter(|f| f.leaf.is_err())
            .map(|f| (Warning::LocalCertUnreadable, None, &f.cert_file));
        let not_reloaded = self
            .local_certs
            .not_reloaded
            .iter()
            .map(|n| (Warning::CertNotReloaded, Some(n.address), &n.cert_file));
        let shadowed = d
            .shadowed_srv
            .iter()
            .flat_map(|s| &s.records)
            .filter(|r| r.elsewhere)
            .map(|r| (Warning::SrvShadowedElsewhere, None, &r.target));
        let support = self
            .support
            .iter()
            .filter(|s| {
                matches!(
                    s.result,
                    SupportResult::Invalid | SupportResult::InvalidJson | SupportResult::TooLarge
                )
            })
            .map(|_| (Warning::SupportInvalid, None, &self.server_name));
        // About the key id (in `host`), one per `dropped` or `replaced` row of the store's key history.
        let keys = self.key_history.faults().filter_map(|c| {
            let warning = match c.change {
                KeyChangeKind::Dropped => Warning::SigningKeyDropped,
                KeyChangeKind::Replaced => Warning::SigningKeyReplaced,
                KeyChangeKind::Added | KeyChangeKind::Retired => return None,
            };
            Some((warning, None, &c.key_id))
        });
        // About the server name, not one address: peers disagree on where it is depending on the address
        // their resolver picks.
        let inconsistent = (d.well_known.consistent() == Some(false)).then_some((
            Warning::WellKnownInconsistent,
            None,
            &self.server_name,
        ));
        let no_cors = self
            .client
            .iter()
            .filter(|c| c.no_cors())
            .map(|_| (Warning::ClientWellKnownNoCors, None, &self.server_name));
        cnames
            .chain(refused)
            .chain(no_cors)
            .chain(inconsistent)
            .chain(keys)
            .chain(shadowed)
            .chain(support)
            .chain(unreadable)
            .chain(not_reloaded)
    }

    /// The client discovery failures (stage `client`): exported with the others, but outside
    /// [`ServerReport::all_failures`] and [`ServerReport::success`], since they do not change `probe_success`.
    pub fn client_failures(&self) -> impl Iterator<Item = &Failure> {
        self.client.iter().flat_map(|c| c.failures.iter())
    }
}

/// The `local_certificates` files of one server (DESIGN.md point 7), as read for one probe.
#[derive(Clone, Debug, Default)]
pub struct LocalCertsReport {
    /// Every file, after glob expansion, in config order.
    pub files: Box<[LocalCertFile]>,
    /// Every address (federation or the well-known's port 443) that serves an older certificate than a file
    /// holds for the same name, past the reload grace: the warning `cert_not_reloaded`.
    pub not_reloaded: Box<[NotReloaded]>,
}

/// One certificate file on this machine.
#[derive(Clone, Debug)]
pub struct LocalCertFile {
    /// The path as configured, after glob expansion (the `cert_file` label).
    pub cert_file: SharedStr,
    /// The file's leaf (its first certificate), or why there is none (missing, permission denied, over 1 MiB, no
    /// certificate): the warning `local_cert_unreadable`.
    pub leaf: Result<Arc<CertFacts>, String>,
    /// The file's modification time (of the symlink's target), Unix seconds, when it could be read.
    pub modified: Option<i64>,
}

/// An address still serving a certificate older than the one a local file holds for the name it is judged
/// against: the server or its reverse proxy was not reloaded after the renewal.
#[derive(Clone, Debug)]
pub struct NotReloaded {
    pub address: SocketAddr,
    /// The name the certificate is judged against there.
    pub name: SharedStr,
    /// True for the well-known's port 443, false for a federation address.
    pub well_known: bool,
    /// The file holding the newer certificate.
    pub cert_file: SharedStr,
    /// The leaf the address serves.
    pub served: Arc<CertFacts>,
    /// The newer leaf in the file.
    pub on_disk: Arc<CertFacts>,
}

/// A finding that does not fail the probe: a closed [`Warning`] label and what it is about. Its message for
/// people is `render::explain::warning_message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerWarning {
    pub warning: Warning,
    /// The address it is about, `None` when it is about the server or a target host.
    pub address: Option<SocketAddr>,
    /// The host it is about: the SRV target, or the host the address was resolved from; for the signing-key
    /// warnings, the key id.
    pub host: SharedStr,
}

impl ServerReport {
    /// The report of a probe that was cut at its deadline.
    #[must_use]
    pub fn timed_out(server_name: &str, started_at: SystemTime, duration: Duration) -> Self {
        Self {
            history: History::default(),
            key_history: KeyHistory::default(),
            local_certs: LocalCertsReport::default(),
            server_name: server_name.into(),
            started_at,
            finished_at: started_at + duration,
            duration,
            discovery: DiscoveryReport::empty(server_name),
            support: None,
            addresses: Vec::new(),
            failures: vec![Failure::new(
                Stage::Discovery,
                Reason::Timeout,
                format!(
                    "the probe did not finish within {}",
                    humantime::format_duration(duration)
                ),
            )],
            client: None,
        }
    }
}

/// What discovery decided: the spec step taken, the names used, and the targets found.
#[derive(Clone, Debug)]
pub struct DiscoveryReport {
    pub method: Method,
    pub well_known: WellKnownReport,
    /// The `m.server` value when `.well-known` delegated, else `None`.
    pub delegated_server: Option<Box<str>>,
    /// The name the certificate must be valid for (an IP literal for IP hosts; never an SRV target).
    pub tls_name: SharedStr,
    /// The `Host` header federation requests carry.
    pub host_header: SharedStr,
    /// Every host discovery asked for addresses, with what it found.
    pub targets: Vec<TargetReport>,
    /// How long each discovery step took.
    pub steps: Timings<Step>,
    /// Set when more targets or addresses were found than a probe follows (`MAX_TARGETS`, `MAX_ADDRESSES`).
    pub truncated: bool,
    /// Addresses discovery found but did not probe, because default-configured peers refuse them (the
    /// public-federation view; always empty with `probe.allow_private_addresses`). In discovery order.
    pub refused: Vec<RefusedAddress>,
    /// The server name's own SRV records, looked up after a delegating well-known; `None` when not looked up.
    /// Boxed: most names do not delegate, and a stored report should not carry the room for it.
    pub shadowed_srv: Option<Box<ShadowedSrvReport>>,
}

impl DiscoveryReport {
    /// A report for a name whose discovery never started (used by tests and on-demand probes).
    #[must_use]
    pub fn empty(tls_name: &str) -> Self {
        Self {
            method: Method::None,
            well_known: WellKnownReport::skipped(),
            delegated_server: None,
            tls_name: tls_name.into(),
            host_header: tls_name.into(),
            targets: Vec::new(),
            steps: Timings::default(),
            truncated: false,
            refused: Vec::new(),
            shadowed_srv: None,
        }
    }
}

/// An address in a range that default-configured peers refuse (Synapse's `ip_range_blacklist`), left unprobed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedAddress {
    pub address: SocketAddr,
    /// The host this address was resolved from.
    pub target_host: SharedStr,
}

impl RefusedAddress {
    #[must_use]
    pub fn class(&self) -> AddressClass {
        AddressClass::of(self.address.ip())
    }

    #[must_use]
    pub fn family(&self) -> Family {
        Family::of(self.address.ip())
    }
}

/// One host that discovery resolved to addresses (the server name, the delegated name, or an SRV target).
#[derive(Clone, Debug)]
pub struct TargetReport {
    pub host: SharedStr,
    pub port: u16,
    /// Priority and weight when the target came from an SRV record.
    pub srv: Option<SrvInfo>,
    pub addresses: Vec<IpAddr>,
    /// True when the A/AAAA answer for this host went through a CNAME.
    pub via_cname: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SrvInfo {
    pub priority: u16,
    pub weight: u16,
}

/// The `.well-known/matrix/server` lookup and its outcome.
#[derive(Clone, Debug)]
pub struct WellKnownReport {
    pub outcome: WellKnownOutcome,
    /// The effective cache lifetime a homeserver would apply (see `well_known::cache_ttl`).
    pub cache_ttl: Option<Duration>,
    /// The URLs fetched, in order, with the HTTP status each answered (0 when no answer came).
    pub hops: Hops,
    /// What went wrong, in words, when the outcome is not `delegated`. Read it through
    /// [`WellKnownReport::error_text`]: a stored report drops the words an HTTP answer's status and URL say.
    pub error: Option<String>,
    /// The answer of every address of the hostname asked (in resolver order), the followed one included;
    /// empty when the step was skipped or the hostname gave no address to ask.
    pub per_address: Vec<WellKnownAddress>,
}

/// The well-known as one address of the hostname served it (SNI and `Host` the hostname).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WellKnownAddress {
    /// The address asked, at the well-known port (443).
    pub address: SocketAddr,
    pub outcome: WellKnownOutcome,
    /// The delegated server name when the outcome is `delegated`.
    pub m_server: Option<Box<str>>,
    /// What went wrong, in words, when the outcome is not `delegated`; `None` for the followed address, whose
    /// words are the report's own `error` (kept once: read both through [`WellKnownReport::address_error`]).
    pub error: Option<Box<str>>,
    /// Whether discovery followed this address's answer.
    pub followed: bool,
}

impl WellKnownReport {
    /// What went wrong, in words, when the outcome is not `delegated`: the words kept, or for an HTTP answer
    /// other than 200 whose words a stored report dropped (`schedule/compact.rs`), the same words again from the
    /// last hop: `HTTP <status> from <url>`.
    #[must_use]
    pub fn error_text(&self) -> Option<Cow<'_, str>> {
        match &self.error {
            Some(words) => Some(Cow::Borrowed(words)),
            None => self.http_error_words().map(Cow::Owned),
        }
    }

    /// `HTTP <status> from <url>` of the last hop, for an outcome an HTTP status decided (`not_found`,
    /// `http_error`): the words the fetch gives such an answer.
    #[must_use]
    pub fn http_error_words(&self) -> Option<String> {
        if !matches!(
            self.outcome,
            WellKnownOutcome::NotFound | WellKnownOutcome::HttpError
        ) {
            return None;
        }
        let (url, status) = self.hops.iter().last()?;
        (status != 0).then(|| format!("HTTP {status} from {url}"))
    }

    /// What went wrong at `a`, one of [`WellKnownReport::per_address`], in words: its own, or the report's for the
    /// followed address.
    #[must_use]
    pub fn address_error<'a>(&'a self, a: &'a WellKnownAddress) -> Option<Cow<'a, str>> {
        match &a.error {
            Some(words) => Some(Cow::Borrowed(words)),
            None if a.followed => self.error_text(),
            None => None,
        }
    }

    #[must_use]
    pub fn skipped() -> Self {
        Self {
            outcome: WellKnownOutcome::Skipped,
            cache_ttl: None,
            hops: Hops::default(),
            error: None,
            per_address: Vec::new(),
        }
    }

    /// Whether every address asked gave the same outcome and the same `m.server`; `None` when fewer than two
    /// addresses were asked (the step was skipped, or the name has a single address).
    #[must_use]
    pub fn consistent(&self) -> Option<bool> {
        let (first, rest) = self.per_address.split_first()?;
        if rest.is_empty() {
            return None;
        }
        Some(
            rest.iter()
                .all(|a| a.outcome == first.outcome && a.m_server == first.m_server),
        )
    }
}

/// One thing that is wrong, with a closed stage and reason, and a message for humans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub stage: Stage,
    pub reason: Reason,
    pub message: String,
}

impl Failure {
    pub fn new(stage: Stage, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            stage,
            reason,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}: {}",
            self.stage.as_str(),
            self.reason.as_str(),
            self.message
        )
    }
}
