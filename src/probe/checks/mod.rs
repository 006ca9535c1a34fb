//! The Matrix-level checks on a connection whose certificate was judged: the signing keys (canonical JSON,
//! ed25519 signatures, validity).

pub mod keys;
