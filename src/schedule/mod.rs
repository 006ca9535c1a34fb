//! Probing on a schedule and keeping the latest report of each configured server.

pub mod compact;
pub mod homeservers;
pub mod notaries;
pub mod scheduler;
pub mod store;
