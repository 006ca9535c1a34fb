//! Plain data: what one probe of one server name found.
//!
//! A probe (see `probe/mod.rs`) produces a [`ServerReport`]; `/metrics`, the JSON API and the `check` CLI only
//! read it. Nothing here does I/O, and nothing here knows about Prometheus types. Every failure is a
//! [`Failure`] with a closed [`Stage`] and [`Reason`]; the free-text `message` is for humans (logs, JSON,
//! CLI) and never becomes a label value.

pub mod address_class;

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A name that one server's report holds in several places: the server name, and what discovery derived from
/// it, which is usually the same text (the certificate name, the `Host` header, the host each address came
/// from). Clones share one string (a reference count), so a report, the configuration and the scheduler hold
/// the name once however many fields carry it. Reads like a `&str`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedStr(Arc<str>);

impl SharedStr {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether both hold the very same string (not just equal text).
    #[must_use]
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl Default for SharedStr {
    fn default() -> Self {
        Self(Arc::from(""))
    }
}

impl std::ops::Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> Self {
        Self(Arc::from(s))
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> Self {
        Self(Arc::from(s))
    }
}

impl From<Arc<str>> for SharedStr {
    fn from(s: Arc<str>) -> Self {
        Self(s)
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<SharedStr> for &str {
    fn eq(&self, other: &SharedStr) -> bool {
        **self == *other.0
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        *self == *other.0
    }
}

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
    /// default-configured peers refuse it. When every address is refused, that is the `address_not_public`
    /// failure instead. The words for each (its message and fix) are in `render/explain.rs`.
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
        cnames.chain(refused)
    }
}

/// A finding that does not fail the probe: a closed [`Warning`] label and what it is about. Its message for
/// people is `render::explain::warning_message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerWarning {
    pub warning: Warning,
    /// The address it is about, `None` when it is about the server or a target host.
    pub address: Option<SocketAddr>,
    /// The host it is about: the SRV target, or the host the address was resolved from.
    pub host: SharedStr,
}

impl ServerReport {
    /// The report of a probe that was cut at its deadline.
    #[must_use]
    pub fn timed_out(server_name: &str, started_at: SystemTime, duration: Duration) -> Self {
        Self {
            server_name: server_name.into(),
            started_at,
            finished_at: started_at + duration,
            duration,
            discovery: DiscoveryReport::empty(server_name),
            addresses: Vec::new(),
            failures: vec![Failure::new(
                Stage::Discovery,
                Reason::Timeout,
                format!(
                    "the probe did not finish within {}",
                    humantime::format_duration(duration)
                ),
            )],
        }
    }
}

/// What discovery decided: the spec step taken, the names used, and the targets found.
#[derive(Clone, Debug)]
pub struct DiscoveryReport {
    pub method: Method,
    pub well_known: WellKnownReport,
    /// The `m.server` value when `.well-known` delegated, else `None`.
    pub delegated_server: Option<String>,
    /// The name the certificate must be valid for (an IP literal for IP hosts; never an SRV target).
    pub tls_name: SharedStr,
    /// The `Host` header federation requests carry.
    pub host_header: SharedStr,
    /// Every host discovery asked for addresses, with what it found.
    pub targets: Vec<TargetReport>,
    /// How long each discovery step took.
    pub steps: Vec<(Step, Duration)>,
    /// Set when more targets or addresses were found than a probe follows (`MAX_TARGETS`, `MAX_ADDRESSES`).
    pub truncated: bool,
    /// Addresses discovery found but did not probe, because default-configured peers refuse them (the
    /// public-federation view; always empty with `probe.allow_private_addresses`). In discovery order.
    pub refused: Vec<RefusedAddress>,
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
            steps: Vec::new(),
            truncated: false,
            refused: Vec::new(),
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
    pub hops: Vec<(String, u16)>,
    /// What went wrong, in words, when the outcome is not `delegated`.
    pub error: Option<String>,
}

impl WellKnownReport {
    #[must_use]
    pub fn skipped() -> Self {
        Self {
            outcome: WellKnownOutcome::Skipped,
            cache_ttl: None,
            hops: Vec::new(),
            error: None,
        }
    }
}

/// Everything learned about one `ip:port`.
#[derive(Clone, Debug)]
pub struct AddressReport {
    pub address: SocketAddr,
    /// The host this address was resolved from (an SRV target, the delegated name or the server name).
    pub target_host: SharedStr,
    /// Latency of each phase that ran.
    pub phases: Vec<(Phase, Duration)>,
    /// Negotiated TLS parameters, when the handshake completed.
    pub tls: Option<TlsFacts>,
    /// The presented chain and its verdict, when the handshake completed.
    pub certificate: Option<CertReport>,
    /// The key document, when `GET /_matrix/key/v2/server` answered JSON (the check may be off).
    pub keys: Option<KeysReport>,
    /// The server software, when `GET /_matrix/federation/v1/version` answered (the check may be off).
    pub version: Option<VersionReport>,
    /// Every failure of this address; empty when it passed.
    pub failures: Vec<Failure>,
}

