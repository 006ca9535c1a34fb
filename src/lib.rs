//! matrix-federation-exporter: is federation with a Matrix server working, and for how much longer?
//!
//! The data flows one way:
//!
//! ```text
//! config ─▶ Config ─▶ probe::env::ProbeEnv (resolver, TLS roots, ports, timeouts)
//! schedule::scheduler ─▶ probe::run_within(name, deadline, probe::probe_server(env, name))
//!     discovery (well_known ─▶ SRV ─▶ A/AAAA) ─▶ every address: connect ─▶ TLS ─▶ judge ─▶ checks
//!   ─▶ report::ServerReport (plain data) ─▶ schedule::store::Store of latest reports
//! render (metrics, tester JSON, text, HTML) ─▶ serve (listener, routes, daemon)
//! ```
//!
//! One folder per stage, imports one way (`serve` → `render` → `schedule` → `probe` → `config` → `report`).
//! Probe code never touches metric types; rendering never does I/O.
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
