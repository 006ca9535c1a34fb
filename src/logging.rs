//! Logging to stderr as logfmt (our own formatter: `ts=… level=… target=… msg="…" key=value…`, the line a test
//! pins) or JSON (tracing-subscriber's), with our crate at the chosen level and every dependency at `warn` or
//! quieter.

use anyhow::Context as _;
use clap::ValueEnum;
use std::fmt::{self, Write as _};
use std::time::SystemTime;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum LogFormat {
    Logfmt,
    Json,
}

/// Logs to stderr: our crate at `level`, everything else (hickory, rustls, hyper) at `warn` or quieter.
pub(crate) fn init_logging(level: LogLevel, format: LogFormat) -> anyhow::Result<()> {
    let level = match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
    };
    let filter = Targets::new()
        .with_default(level.min(LevelFilter::WARN))
        .with_target(env!("CARGO_CRATE_NAME"), level);
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Logfmt => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(Logfmt)
                    .fmt_fields(LogfmtFields)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    result.context("cannot set up logging")
}

/// Events as logfmt: `ts=… level=… target=… msg="…" key=value…`, span fields before event fields.
pub(crate) struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = LogfmtVisitor::default();
        event.record(&mut fields);

        let mut line = String::new();
        let _ = write!(
            line,
            "ts={}",
            humantime::format_rfc3339_millis(SystemTime::now())
        );
        push_pair(&mut line, "level", level_name(*meta.level()));
        push_pair(&mut line, "target", meta.target());
        push_pair(&mut line, "msg", fields.message.as_deref().unwrap_or(""));
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(formatted) = ext.get::<FormattedFields<N>>()
                    && !formatted.fields.is_empty()
                {
                    line.push(' ');
                    line.push_str(&formatted.fields);
                }
            }
        }
        if !fields.pairs.is_empty() {
            line.push(' ');
            line.push_str(&fields.pairs);
        }
        writeln!(writer, "{line}")
    }
}

/// Span fields as logfmt pairs, so `Logfmt` can print them as they are.
pub(crate) struct LogfmtFields;

impl<'writer> FormatFields<'writer> for LogfmtFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = LogfmtVisitor::default();
        fields.record(&mut visitor);
        if let Some(message) = &visitor.message {
            push_pair(&mut visitor.pairs, "message", message);
        }
        writer.write_str(visitor.pairs.trim_start())
    }
}

/// Collects `message` separately and every other field as `key=value` pairs.
#[derive(Default)]
struct LogfmtVisitor {
    message: Option<String>,
    pairs: String,
}

impl Visit for LogfmtVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            push_pair(&mut self.pairs, field.name(), value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The whole cause chain, as `{:#}` prints it for anyhow.
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(err) = source {
            let _ = write!(text, ": {err}");
            source = err.source();
        }
        self.record_str(field, &text);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// Appends ` key=value` (no leading space on an empty line), quoting the value when it is empty or holds a space,
/// `=`, `"`, `\` or a control character; inside quotes `"` and `\` are backslash-escaped and control characters
/// written as `\n`, `\r`, `\t` or `\u{…}`.
pub(crate) fn push_pair(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(key);
    out.push('=');
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| matches!(c, ' ' | '=' | '"' | '\\') || c.is_control());
    if !needs_quotes {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
