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
