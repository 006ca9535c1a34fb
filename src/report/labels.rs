//! The closed label enums: every value a `stage`, `reason`, `method`, `phase`, `family`, `step`, `class` or
//! `warning` label can take, each written once with its label string. Plain data; error text never becomes a
//! label.

use std::fmt;
use std::net::IpAddr;

use super::address_class;

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
        /// Client discovery (`/.well-known/matrix/client`, then `/_matrix/client/versions`); never changes
        /// `probe_success`.
        Client => "client",
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
        /// (stage `client`) The client well-known is JSON but not what the spec asks for: no
        /// `m.homeserver.base_url`, a `base_url` that is not an HTTPS URL, or an `m.identity_server` without a
        /// valid `base_url`.
        ClientWellKnownInvalid => "client_well_known_invalid",
        /// (stage `client`) `/_matrix/client/versions` answered 200, but not `{"versions": [...]}` with at least
        /// one string.
        ClientVersionsInvalid => "client_versions_invalid",
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
        /// The client well-known answered 200 without `Access-Control-Allow-Origin: *`. The spec: "Servers
        /// hosting the `.well-known` JSON file SHOULD offer CORS headers"; web clients cannot read it otherwise.
        ClientWellKnownNoCors => "client_well_known_no_cors",
        /// The addresses of the server name answer `/.well-known/matrix/server` differently (another outcome
        /// or another `m.server`): peers find the server or not depending on the address their resolver picks.
        WellKnownInconsistent => "well_known_inconsistent",
        /// A verify key of this server left `verify_keys` without an `old_verify_keys` entry in the last 7 days
        /// (address `""`). One warning per key id, while its `dropped` row lives.
        SigningKeyDropped => "signing_key_dropped",
        /// A key id of this server was served with a different public key in the last 7 days (address `""`).
        SigningKeyReplaced => "signing_key_replaced",
        /// The well-known delegates, so peers never read the server name's own SRV records, and one of them points
        /// at a `host:port` the delegation does not lead to (older software and people reading DNS go there).
        SrvShadowedElsewhere => "srv_shadowed_elsewhere",
        /// `/.well-known/matrix/support` is there but not a valid document (`invalid`, `invalid_json`,
        /// `too_large`).
        SupportInvalid => "support_invalid",
        /// A `local_certificates` file is missing, unreadable, over 1 MiB or holds no certificate (address `""`).
        LocalCertUnreadable => "local_cert_unreadable",
        /// An address serves an older certificate than a `local_certificates` file holds for the same name, and
        /// the file changed more than `reload_grace` ago: the server or its proxy was not reloaded.
        CertNotReloaded => "cert_not_reloaded",
    }
}

label_enum! {
    /// What the spec's client discovery tells a client to do (the `outcome` label of
    /// `client_discovery_info`). Client-server API, "Server Discovery", "Well-known URIs"; the words are the
    /// spec's (`SUCCESS` is matrix-js-sdk's `AutoDiscoveryAction`).
    ClientOutcome {
        /// The well-known named a homeserver base URL and `/_matrix/client/versions` there answered as the spec
        /// says.
        Success => "success",
        /// "If the returned status code is 404, then `IGNORE`": "Stop the current auto-discovery mechanism. If
        /// no more auto-discovery mechanisms are available, then the client may use other methods of determining
        /// the required parameters". Clients fall back to `https://<server_name>`, which is then checked
        /// (`result` says whether it works).
        Ignore => "ignore",
        /// "Inform the user that auto-discovery failed due to invalid/empty data and `PROMPT` for the
        /// parameter."
        FailPrompt => "fail_prompt",
        /// "Inform the user that auto-discovery did not return any usable URLs. Do not continue further with the
        /// current login process. At this point, valid data was obtained, but no server is available to serve
        /// the client. No further guess should be attempted and the user should make a conscientious decision
        /// what to do next."
        FailError => "fail_error",
    }
}

label_enum! {
    /// Which step of client discovery decided, and why (the `result` label of `client_discovery_info`). With
    /// `outcome="ignore"`, a `versions_*` result means the fallback base URL `https://<server_name>` failed.
    ClientResult {
        /// The base URL answered `/_matrix/client/versions` as the spec says.
        Ok => "ok",
        /// The well-known answered 404 (`IGNORE`) and the fallback base URL works.
        NotFound => "not_found",
        /// The well-known gave no HTTP answer: DNS, connection, timeout, a redirect loop or a malformed answer.
        WellKnownUnreachable => "well_known_unreachable",
        /// The well-known's TLS handshake failed, or its certificate is not valid for the host.
        WellKnownTlsError => "well_known_tls_error",
        /// "If the returned status code is not 200 [...] then `FAIL_PROMPT`."
        WellKnownHttpStatus => "well_known_http_status",
        /// "[...] or the response body is empty, then `FAIL_PROMPT`."
        WellKnownEmpty => "well_known_empty",
        /// "If the content cannot be parsed, then `FAIL_PROMPT`" (not a JSON object).
        WellKnownNotJson => "well_known_not_json",
        /// The body exceeded 50 KiB (the server well-known's cap): not read, as a client could not parse it.
        WellKnownTooLarge => "well_known_too_large",
        /// "Extract the `base_url` value from the `m.homeserver` property. [...] If this value is not provided,
        /// then `FAIL_PROMPT`."
        NoBaseUrl => "no_base_url",
        /// "If the `m.identity_server` property is present, but does not have a `base_url` value, then
        /// `FAIL_PROMPT`."
        IdentityServerNoBaseUrl => "identity_server_no_base_url",
        /// "Parse it as a URL. If it is not a URL, then `FAIL_ERROR`."
        InvalidBaseUrl => "invalid_base_url",
        /// The base URL is `http://`: the exporter asks nothing over plain HTTP, and web clients served over
        /// HTTPS cannot use it. matrix-js-sdk accepts it.
        InsecureBaseUrl => "insecure_base_url",
        /// The identity server's `base_url` is not an HTTP(S) URL ("Validation for this URL is done as in the
        /// step above").
        InvalidIdentityServerUrl => "invalid_identity_server_url",
        /// `/_matrix/client/versions` gave no HTTP answer (DNS, connection, timeout, redirect loop).
        VersionsUnreachable => "versions_unreachable",
        /// `/_matrix/client/versions`: TLS handshake failed, or a certificate not valid for the base URL's host.
        VersionsTlsError => "versions_tls_error",
        /// `/_matrix/client/versions` answered other than 200 ("ensuring that it does not return an error").
        VersionsHttpStatus => "versions_http_status",
        /// `/_matrix/client/versions` answered 200 with something else than `{"versions": [...]}` ("parsing and
        /// validating that the data conforms with the expected response format").
        VersionsInvalid => "versions_invalid",
    }
}

