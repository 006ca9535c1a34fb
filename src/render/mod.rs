//! Reports as what people and programs read: Prometheus metrics, the federation tester's JSON, text for a shell
//! and HTML pages. Rendering is pure: nothing here does I/O.

pub mod html;
pub mod metrics;
pub mod prerendered;
pub mod tester;
pub mod text;
