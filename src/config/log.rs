//! `[log]`: how much the gateway logs, and in which format.

use std::path::PathBuf;

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
    /// Where access lines go: this file (appended), or stderr with the
    /// diagnostic log when unset.
    pub access_file: Option<PathBuf>,
    /// Access lines that may wait for the writer; more are dropped and
    /// counted.
    pub access_queue: usize,
}

/// `[log] access_queue` unless set: at 30,000 requests a second, a quarter
/// of a second of lines (the writer takes them every 10 ms), and 8192
/// slots of 32 bytes preallocated (256 KiB).
pub const DEFAULT_ACCESS_QUEUE: usize = 8192;
/// Its upper bound: a million lines of about 200 bytes is 200 MB waiting.
const MAX_ACCESS_QUEUE: usize = 1 << 20;

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
    access_file: Option<String>,
    access_queue: Option<i64>,
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
    let access_queue = match l.access_queue {
        None => DEFAULT_ACCESS_QUEUE,
        Some(n) if (1..=MAX_ACCESS_QUEUE as i64).contains(&n) => n as usize,
        Some(n) => {
            v.problem(
                "log.access_queue",
                format!("expected a number of lines from 1 to {MAX_ACCESS_QUEUE}, found {n} (default {DEFAULT_ACCESS_QUEUE})"),
            );
            DEFAULT_ACCESS_QUEUE
        }
    };
    let access_file = match l.access_file.as_deref() {
        Some("") => {
            v.problem(
                "log.access_file",
                "expected a file path; leave the key out to log to stderr",
            );
            None
        }
        Some(p) => Some(v.path(p)),
        None => None,
    };
    Log {
        level,
        format: l.format.unwrap_or(LogFormat::Text),
        access: l.access.unwrap_or(true),
        access_file,
        access_queue,
    }
}
