//! matrix-federation-exporter: is federation with a Matrix server working, and for how much longer?
//!
//! The data flows one way:
//!
//! ```text
//! config ─▶ Config ─▶ ProbeEnv (resolver, TLS roots, ports, timeouts)
//! scheduler ─▶ probe::probe_server(env, name)
//!     discovery (well_known ─▶ SRV ─▶ A/AAAA) ─▶ every address: connect ─▶ TLS ─▶ certificate verdict
//!   ─▶ report::ServerReport (plain data) ─▶ store::Store of latest reports
//! GET /metrics ─▶ metrics renders the store
//! ```
//!
//! Probe code never touches metric types; the metrics code never does I/O.
//!
//! Server names are parsed once, by the spec grammar, and keep their case:
//!
//! ```
//! use matrix_federation_exporter::config::server_name::ServerName;
//!
//! let name = ServerName::parse("Example.org:8448").unwrap();
//! assert_eq!((name.hostname().as_str(), name.port()), ("Example.org", Some(8448)));
//! assert!(ServerName::parse("https://example.org").is_err());
//! ```

pub mod config;
pub mod probe;
pub mod render;
pub mod report;
pub mod schedule;
pub mod serve;
