//! Reports as what people and programs read: Prometheus metrics, the federation tester's JSON, text for a shell
//! and HTML pages, with the words that explain a report (`explain`) and its numbers and dates (`format`) shared
//! between them. Rendering is pure: nothing here does I/O.

pub mod client_words;
pub mod explain;
pub mod faq;
#[cfg(test)]
mod fixtures;
pub mod format;
pub mod history;
pub mod html;
pub mod metrics;
pub mod notary;
pub mod prerendered;
pub mod tester;
pub mod text;
