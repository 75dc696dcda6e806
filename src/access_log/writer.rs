//! The access log's own thread: takes the formatted lines off the queue in
//! batches, writes each batch with one `write`, counts what it could not
//! write, and reports drops in the diagnostic log (at most one line per
//! [`REPORT_EVERY`]).
//!
//! Why it polls rather than waits on every line: a receiver parked on the
//! queue makes every sender pay a wake-up (a futex call and a context
//! switch) per line, which is what the queue is there to avoid. Busy, the
//! thread takes whatever arrived every [`POLL`] and writes it at once (the
//! queue is then empty: nothing waits in a buffer); after [`IDLE_POLLS`]
//! empty polls it parks until a line comes, so an idle gateway does not
//! wake up 100 times a second, and only the first line after a quiet spell
//! pays for the wake-up.

use std::fs::File;
use std::io::Write;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant, SystemTime};

use prometheus::IntCounter;

/// What goes through the queue.
pub(super) enum Msg {
    /// One formatted line, with its `\n`.
    Line(Vec<u8>),
    /// Write what is queued, then stop and answer (at shutdown).
    Finish(Sender<()>),
}

/// Where lines go.
pub(super) enum Sink {
    /// The process's stderr, shared with the diagnostic log: each batch is
    /// written under stderr's lock, so a diagnostic line never lands
    /// inside an access line.
    Stderr,
    /// `[log] access_file`, opened for appending.
    File(File),
}

impl Sink {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stderr => std::io::stderr().lock().write_all(buf),
            Sink::File(f) => f.write_all(buf),
        }
    }
}

/// How long a busy writer lets lines gather before it writes them.
const POLL: Duration = Duration::from_millis(10);
/// Empty polls (100 ms) after which the writer parks until a line comes.
const IDLE_POLLS: u32 = 10;
/// A batch is written when it reaches this size, without waiting for the
/// queue to empty.
const BATCH: usize = 64 * 1024;
/// At most one "lines dropped" report per this long.
pub(super) const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The writer's state; [`Writer::run`] is the thread's body.
pub(super) struct Writer {
    pub(super) queue: Receiver<Msg>,
    pub(super) sink: Sink,
    /// `applegate_access_log_dropped_total`: incremented by senders when
    /// the queue is full, and here when a write fails.
    pub(super) dropped: IntCounter,
    /// The queue's capacity, named in reports.
    pub(super) capacity: usize,
}

/// Drops counted and not yet reported, and when the last report was.
struct Reports {
    reported: u64,
    last: Option<Instant>,
    since: SystemTime,
    failure: Option<std::io::Error>,
}

impl Writer {
    /// Writes lines until told to finish or every sender is gone.
    pub(super) fn run(mut self) {
        let mut buf: Vec<u8> = Vec::with_capacity(BATCH + super::line::TYPICAL_LEN);
        let mut lines = 0u64;
        let mut idle = 0u32;
        let mut reports = Reports {
            reported: 0,
            last: None,
            since: SystemTime::now(),
            failure: None,
        };
        let ack = loop {
            let mut first = None;
            let mut closed = false;
            if idle >= IDLE_POLLS {
                // Quiet: park until a line comes or a report falls due.
                let wait = reports.due_in(self.dropped.get());
                match wait.map_or_else(
                    || {
                        self.queue
                            .recv()
                            .map_err(|_| RecvTimeoutError::Disconnected)
                    },
                    |w| self.queue.recv_timeout(w),
                ) {
                    Ok(m) => first = Some(m),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => closed = true,
                }
            }
            let mut got = 0usize;
            let mut finish = None;
            while !closed {
                let m = match first.take().map_or_else(|| self.queue.try_recv(), Ok) {
                    Ok(m) => m,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                };
                match m {
                    Msg::Line(line) => {
                        got += 1;
                        lines += 1;
                        buf.extend_from_slice(&line);
                        if buf.len() >= BATCH {
                            self.write(&mut buf, &mut lines, &mut reports);
                        }
                    }
                    Msg::Finish(ack) => {
                        finish = Some(ack);
                        break;
                    }
                }
            }
            // The queue is empty (or we stop): nothing waits in the buffer.
            self.write(&mut buf, &mut lines, &mut reports);
            let stopping = finish.is_some() || closed;
            reports.report(&self.dropped, self.capacity, stopping);
            if stopping {
                break finish;
            }
            idle = if got == 0 { idle.saturating_add(1) } else { 0 };
            if idle < IDLE_POLLS {
                std::thread::sleep(POLL);
            }
        };
        // Closed before answering: whoever waits on the answer may read a
        // FIFO or file to its end.
        drop(self);
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
    }

    /// Writes the batch; its lines are counted as dropped if that fails.
    fn write(&mut self, buf: &mut Vec<u8>, lines: &mut u64, reports: &mut Reports) {
        if buf.is_empty() {
            return;
        }
        if let Err(e) = self.sink.write_all(buf) {
            self.dropped.inc_by(*lines);
            reports.failure = Some(e);
        }
        buf.clear();
        *lines = 0;
    }
}

impl Reports {
    /// How long until a report of pending drops is due; `None` when there
    /// is nothing to report.
    fn due_in(&self, dropped: u64) -> Option<Duration> {
        if dropped == self.reported {
            return None;
        }
        Some(
            self.last
                .map_or(Duration::ZERO, |l| REPORT_EVERY.saturating_sub(l.elapsed())),
        )
    }

    /// Logs the drops since the last report, if there are any and a
    /// report is due (or `now`, at shutdown).
    fn report(&mut self, dropped: &IntCounter, capacity: usize, now: bool) {
        let total = dropped.get();
        match self.due_in(total) {
            Some(wait) if now || wait.is_zero() => {}
            _ => return,
        }
        let n = total - self.reported;
        let mut since = Vec::with_capacity(32);
        super::line::timestamp(&mut since, self.since);
        let since = String::from_utf8_lossy(&since);
        match self.failure.take() {
            Some(e) => tracing::warn!(
                dropped = n,
                "{n} access lines dropped since {since}: the access log's destination failed ({e}), or its queue (log.access_queue = {capacity}) was full"
            ),
            None => tracing::warn!(
                dropped = n,
                "{n} access lines dropped since {since}: the access log's queue (log.access_queue = {capacity}) was full, its destination too slow"
            ),
        }
        self.reported = total;
        self.last = Some(Instant::now());
        self.since = SystemTime::now();
    }
}