impl AddressReport {
    /// The report of `address` before anything was checked.
    #[must_use]
    pub fn new(address: SocketAddr, target_host: SharedStr) -> Self {
        Self {
            address,
            target_host,
            phases: Vec::new(),
            tls: None,
            certificate: None,
            keys: None,
            version: None,
            failures: Vec::new(),
        }
    }

    #[must_use]
    pub fn success(&self) -> bool {
        self.failures.is_empty()
    }

    #[must_use]
    pub fn family(&self) -> Family {
        Family::of(self.address.ip())
    }

    /// The range the address falls in (see `report/address_class.rs`).
    #[must_use]
    pub fn class(&self) -> AddressClass {
        AddressClass::of(self.address.ip())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFacts {
    /// For example `TLSv1_3`.
    pub version: Cow<'static, str>,
    /// For example `TLS13_AES_256_GCM_SHA384`.
    pub cipher: Cow<'static, str>,
}

/// The certificate chain a server presented and how a federating peer would judge it.
#[derive(Clone, Debug)]
pub struct CertReport {
    /// The presented chain, leaf first. Certificates that did not parse are left out (and make it invalid).
    /// Shared: reports of servers with the same intermediate hold one copy of its facts.
    pub chain: Vec<Arc<CertFacts>>,
    /// Chain, name and validity-window failures (stage `certificate`); empty when the certificate is valid.
    pub failures: Vec<Failure>,
}

impl CertReport {
    #[must_use]
    pub fn valid(&self) -> bool {
        self.failures.is_empty() && !self.chain.is_empty()
    }

    /// The earliest `notAfter` in the presented chain.
    #[must_use]
    pub fn chain_not_after(&self) -> Option<i64> {
        self.chain.iter().map(|c| c.not_after).min()
    }
}

/// A `/_matrix/key/v2/server` document as one address served it, and how each key was judged (see `probe/checks/keys.rs`).
/// Its failures (stage `keys`) are in the address's `failures`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeysReport {
    /// The document's `server_name` (empty when missing).
    pub server_name: String,
    /// `valid_until_ts` in milliseconds since the epoch.
    pub valid_until_ts: Option<i64>,
    /// Every entry of `verify_keys`, with its checks.
    pub verify_keys: Vec<VerifyKey>,
    /// Every entry of `old_verify_keys`.
    pub old_verify_keys: Vec<OldVerifyKey>,
    /// Things that work today but deserve a look (`valid_until_ts` under 1 h or over 7 days away).
    pub warnings: Vec<String>,
    /// The document as served (the federation tester reports it as `Keys`).
    pub raw: String,
}

/// One current signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyKey {
    /// For example `ed25519:a_AbCd`.
    pub key_id: String,
    /// Unpadded base64, as served.
    pub key: String,
    /// An `ed25519` key that decodes to 32 bytes.
    pub valid_ed25519: bool,
    /// The server's signature by this key over the canonical document verifies.
    pub matching_signature: bool,
}

/// One former signing key (valid for events older than `expired_ts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OldVerifyKey {
    pub key_id: String,
    pub key: String,
    pub expired_ts: Option<i64>,
}

/// `GET /_matrix/federation/v1/version`: `{"server": {"name": ..., "version": ...}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionReport {
    pub name: Option<String>,
    pub version: Option<String>,
}

/// Facts read from one X.509 certificate (see `probe/connect/cert.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFacts {
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses from the subjectAltName extension.
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    /// Hex, colon separated.
    pub serial: String,
    /// The SHA-256 of the DER (shown as lower-case hex).
    pub fingerprint_sha256: Fingerprint,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

/// The SHA-256 of a certificate's DER, kept as its 32 bytes; `Display` writes 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Reads 64 hex digits (either case); `None` for anything else.
    #[must_use]
    pub fn from_hex(hex: &str) -> Option<Self> {
        let digits = hex.as_bytes();
        if digits.len() != 64 {
            return None;
        }
        let mut bytes = [0; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
            let text = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(text, 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
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

/// Declares a closed label enum with its label string, so every value is written once.
macro_rules! label_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $s:literal,)+ }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $variant,)+ }

        impl $name {
            /// Every value, in declaration order (for docs and tests).
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The label value.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s,)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

