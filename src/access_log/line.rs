//! One access line, formatted into one buffer: the same text and JSON the
//! `tracing` event it replaces printed (field for field, byte for byte,
//! escaping included), so log readers see no change.
//!
//! Why by hand: `tracing`'s formatter ran `core::fmt` over every field
//! (a visitor, a `Debug` per value, a `String` per span), about 14,000
//! instructions per request; this writes integers with `itoa` and
//! strings with a copy, about a tenth of that. A string that needs escaping
//! (a quote, a backslash, a control or non-ASCII character) takes the
//! formatter the old line used (`Debug` for text, `serde_json` for JSON),
//! so even the rare line is the same as before.

use std::time::SystemTime;

/// What one request's access line says.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Also the request span's `id` (the old event was inside that span).
    pub request_id: &'a str,
    pub method: &'a str,
    /// Without the query: a query can carry codes or tokens.
    pub path: &'a str,
    /// 0: no response was written.
    pub status: u16,
    pub outcome: &'a str,
    pub route: Option<usize>,
    pub duration_us: u64,
    /// The kind of error the request ended with, if any.
    pub error: Option<&'a str>,
}

/// The line's layout: `[log] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `tracing_subscriber`'s default (full) text format.
    Text,
    /// `tracing_subscriber`'s JSON format.
    Json,
}

/// A line is usually about 200 bytes (text) or 330 (JSON).
pub const TYPICAL_LEN: usize = 384;

/// `e` at `now` as one line (with its `\n`) in `format`, appended to `out`.
pub fn write(out: &mut Vec<u8>, format: Format, now: SystemTime, e: &Entry<'_>) {
    match format {
        Format::Text => text(out, now, e),
        Format::Json => json(out, now, e),
    }
}

fn text(out: &mut Vec<u8>, now: SystemTime, e: &Entry<'_>) {
    timestamp(out, now);
    out.extend_from_slice(b"  INFO request{id=");
    out.extend_from_slice(e.request_id.as_bytes());
    out.extend_from_slice(b"}: applegate::access: request_id=");
    out.extend_from_slice(e.request_id.as_bytes());
    out.extend_from_slice(b" method=");
    out.extend_from_slice(e.method.as_bytes());
    out.extend_from_slice(b" path=");
    debug_str(out, e.path);
    out.extend_from_slice(b" status=");
    int(out, u64::from(e.status));
    out.extend_from_slice(b" outcome=");
    debug_str(out, e.outcome);
    if let Some(r) = e.route {
        out.extend_from_slice(b" route=");
        int(out, r as u64);
    }
    out.extend_from_slice(b" duration_us=");
    int(out, e.duration_us);
    if let Some(err) = e.error {
        out.extend_from_slice(b" error=");
        debug_str(out, err);
    }
    out.push(b'\n');
}

fn json(out: &mut Vec<u8>, now: SystemTime, e: &Entry<'_>) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(out, now);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"fields\":{\"request_id\":");
    json_str(out, e.request_id);
    out.extend_from_slice(b",\"method\":");
    json_str(out, e.method);
    out.extend_from_slice(b",\"path\":");
    json_str(out, e.path);
    out.extend_from_slice(b",\"status\":");
    int(out, u64::from(e.status));
    out.extend_from_slice(b",\"outcome\":");
    json_str(out, e.outcome);
    if let Some(r) = e.route {
        out.extend_from_slice(b",\"route\":");
        int(out, r as u64);
    }
    out.extend_from_slice(b",\"duration_us\":");
    int(out, e.duration_us);
    if let Some(err) = e.error {
        out.extend_from_slice(b",\"error\":");
        json_str(out, err);
    }
    out.extend_from_slice(b"},\"target\":\"applegate::access\",\"span\":{\"id\":");
    json_str(out, e.request_id);
    out.extend_from_slice(b",\"name\":\"request\"},\"spans\":[{\"id\":");
    json_str(out, e.request_id);
    out.extend_from_slice(b",\"name\":\"request\"}]}\n");
}

fn int(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `s` as Rust's `Debug` quotes it (what `tracing`'s text format did).
fn debug_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        use std::io::Write;
        // Writing to a Vec cannot fail.
        let _ = write!(out, "{s:?}");
    }
}

