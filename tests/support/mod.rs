//! The hermetic test world shared by integration tests: a test CA, fake DNS and fake HTTPS homeservers on loopback.
//!
//! Every integration test file includes this with `mod support;` and uses only part of it.
// Each integration test crate compiles this module and uses a different subset of it.
#![allow(dead_code, unused_imports)]

pub mod admin_api;
pub mod binary;
pub mod ca;
pub mod dns;
pub mod evil;
pub mod https;
pub mod keys;
pub mod metrics_fixture;
pub mod notary;
pub mod reports;
pub mod router;
pub mod synapse;
pub mod tester_shape;
pub mod world;

pub use ca::{Leaf, TestCa, Validity, self_signed};
pub use dns::{FakeDns, SilentDns, Zone};
pub use https::{Behaviour, Bind, FakeServer, PortAnchor, Reply, Routes};
pub use keys::{
    SigningKey, key_document, matrix_routes, matrix_routes_with_keys, now_ms, sign_json,
};
pub use world::World;

/// Probe timeouts for tests: short enough that hang scenarios end quickly, long enough for a loaded CI machine.
pub const TIMEOUTS: matrix_federation_exporter::config::Timeouts =
    matrix_federation_exporter::config::Timeouts {
        dns: std::time::Duration::from_secs(2),
        connect: std::time::Duration::from_secs(2),
        tls_handshake: std::time::Duration::from_secs(2),
        well_known: std::time::Duration::from_secs(3),
        http: std::time::Duration::from_secs(2),
    };
