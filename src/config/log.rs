//! `[log]`: how much the gateway logs, and in which format.

use serde::Deserialize;

use super::validate::Validator;

/// `[log]`
#[derive(Debug, Clone)]
pub struct Log {
    /// A `tracing_subscriber::EnvFilter` directive, e.g. `info`.
    pub level: String,
    pub format: LogFormat,
    /// One access event per request (at info level).
    pub access: bool,
}

/// Access and diagnostic log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[log]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogSection {
    level: Option<String>,
    format: Option<LogFormat>,
    access: Option<bool>,
}

/// Reads and checks `[log]`.
pub(super) fn read(v: &mut Validator<'_>, top: &toml::Table) -> Log {
    let l: LogSection = v.section(top, "log");
    let level = l.level.unwrap_or_else(|| "info".into());
    // Parsed here with the parser main.rs uses, so a bad filter fails
    // `check` instead of being ignored at start.
    if tracing_subscriber::EnvFilter::builder()
        .parse(&level)
        .is_err()
    {
        v.problem(
            "log.level",
            format!("expected a level (error, warn, info, debug, trace) or a filter such as \"info,applegate=debug\", found {level:?}"),
        );
    }
    Log {
        level,
        format: l.format.unwrap_or(LogFormat::Text),
        access: l.access.unwrap_or(true),
    }
}
