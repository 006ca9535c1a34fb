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
//! use matrix_federation_exporter::server_name::ServerName;
//!
//! let name = ServerName::parse("Example.org:8448").unwrap();
//! assert_eq!((name.hostname().as_str(), name.port()), ("Example.org", Some(8448)));
//! assert!(ServerName::parse("https://example.org").is_err());
//! ```

pub mod addresses;
mod auth_pool;
pub mod cert;
pub mod check;
pub mod client;
pub mod compact;
pub mod config;
pub mod daemon;
pub mod discovery;
pub mod dns;
pub mod env;
pub mod http;
pub mod keys;
pub mod limiter;
pub mod listener;
pub mod metrics;
pub mod prerendered;
pub mod probe;
pub mod report;
pub mod scheduler;
pub mod server_name;
pub mod shard;
pub mod status;
pub mod store;
pub mod streaming;
pub mod targets;
pub mod tester;
pub mod tls;
pub mod webconfig;
pub mod well_known;