/// `s` as a JSON string, as `serde_json` writes it (what `tracing`'s JSON
/// format used).
fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// `now` as RFC 3339 in UTC with microseconds, as `tracing_subscriber`'s
/// default timer wrote it: `2026-11-30T01:13:48.469796Z`.
pub(super) fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (y, m, d) = civil(secs / 86_400);
    let rest = secs % 86_400;
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    let put = |b: &mut [u8], at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut b, 0, 4, y.min(9999));
    put(&mut b, 5, 2, m);
    put(&mut b, 8, 2, d);
    put(&mut b, 11, 2, rest / 3600);
    put(&mut b, 14, 2, rest % 3600 / 60);
    put(&mut b, 17, 2, rest % 60);
    put(&mut b, 20, 6, u64::from(since.subsec_micros()));
    out.extend_from_slice(&b);
}

/// Year, month, day of `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for dates from 1970 on).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry<'a>(path: &'a str, route: Option<usize>, error: Option<&'a str>) -> Entry<'a> {
        Entry {
            request_id: "21e6fb68d3ebff24",
            method: "GET",
            path,
            status: 200,
            outcome: "authenticated",
            route,
            duration_us: 671,
            error,
        }
    }

    fn at(secs: u64, micros: u32) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(secs, micros * 1000)
    }

    fn line(format: Format, now: SystemTime, e: &Entry<'_>) -> String {
        let mut out = Vec::new();
        write(&mut out, format, now, e);
        String::from_utf8(out).unwrap()
    }

    /// Lines the `tracing` event printed (copied from a run of the gateway
    /// before this file existed), in both formats, are printed the same.
    #[test]
    fn lines_are_those_tracing_printed() {
        let now = at(1_796_001_628, 469_796);
        assert_eq!(
            line(Format::Text, now, &entry("/", Some(0), None)),
            "2026-11-30T01:20:28.469796Z  INFO request{id=21e6fb68d3ebff24}: applegate::access: request_id=21e6fb68d3ebff24 method=GET path=\"/\" status=200 outcome=\"authenticated\" route=0 duration_us=671\n"
        );
        assert_eq!(
            line(Format::Json, now, &entry("/", Some(0), None)),
            "{\"timestamp\":\"2026-11-30T01:20:28.469796Z\",\"level\":\"INFO\",\"fields\":{\"request_id\":\"21e6fb68d3ebff24\",\"method\":\"GET\",\"path\":\"/\",\"status\":200,\"outcome\":\"authenticated\",\"route\":0,\"duration_us\":671},\"target\":\"applegate::access\",\"span\":{\"id\":\"21e6fb68d3ebff24\",\"name\":\"request\"},\"spans\":[{\"id\":\"21e6fb68d3ebff24\",\"name\":\"request\"}]}\n"
        );
    }

    /// Quotes, backslashes, control and non-ASCII characters are escaped
    /// as `Debug` (text) and `serde_json` (JSON) escape them; no route and
    /// an error are written as `tracing` wrote an absent and a present
    /// optional field.
    #[test]
    fn odd_strings_are_escaped_as_before() {
        let now = at(0, 0);
        let path = "/a/\"q\\\\\u{1}é\n";
        let t = line(Format::Text, now, &entry(path, None, Some("ReadError")));
        assert_eq!(
            t,
            format!("1970-01-01T00:00:00.000000Z  INFO request{{id=21e6fb68d3ebff24}}: applegate::access: request_id=21e6fb68d3ebff24 method=GET path={path:?} status=200 outcome=\"authenticated\" duration_us=671 error=\"ReadError\"\n")
        );
        let j = line(Format::Json, now, &entry(path, None, Some("ReadError")));
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["fields"]["path"], path);
        assert_eq!(v["fields"]["error"], "ReadError");
        assert!(v["fields"].get("route").is_none());
        assert!(j.contains(&serde_json::to_string(path).unwrap()));
    }

    /// The date arithmetic agrees with `tracing_subscriber`'s at the
    /// edges: leap days, year ends, centuries.
    #[test]
    fn timestamps_match_the_calendar() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00.000001Z"),
            (951_782_400, "2000-02-29T00:00:00.000001Z"),
            (4_107_542_399, "2100-02-28T23:59:59.000001Z"),
            (4_107_542_400, "2100-03-01T00:00:00.000001Z"),
            (1_798_761_599, "2026-12-31T23:59:59.000001Z"),
            (1_709_164_800, "2024-02-29T00:00:00.000001Z"),
        ] {
            let mut out = Vec::new();
            timestamp(&mut out, at(secs, 1));
            assert_eq!(String::from_utf8(out).unwrap(), want, "{secs}");
        }
    }
}
