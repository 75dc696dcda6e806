//! The access log: one line per request, off the request's path.
//!
//! A request's task formats its line into one buffer ([`line`]: integers
//! by `itoa`, strings copied, no `tracing` machinery) and hands it to a
//! thread of its own ([`writer`]) through a bounded queue. When the queue
//! is full the line is dropped and counted
//! (`applegate_access_log_dropped_total`, and a report in the diagnostic
//! log), never waited for: a slow disk or a stalled pipe must not stall
//! the proxy. The writer writes lines in batches, as soon as the queue is
//! empty, and everything queued at shutdown ([`AccessLog::finish`]).
//!
//! The queue is `std::sync::mpsc::sync_channel`: bounded, `try_send`
//! never blocks, and since Rust 1.67 it is crossbeam-channel's array queue
//! (a slot per line, preallocated, no lock), so crossbeam itself would add
//! a dependency and nothing else.
//!
//! A leaf: it imports nothing of the crate; `server` builds it from
//! `[log]` and hands the counter in.

pub mod line;
mod writer;

use std::path::Path;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime};

use prometheus::IntCounter;

pub use line::{Entry, Format};
use writer::{Msg, Sink, Writer};

/// The sending side of the access log, held by the proxy (cheap to clone).
#[derive(Clone)]
pub struct AccessLog {
    queue: SyncSender<Msg>,
    format: Format,
    dropped: IntCounter,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl AccessLog {
    /// Starts the writer thread: lines in `format` to `file` (appended,
    /// created if missing) or, without one, to stderr; at most `capacity`
    /// lines wait; lost lines are counted in `dropped`.
    pub fn start(
        file: Option<&Path>,
        format: Format,
        capacity: usize,
        dropped: IntCounter,
    ) -> std::io::Result<AccessLog> {
        let sink = match file {
            Some(p) => Sink::File(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
            None => Sink::Stderr,
        };
        let (queue, rx) = mpsc::sync_channel(capacity.max(1));
        let writer = Writer {
            queue: rx,
            sink,
            dropped: dropped.clone(),
            capacity,
        };
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer.run())?;
        Ok(AccessLog {
            queue,
            format,
            dropped,
        })
    }

    /// Queues `e`'s line, or counts it as dropped if the queue is full.
    /// Never blocks.
    pub fn record(&self, e: &Entry<'_>) {
        let mut buf = Vec::with_capacity(line::TYPICAL_LEN);
        // The wall-clock time of the line, as `tracing` stamped it: a
        // label for readers, no decision depends on it.
        line::write(&mut buf, self.format, SystemTime::now(), e);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.queue.try_send(Msg::Line(buf))
        {
            self.dropped.inc();
        }
    }

    /// Has every line queued so far written and the writer stopped, waiting
    /// at most `within` (a destination that blocks for ever must not hold
    /// up the exit); whether it was done in time. Lines recorded after this
    /// are counted as dropped.
    pub fn finish(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let (ack, done) = mpsc::channel();
        let mut msg = Msg::Finish(ack);
        loop {
            match self.queue.try_send(msg) {
                Ok(()) => break,
                // Already stopped: nothing is left to write.
                Err(TrySendError::Disconnected(_)) => return true,
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        done.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }
}

/// How long a stopping gateway waits for the access log's last lines to be
/// written (a destination that never takes them must not hold up the exit).
const ACCESS_LOG_FLUSH: Duration = Duration::from_secs(5);

/// Writes what the access log still holds, if there is one (at shutdown).
pub fn finish(access: Option<&AccessLog>) {
    if let Some(log) = access {
        if !log.finish(ACCESS_LOG_FLUSH) {
            tracing::warn!(
                "the access log's last lines were not written within {ACCESS_LOG_FLUSH:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> Entry<'_> {
        Entry {
            request_id: id,
            method: "GET",
            path: "/",
            status: 200,
            outcome: "public",
            route: Some(0),
            duration_us: 1,
            error: None,
        }
    }

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "applegate-access-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ))
    }

    /// Lines queued below the capacity all reach the file, in order, by
    /// the time `finish` returns; none is counted as dropped.
    #[test]
    fn every_line_is_written_by_finish() {
        let path = temp("all");
        let dropped = IntCounter::new("d", "d").unwrap();
        let log = AccessLog::start(Some(&path), Format::Text, 1000, dropped.clone()).unwrap();
        let ids: Vec<String> = (0..500).map(|i| format!("id{i:05}")).collect();
        for id in &ids {
            log.record(&entry(id));
        }
        assert!(log.finish(Duration::from_secs(5)));
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let got: Vec<&str> = text
            .lines()
            .map(|l| {
                l.split("request_id=")
                    .nth(1)
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
            })
            .collect();
        assert_eq!(got, ids);
        assert_eq!(dropped.get(), 0);
        // After finish, lines are counted, not written.
        log.record(&entry("late"));
        assert_eq!(dropped.get(), 1);
    }
}