label_enum! {
    /// The discovery step that decided where to connect (the `method` label). Each variant quotes the Matrix
    /// spec v1.19, server-server API, "Resolving server names".
    Method {
        /// Step 1 (and 3.1): "If the hostname is an IP literal, then that IP address should be used, together
        /// with the given port number, or 8448 if no port is given."
        IpLiteral => "ip_literal",
        /// Step 2 (and 3.2): "If the hostname is not an IP literal, and the server name includes an explicit
        /// port, resolve the hostname to an IP address using CNAME, AAAA or A records."
        ExplicitPort => "explicit_port",
        /// Steps 3.3 and 4: "resolve the SRV record `_matrix-fed._tcp.<hostname>`".
        SrvMatrixFed => "srv_matrix_fed",
        /// Steps 3.4 and 5 (deprecated): "If the `_matrix-fed._tcp.<hostname>` SRV record was not found,
        /// resolve the (deprecated) SRV record `_matrix._tcp.<hostname>`".
        SrvMatrix => "srv_matrix",
        /// Steps 3.5 and 6: "If no SRV record is found, an IP address is resolved using CNAME, AAAA or A
        /// records. Requests are made to the resolved IP address and a port of 8448".
        DefaultPort => "default_port",
        /// Discovery failed before any address could be chosen.
        None => "none",
    }
}

label_enum! {
    /// The outcome of the `.well-known/matrix/server` lookup (the `well_known` label).
    WellKnownOutcome {
        /// A valid `m.server` was returned.
        Delegated => "delegated",
        /// Not consulted: the server name is an IP literal or has an explicit port.
        Skipped => "skipped",
        /// HTTP 404.
        NotFound => "not_found",
        /// Any other non-200 status, a malformed HTTP answer, or a redirect to a non-HTTPS URL.
        HttpError => "http_error",
        /// The body is not a JSON object with a string `m.server`.
        InvalidJson => "invalid_json",
        /// `m.server` does not match the server-name grammar.
        InvalidServerName => "invalid_server_name",
        /// A redirect loop, or more than 10 redirects.
        RedirectLoop => "redirect_loop",
        /// The body exceeded 50 KiB.
        TooLarge => "too_large",
        /// The lookup did not finish within `probe.timeouts.well_known`.
        Timeout => "timeout",
        /// No TCP connection to port 443 could be made.
        ConnectionFailed => "connection_failed",
        /// The TLS handshake or the certificate check failed.
        TlsError => "tls_error",
        /// The host of the well-known URL did not resolve.
        DnsError => "dns_error",
        /// Not fetched: every address of the well-known host is in a range default-configured peers refuse
        /// (Synapse's `ip_range_blacklist`; see the `class` label). Never with `probe.allow_private_addresses`.
        AddressNotPublic => "address_not_public",
    }
}

label_enum! {
    /// A timed discovery step (the `step` label of `resolution_duration_seconds`).
    Step {
        WellKnown => "well_known",
        Srv => "srv",
        AddressLookup => "address_lookup",
    }
}

label_enum! {
    /// A timed phase of one address (the `phase` label of `connection_duration_seconds`).
    Phase {
        Connect => "connect",
        TlsHandshake => "tls_handshake",
        /// `GET /_matrix/key/v2/server`, headers and body.
        Keys => "keys",
        /// `GET /_matrix/federation/v1/version`, headers and body.
        Version => "version",
    }
}

label_enum! {
    /// The address family (the `family` label).
    Family {
        Ipv4 => "ipv4",
        Ipv6 => "ipv6",
    }
}

impl Family {
    #[must_use]
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }
}

label_enum! {
    /// Where a failure happened (the `stage` label).
    Stage {
        Discovery => "discovery",
        Dns => "dns",
        Connect => "connect",
        Tls => "tls",
        Certificate => "certificate",
        Keys => "keys",
        Version => "version",
    }
}

