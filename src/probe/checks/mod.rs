//! The Matrix-level checks on a connection whose certificate was judged: the signing keys (ed25519 signatures
//! over Canonical JSON, validity). The version check is a plain GET in `probe/mod.rs`.

pub mod canonical_json;
pub mod keys;
