//! matrix-federation-exporter: is federation with a Matrix server working, and for how much longer?
//!
//! The data flows one way:
//!
//! ```text
//! config ─▶ Config ─▶ ProbeEnv (resolver, TLS roots, ports, timeouts)
//! scheduler ─▶ probe::probe_server(env, name)
//!     discovery (well_known ─▶ SRV ─▶ A/AAAA) ─▶ every address: connect ─▶ TLS ─▶ certificate verdict
//!   ─▶ report::ServerReport (plain data) ─▶ store of latest reports
//! GET /metrics ─▶ metrics::Collector renders the store
//! ```
//!
//! Probe code never touches metric types; the metrics code never does I/O.

pub mod config;
pub mod report;
pub mod server_name;
