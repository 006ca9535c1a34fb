//! The hermetic test world shared by integration tests: a test CA, fake DNS and fake HTTPS homeservers on loopback.
//!
//! Every integration test file includes this with `mod support;` and uses only part of it.
// Each integration test crate compiles this module and uses a different subset of it.
#![allow(dead_code, unused_imports)]

pub mod ca;
pub mod dns;
pub mod https;

pub use ca::{Leaf, TestCa, Validity, self_signed};
pub use dns::{FakeDns, SilentDns, Zone};
pub use https::{Behaviour, Bind, FakeServer, PortAnchor, Reply, Routes};
