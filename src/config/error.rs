//! The one shape of every error in a file the exporter is configured by (the config file, the web config file,
//! the target files): [`ConfigError`], one line naming the file, the place in it and the reason; and the YAML
//! parser's errors made into that shape.
//!
//! It does not decide what is wrong with a value (`config/raw.rs`, `config/targets.rs` and `serve/web/` do) and
//! does not print (`main.rs` does).

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a config file could not be used. Displays as one line, `FILE: PLACE: REASON`, where `FILE` is present
/// when the text came from a file and `PLACE` when the error has one: a key path (`probe.timeouts.dns`,
/// `servers[2]`, `tls_server_config.key_file`, `[0].targets[1]`) or a YAML position (`line 3 column 5`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    file: Option<PathBuf>,
    place: Place,
    reason: String,
}

/// Where in a file an error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Nowhere in particular: the file as a whole (it cannot be read, or it lacks something).
    None,
    /// A key path, such as `probe.timeouts.dns` or `servers[2]`.
    Key(String),
    /// A position given by the YAML parser (`line 3 column 5`).
    Yaml { line: u64, column: u64 },
}

impl ConfigError {
    /// An error at `place`, in no file yet (see [`ConfigError::in_file`]).
    pub fn new(place: Place, reason: impl Into<String>) -> Self {
        Self {
            file: None,
            place,
            reason: reason.into(),
        }
    }

    /// An error at the key path `key`.
    pub fn at(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::new(Place::Key(key.into()), reason)
    }

    /// The file could not be read.
    #[must_use]
    pub fn cannot_read(error: &std::io::Error) -> Self {
        Self::new(Place::None, format!("cannot read: {error}"))
    }

    /// A YAML syntax error, an unknown key or a value of the wrong type, as the YAML parser reports it: at its
    /// position, with its message on one line.
    #[must_use]
    pub fn yaml(error: &serde_saphyr::Error) -> Self {
        let (place, message) = yaml_parts(error);
        Self::new(place, message)
    }

    /// The same error, naming `file`.
    #[must_use]
    pub fn in_file(self, file: &Path) -> Self {
        Self {
            file: Some(file.to_owned()),
            ..self
        }
    }

    /// The file, when the text came from one.
    #[must_use]
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Where in the file.
    #[must_use]
    pub fn place(&self) -> &Place {
        &self.place
    }

    /// What is wrong, without the file and the place.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        match &self.place {
            Place::None => {}
            Place::Key(key) => write!(f, "{key}: ")?,
            Place::Yaml { line, column } => write!(f, "line {line} column {column}: ")?,
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// A YAML error as its position and serde-saphyr's message, without its source snippet and location suffix, on
/// one line. An unknown position is [`Place::None`].
pub(crate) fn yaml_parts(err: &serde_saphyr::Error) -> (Place, String) {
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
    let place = match err.location() {
        Some(l) if l != serde_saphyr::Location::UNKNOWN => Place::Yaml {
            line: l.line(),
            column: l.column(),
        },
        _ => Place::None,
    };
    (place, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_file_place_reason() {
        let file = Path::new("/etc/x.yml");
        let cases = [
            (ConfigError::new(Place::None, "empty"), "empty"),
            (ConfigError::at("a.b[2]", "bad"), "a.b[2]: bad"),
            (
                ConfigError::new(Place::Yaml { line: 3, column: 5 }, "oops"),
                "line 3 column 5: oops",
            ),
        ];
        for (error, want) in cases {
            assert_eq!(error.to_string(), want);
            assert!(error.file().is_none());
            let error = error.in_file(file);
            assert_eq!(error.to_string(), format!("/etc/x.yml: {want}"));
            assert_eq!(error.file(), Some(file));
        }
    }
}