label_enum! {
    /// Why it failed (the `reason` label). A closed set: every value is produced by a test and documented in
    /// METRICS.md.
    Reason {
        /// The name does not exist (NXDOMAIN) for A and AAAA.
        DnsNxdomain => "dns_nxdomain",
        /// The name exists but has neither A nor AAAA records.
        DnsNoRecords => "dns_no_records",
        /// SERVFAIL, REFUSED, a malformed answer or any other resolver error.
        DnsError => "dns_error",
        /// The DNS server did not answer within `probe.timeouts.dns`.
        DnsTimeout => "dns_timeout",
        /// An SRV record's target is `.` ("service decidedly not available") or not a valid host name.
        SrvTargetInvalid => "srv_target_invalid",
        /// TCP RST: nothing listens on that port.
        ConnectionRefused => "connection_refused",
        /// The TCP connect did not finish within `probe.timeouts.connect`.
        ConnectionTimeout => "connection_timeout",
        /// Any other connect error (no route, network unreachable, address not available).
        Unreachable => "unreachable",
        /// The TLS handshake failed (alert, protocol error, not TLS at all).
        TlsHandshakeFailed => "tls_handshake_failed",
        /// The TLS handshake did not finish within `probe.timeouts.tls_handshake`.
        TlsTimeout => "tls_timeout",
        /// The leaf's notAfter is in the past.
        CertExpired => "cert_expired",
        /// The leaf's notBefore is in the future.
        CertNotYetValid => "cert_not_yet_valid",
        /// The leaf is not valid for the name federation checks (the server name or the delegated name).
        CertHostnameMismatch => "cert_hostname_mismatch",
        /// The chain does not lead to a trusted root (self-signed, private CA, missing intermediate).
        CertUnknownIssuer => "cert_unknown_issuer",
        /// Any other certificate problem (unparseable, wrong key usage, unsupported algorithm, no certificate).
        CertInvalid => "cert_invalid",
        /// An HTTP request (keys, version) did not finish within `probe.timeouts.http`, or the whole probe
        /// outlived its deadline (the sum of its step timeouts) and was cut.
        Timeout => "timeout",
        /// An HTTP answer other than 200, or no valid HTTP answer at all.
        HttpStatus => "http_status",
        /// An HTTP body that is not JSON (often HTML from a proxy that routes `/_matrix` elsewhere).
        NotJson => "not_json",
        /// The key document's `server_name` is not the server name (exact, case-sensitive), or is missing.
        KeysServerNameMismatch => "keys_server_name_mismatch",
        /// An ed25519 verify key has no valid signature by the server over the canonical document.
        KeysBadSignature => "keys_bad_signature",
        /// The key document has no usable `ed25519` verify key (none, or not 32 bytes).
        KeysNoEd25519Key => "keys_no_ed25519_key",
        /// The key document's `valid_until_ts` is in the past, or missing.
        KeysExpired => "keys_expired",
        /// Every resolved address is in a range that default-configured peers refuse (Synapse's
        /// `ip_range_blacklist`: loopback, private, link-local, CGNAT, documentation, reserved, multicast,
        /// unspecified), so the server is unreachable for them; none was probed. Never reported with
        /// `probe.allow_private_addresses`.
        AddressNotPublic => "address_not_public",
    }
}

label_enum! {
    /// The range an address falls in (the `class` label). Every value but `public` is in Synapse's default
    /// `ip_range_blacklist`, which peers refuse to connect to; `report/address_class.rs` has the exact ranges.
    AddressClass {
        /// Outside every range below: peers connect to it.
        Public => "public",
        /// `127.0.0.0/8`, `::1`.
        Loopback => "loopback",
        /// RFC 1918 (`10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`), IPv6 ULA `fc00::/7` and the deprecated
        /// site-local `fec0::/10`.
        Private => "private",
        /// `169.254.0.0/16`, `fe80::/10`.
        LinkLocal => "link_local",
        /// Carrier-grade NAT, `100.64.0.0/10`.
        Cgnat => "cgnat",
        /// TEST-NET-1 to 3 (`192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`), `2001:db8::/32`.
        Documentation => "documentation",
        /// Other special-purpose IPv4 ranges Synapse refuses: `192.0.0.0/24` (IETF protocol assignments),
        /// `192.88.99.0/24` (former 6to4 relay anycast), `198.18.0.0/15` (benchmarking).
        Reserved => "reserved",
        /// `224.0.0.0/4`, `ff00::/8`.
        Multicast => "multicast",
        /// `0.0.0.0` and `::`.
        Unspecified => "unspecified",
    }
}

impl AddressClass {
    /// The class of `ip`; IPv4-mapped, IPv4-compatible and 6to4 IPv6 addresses take the class of the IPv4
    /// address they embed.
    #[must_use]
    pub fn of(ip: IpAddr) -> Self {
        address_class::classify(ip)
    }

    /// Whether peers with a default configuration connect to addresses of this class.
    #[must_use]
    pub const fn is_public(self) -> bool {
        matches!(self, AddressClass::Public)
    }
}

label_enum! {
    /// What a warning is about (the `warning` label). Warnings never fail a probe.
    Warning {
        /// Some, not all, resolved addresses are in ranges default-configured peers refuse (see `class`); they
        /// were not probed and peers use the others. One warning per such address.
        AddressNotPublic => "address_not_public",
        /// An SRV target resolved through a CNAME. The spec: "The target of an SRV record may not be a CNAME"
        /// (RFC 2782); most resolvers follow it anyway.
        SrvTargetCname => "srv_target_cname",
    }
}
