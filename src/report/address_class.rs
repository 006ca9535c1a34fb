//! Which addresses federating peers refuse to connect to.
//!
//! Synapse refuses outbound federation (and `.well-known`) connections to every address in its
//! `ip_range_blacklist`, which defaults to `DEFAULT_IP_RANGE_BLOCKLIST` (`synapse/config/server.py`) plus
//! `0.0.0.0` and `::`. For every IPv4 range it also refuses the IPv4-compatible (`::a.b.c.d`), IPv4-mapped
//! (`::ffff:a.b.c.d`) and 6to4 (`2002:aabb:ccdd::/48`) forms (`generate_ip_set`). [`classify`] names the range
//! an address falls in; every class but [`AddressClass::Public`] is exactly that default set:
//!
//! | class | IPv4 | IPv6 |
//! |---|---|---|
//! | `loopback` | `127.0.0.0/8` | `::1/128` |
//! | `private` | `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16` | `fc00::/7` (ULA), `fec0::/10` (deprecated site-local) |
//! | `link_local` | `169.254.0.0/16` | `fe80::/10` |
//! | `cgnat` | `100.64.0.0/10` | |
//! | `documentation` | `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24` | `2001:db8::/32` |
//! | `reserved` | `192.0.0.0/24` (IETF protocol assignments), `192.88.99.0/24` (former 6to4 relay), `198.18.0.0/15` (benchmarking) | |
//! | `multicast` | `224.0.0.0/4` | `ff00::/8` |
//! | `unspecified` | `0.0.0.0/32` | `::/128` |
//!
//! An IPv4-mapped, IPv4-compatible or 6to4 IPv6 address has the class of the IPv4 address it embeds. Anything
//! else is `public`, including ranges that are special but not in Synapse's default list (`240.0.0.0/4`,
//! the rest of `0.0.0.0/8`, `64:ff9b::/96`): a default-configured Synapse tries those. This module does no I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::report::AddressClass;

/// The class of `ip` (see the module documentation for the ranges).
#[must_use]
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Whether a default-configured Synapse refuses to connect to `ip`.
#[must_use]
pub fn refused_by_default(ip: IpAddr) -> bool {
    classify(ip) != AddressClass::Public
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        _ if ip.is_unspecified() => AddressClass::Unspecified,
        (127, _, _) => AddressClass::Loopback,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => AddressClass::Private,
        (169, 254, _) => AddressClass::LinkLocal,
        (100, 64..=127, _) => AddressClass::Cgnat,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => AddressClass::Documentation,
        (192, 0, 0) | (192, 88, 99) | (198, 18..=19, _) => AddressClass::Reserved,
        (224..=239, _, _) => AddressClass::Multicast,
        _ => AddressClass::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let s = ip.segments();
    if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if s[0] & 0xff00 == 0xff00 {
        AddressClass::Multicast
    } else if s[0] & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if s[0] & 0xffc0 == 0xfec0 || s[0] & 0xfe00 == 0xfc00 {
        AddressClass::Private
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        AddressClass::Documentation
    } else if let Some(v4) = embedded_v4(ip) {
        classify_v4(v4)
    } else {
        AddressClass::Public
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:0:0/96`), IPv4-compatible (`::/96`) or 6to4 (`2002::/16`)
/// address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0 | 0xffff, hi, lo] | [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ip: &str) -> AddressClass {
        classify(ip.parse().unwrap())
    }

    #[test]
    fn every_range_of_synapses_default_blocklist_has_its_class() {
        use AddressClass::*;
        // The first and last address of each range, and the first address past it.
        let cases: &[(&str, AddressClass)] = &[
            ("0.0.0.0", Unspecified),
            ("0.0.0.1", Public),
            ("::", Unspecified),
            ("126.255.255.255", Public),
            ("127.0.0.0", Loopback),
            ("127.255.255.255", Loopback),
            ("::1", Loopback),
            ("9.255.255.255", Public),
            ("10.0.0.0", Private),
            ("10.255.255.255", Private),
            ("11.0.0.0", Public),
            ("172.15.255.255", Public),
            ("172.16.0.0", Private),
            ("172.31.255.255", Private),
            ("172.32.0.0", Public),
            ("192.168.0.0", Private),
            ("192.168.255.255", Private),
            ("192.169.0.0", Public),
            ("fc00::", Private),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Private),
            ("fe00::", Public),
            ("fec0::", Private),
            ("feff:ffff::", Private),
            ("100.63.255.255", Public),
            ("100.64.0.0", Cgnat),
            ("100.127.255.255", Cgnat),
            ("100.128.0.0", Public),
            ("192.0.0.0", Reserved),
            ("192.0.0.255", Reserved),
            ("192.0.1.0", Public),
            ("169.254.0.0", LinkLocal),
            ("169.254.255.255", LinkLocal),
            ("169.255.0.0", Public),
            ("fe80::", LinkLocal),
            ("febf:ffff::", LinkLocal),
            ("192.88.99.0", Reserved),
            ("192.88.99.255", Reserved),
            ("192.88.100.0", Public),
            ("198.17.255.255", Public),
            ("198.18.0.0", Reserved),
            ("198.19.255.255", Reserved),
            ("198.20.0.0", Public),
            ("192.0.2.0", Documentation),
            ("192.0.2.255", Documentation),
            ("192.0.3.0", Public),
            ("198.51.100.1", Documentation),
            ("198.51.101.0", Public),
            ("203.0.113.255", Documentation),
            ("203.0.114.0", Public),
            ("2001:db8::", Documentation),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", Documentation),
            ("2001:db9::", Public),
            ("223.255.255.255", Public),
            ("224.0.0.0", Multicast),
            ("239.255.255.255", Multicast),
            ("240.0.0.0", Public),
            ("255.255.255.255", Public),
            ("ff00::", Multicast),
            ("ff02::1", Multicast),
            ("8.8.8.8", Public),
            ("2001:4860:4860::8888", Public),
            ("64:ff9b::a00:1", Public),
        ];
        for (ip, want) in cases {
            assert_eq!(class(ip), *want, "{ip}");
            assert_eq!(
                refused_by_default(ip.parse().unwrap()),
                *want != Public,
                "{ip}"
            );
        }
    }

    #[test]
    fn ipv4_embedded_in_ipv6_has_the_ipv4_class() {
        use AddressClass::*;
        let cases: &[(&str, AddressClass)] = &[
            // IPv4-mapped.
            ("::ffff:10.1.2.3", Private),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:0.0.0.0", Unspecified),
            ("::ffff:100.64.0.1", Cgnat),
            ("::ffff:8.8.8.8", Public),
            // IPv4-compatible (deprecated, still in Synapse's set).
            ("::192.168.1.1", Private),
            ("::169.254.1.1", LinkLocal),
            ("::8.8.8.8", Public),
            // 6to4: 2002:AABB:CCDD::/48 embeds AA.BB.CC.DD.
            ("2002:0a00:0001::1", Private),
            ("2002:c000:0201::", Documentation),
            ("2002:c612:0001:ffff::1", Reserved),
            ("2002:e000::1", Multicast),
            ("2002:0808:0808::1", Public),
        ];
        for (ip, want) in cases {
            assert_eq!(class(ip), *want, "{ip}");
        }
    }

    #[test]
    fn every_class_is_produced() {
        let samples = [
            "8.8.8.8",
            "127.0.0.1",
            "10.0.0.1",
            "fe80::1",
            "100.64.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "ff02::1",
            "::",
        ];
        let mut seen: Vec<AddressClass> = samples.iter().map(|ip| class(ip)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, AddressClass::ALL);
    }
}