label_enum! {
    /// How a scheduled server's verify keys changed between two probes (the `change` label of
    /// `signing_key_change_timestamp_seconds`; see `report/key_history.rs`).
    KeyChangeKind {
        /// A key id that was not served in the last 7 days appeared in `verify_keys`.
        Added => "added",
        /// A key left `verify_keys` and is listed in `old_verify_keys`: the spec's way to say "I used this key
        /// until then", so peers can still verify the events it signed.
        Retired => "retired",
        /// A key left `verify_keys` and is not in `old_verify_keys`: peers that had not cached it can no longer
        /// verify the events it signed.
        Dropped => "dropped",
        /// A key id is served with a different public key: peers that cached the old key reject what the new one
        /// signs until their cached copy expires.
        Replaced => "replaced",
    }
}

impl KeyChangeKind {
    /// Whether peers suffer from it (`dropped`, `replaced`): these rows are warnings.
    #[must_use]
    pub const fn is_fault(self) -> bool {
        matches!(self, KeyChangeKind::Dropped | KeyChangeKind::Replaced)
    }
}

label_enum! {
    /// Which SRV name of the server name a shadowed record is (the `srv_record` label of `shadowed_srv_info`).
    SrvRecordName {
        /// `_matrix-fed._tcp.<server_name>`.
        MatrixFed => "_matrix-fed._tcp",
        /// `_matrix._tcp.<server_name>` (deprecated in the spec).
        Matrix => "_matrix._tcp",
    }
}

label_enum! {
    /// The outcome of `GET /.well-known/matrix/support` (the `result` label of `support_info`; defined for that
    /// metric alone).
    SupportResult {
        /// A document as the spec asks: `contacts` with at least one entry, each with a `role` and an
        /// `email_address` or `matrix_id`, and/or a `support_page`.
        Ok => "ok",
        /// HTTP 404 (the document is optional in the spec).
        NotFound => "not_found",
        /// JSON, but not such a document.
        Invalid => "invalid",
        /// Not JSON.
        InvalidJson => "invalid_json",
        /// The body exceeded 50 KiB.
        TooLarge => "too_large",
        /// Connection, TLS, timeout, redirect loop, or any other status.
        Error => "error",
    }
}

label_enum! {
    /// The role of a support contact (the `contact_role` label of `support_contacts`).
    ContactRole {
        Admin => "m.role.admin",
        Security => "m.role.security",
        /// Any role outside the spec's two (MSC4265's `m.role.dpo`, say).
        Other => "other",
    }
}

impl ContactRole {
    /// The label of the role `role` as a document writes it.
    #[must_use]
    pub fn of(role: &str) -> Self {
        match role {
            "m.role.admin" => ContactRole::Admin,
            "m.role.security" => ContactRole::Security,
            _ => ContactRole::Other,
        }
    }
}

label_enum! {
    /// A homeserver's view of one destination joined with our probe of it (the `verdict` label of
    /// `destination_verdict`). "Synapse fails" means the admin API's `failure_ts` is not null: a run of failures
    /// began and no success has reset it since.
    Verdict {
        /// Synapse is not failing and our probe passes.
        Ok => "ok",
        /// Synapse fails and so does our probe: the remote is broken.
        Them => "them",
        /// Synapse fails but our probe passes: look at the homeserver's own outbound path, its IP blocklist, or
        /// whether the remote blocks it.
        Us => "us",
        /// Synapse is not failing but our probe is: a fault Synapse has not hit yet.
        UnseenFault => "unseen_fault",
    }
}

impl Verdict {
    /// Joins "Synapse fails" (`failure_ts` not null) with our latest probe's success.
    #[must_use]
    pub const fn of(synapse_fails: bool, probe_success: bool) -> Self {
        match (synapse_fails, probe_success) {
            (false, true) => Verdict::Ok,
            (true, false) => Verdict::Them,
            (true, true) => Verdict::Us,
            (false, false) => Verdict::UnseenFault,
        }
    }
}

label_enum! {
    /// What a notary serves for one server, against the keys the server serves directly (the `result` label of
    /// `notary_result_info`).
    NotaryResult {
        /// The notary returned, correctly signed, every verify key the server serves directly now.
        Match => "match",
        /// The notary returned correctly signed keys, but not the ones the server serves directly now (a key
        /// rotated after the notary cached it, or the server serves none now).
        Stale => "stale",
        /// The notary returned nothing for the server: it cannot reach or verify it.
        NoKeys => "no_keys",
        /// The notary returned keys without the origin's valid self-signature or without the notary's valid
        /// signature.
        BadSignature => "bad_signature",
        /// The query did not give a usable answer (the notary is down, timed out, answered an error or too much).
        RequestFailed => "request_failed",
    }
}
