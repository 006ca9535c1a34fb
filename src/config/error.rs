//! Errors of the configuration: [`ConfigError`], one line naming the file, the place in it and the reason, and
//! the YAML parser's errors made into that line.
//!
//! It does not decide what is wrong with a value (`config/raw.rs` does) and does not print (`main.rs` does).

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a config could not be loaded. Displays as one line: `FILE: WHERE: WHAT`, where `FILE` is present when
/// loading from a file and `WHERE` is a key path (`probe.timeouts.dns`, `servers[2]`) or a YAML position
/// (`line 3 column 5`).
#[derive(Debug)]
pub struct ConfigError {
    pub(super) file: Option<PathBuf>,
    pub(super) kind: ConfigErrorKind,
}

/// What went wrong, without the file name.
#[derive(Debug, thiserror::Error)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    /// YAML syntax, an unknown key or a value of the wrong type, as reported by the YAML parser.
    #[error("{}{message}", position_prefix(*.line, *.column))]
    Yaml {
        line: Option<u64>,
        column: Option<u64>,
        message: String,
    },
    /// A well-formed value that is not allowed, at a key path.
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    /// The config file, when loading from one.
    #[must_use]
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    #[must_use]
    pub fn kind(&self) -> &ConfigErrorKind {
        &self.kind
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_in_file(f, self.file.as_deref(), &self.kind)
    }
}

/// `FILE: ` (when loading from a file), then `what`: the one-line shape of [`ConfigError`] and of
/// `webconfig::WebConfigError`.
pub(crate) fn write_in_file(
    f: &mut fmt::Formatter<'_>,
    file: Option<&Path>,
    what: &dyn fmt::Display,
) -> fmt::Result {
    if let Some(file) = file {
        write!(f, "{}: ", file.display())?;
    }
    write!(f, "{what}")
}

impl std::error::Error for ConfigError {}

/// serde-saphyr's message, without its source snippet and location suffix, on one line; the location goes in
/// front as `line L column C: `.
pub(super) fn yaml_error(err: &serde_saphyr::Error) -> ConfigErrorKind {
    let (line, column, message) = yaml_parts(err);
    ConfigErrorKind::Yaml {
        line,
        column,
        message,
    }
}

/// A YAML error as its line, column and one-line message (shared by every YAML file the exporter reads).
pub(crate) fn yaml_parts(err: &serde_saphyr::Error) -> (Option<u64>, Option<u64>, String) {
    struct NoLocation;
    impl serde_saphyr::Localizer for NoLocation {
        fn attach_location<'a>(
            &self,
            base: std::borrow::Cow<'a, str>,
            _: serde_saphyr::Location,
        ) -> std::borrow::Cow<'a, str> {
            base
        }
    }
    let formatter = serde_saphyr::DefaultMessageFormatter.with_localizer(&NoLocation);
    let mut options = serde_saphyr::RenderOptions::new(&formatter);
    options.snippets = serde_saphyr::SnippetMode::Off;
    let message = err
        .render_with_options(options)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let location = err
        .location()
        .filter(|l| *l != serde_saphyr::Location::UNKNOWN);
    (
        location.map(|l| l.line()),
        location.map(|l| l.column()),
        message,
    )
}

/// `line L column C: ` (or less, as far as the position is known).
pub(crate) fn position_prefix(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!("line {line} column {column}: "),
        (Some(line), None) => format!("line {line}: "),
        _ => String::new(),
    }
}
