//! `promtool`, for the test binaries that run it without the rest of the hermetic world (`deploy.rs`,
//! `properties.rs`, `alerts_observer.rs` include only this file: `#[path = "support/promtool.rs"] mod promtool;`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `promtool` from PATH, installed with Debian's prometheus package by `tests/tools/install-prometheus.sh` when
/// missing (as `tests/promql.rs` does): never skipped.
pub fn promtool() -> PathBuf {
    let find = || {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join("promtool"))
            .find(|p| p.is_file())
    };
    if let Some(found) = find() {
        return found;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/install-prometheus.sh");
    let status = Command::new("bash").arg(&script).status();
    find().unwrap_or_else(|| {
        panic!(
            "promtool is needed and not on PATH; {} ran with {status:?}. Install Debian's prometheus package.",
            script.display()
        )
    })
}
