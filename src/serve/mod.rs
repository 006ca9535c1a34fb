//! The daemon: wiring, the HTTP listener and its limits, the routes, and the web config (TLS, basic auth).

pub mod daemon;
pub mod homeservers;
pub mod limiter;
pub mod listener;
pub mod routes;
pub mod scrape;
pub mod streaming;
mod triggers;
pub mod web;
