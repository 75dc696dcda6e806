//! The canonical request path: what routing, policy and the upstream all see.
//!
//! Upstream frameworks read a path in different ways: raw, percent-decoded
//! once, `\` as `/` (Windows, some Node and Python servers), `;` path
//! parameters dropped per segment (Tomcat, Jetty, Spring), slashes merged,
//! dot segments resolved (RFC 3986 §5.2.4), ASCII case folded (Express,
//! ASP.NET, IIS). A gateway that decides on one reading and forwards a path
//! that the upstream reads another way can be walked past (Envoy
//! CVE-2019-9901, Traefik CVE-2025-32431 and CVE-2025-66490). So the target
//! is parsed once into one canonical path that is forwarded as decided on,
//! and whatever could still be read two ways is refused:
//!
//! - escapes of unreserved characters (RFC 3986 §2.3: letters, digits,
//!   `-._~`) are decoded, so `%2e%2e` is a dot segment and is resolved, and
//!   `file%2Etxt` is `file.txt`; other escapes are kept, hex in upper case;
//! - dot segments are resolved and repeated slashes merged;
//! - refused (400): control characters (raw or encoded), raw `\`, a
//!   malformed escape, an escape that does not decode to UTF-8 (overlong
//!   forms such as `%c0%ae` among them), a dot segment carrying `;`
//!   parameters or an encoded slash (`..;`, `..%2F`), and an encoded `/` or
//!   `\` unless the route says `encoded_slashes = "keep"`.
//!
//! What remains ambiguous is only how `;` parameters, encoded slashes and
//! letter case are read; [`CanonicalPath::readings`] gives those readings
//! for route matching, which takes the strictest route any of them hits.

use std::borrow::Cow;
use std::fmt;

/// Why a request path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRefused {
    /// Not origin-form: a path must start with `/` (`*`, `host:port`, …).
    NotOriginForm,
    /// A control character, space or non-ASCII byte, raw or encoded.
    Control,
    /// A raw backslash: `\` is `/` to some servers and a name to others.
    Backslash,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// Escapes that do not decode to UTF-8 (e.g. overlong `%c0%ae`).
    NotUtf8,
    /// A dot segment hidden behind `;` parameters or an encoded slash.
    AmbiguousDotSegment,
    /// An encoded `/` or `\` on a route that does not keep them.
    EncodedSlash,
}

impl PathRefused {
    /// What went wrong, for the client and the log.
    pub fn reason(&self) -> &'static str {
        match self {
            PathRefused::NotOriginForm => "the request target is not a path",
            PathRefused::Control => "control or non-ASCII character in the path",
            PathRefused::Backslash => "backslash in the path",
            PathRefused::BadEscape => "malformed percent-escape in the path",
            PathRefused::NotUtf8 => "percent-escapes in the path are not UTF-8",
            PathRefused::AmbiguousDotSegment => "dot segment hidden behind ';' or an encoded slash",
            PathRefused::EncodedSlash => "encoded slash in the path",
        }
    }
}

impl fmt::Display for PathRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for PathRefused {}

/// A request path in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalPath<'a> {
    /// The canonical path: decided on and forwarded. Borrowed when the
    /// request's own path already is canonical (the common case).
    pub path: Cow<'a, str>,
    /// The path with encoded slashes decoded and `;` parameters dropped,
    /// when that reads differently from [`Self::path`].
    pub params_dropped: Option<String>,
    /// Whether [`Self::path`] keeps an encoded `/` or `\`.
    pub encoded_slash: bool,
}

impl CanonicalPath<'_> {
    /// The readings an upstream may give the forwarded path, as far as
    /// they can differ for route matching (case is the matcher's part).
    pub fn readings(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.path.as_ref()).chain(self.params_dropped.as_deref())
    }
}

/// Canonicalizes `raw`, the path of a request target (without query).
pub fn canonicalize(raw: &str) -> Result<CanonicalPath<'_>, PathRefused> {
    let b = raw.as_bytes();
    if b.first() != Some(&b'/') {
        return Err(PathRefused::NotOriginForm);
    }
    // Fast path: one scan decides whether anything needs rewriting.
    let mut plain = true;
    for (i, &c) in b.iter().enumerate() {
        match c {
            0..=0x20 | 0x7f..=0xff => return Err(PathRefused::Control),
            b'\\' => return Err(PathRefused::Backslash),
            b'%' | b';' => plain = false,
            b'/' if matches!(b.get(i + 1), Some(b'/' | b'.')) => plain = false,
            _ => {}
        }
    }
    if plain {
        return Ok(CanonicalPath {
            path: Cow::Borrowed(raw),
            params_dropped: None,
            encoded_slash: false,
        });
    }
    rewrite(raw)
}

/// The slow path of [`canonicalize`]: segment by segment, into one output
/// string (a `..` truncates it to the previous slash), with one pair of
/// scratch buffers for all segments.
fn rewrite(raw: &str) -> Result<CanonicalPath<'_>, PathRefused> {
    let mut path = String::with_capacity(raw.len());
    let mut scratch = Scratch::default();
    let mut encoded_slash = false;
    let mut has_params = false;
    let mut trailing_slash = false;
    for seg in raw[1..].split('/') {
        let found = scratch.normalize(seg)?;
        trailing_slash = false;
        match scratch.text.as_str() {
            "" | "." => trailing_slash = true,
            ".." => {
                path.truncate(path.rfind('/').unwrap_or(0));
                trailing_slash = true;
            }
            text => {
                encoded_slash |= found.encoded_slash;
                has_params |= found.has_params;
                path.push('/');
                path.push_str(text);
            }
        }
    }
    if path.is_empty() || trailing_slash {
        path.push('/');
    }
    let params_dropped = (has_params || encoded_slash)
        .then(|| drop_params(&path))
        .filter(|alt| *alt != path);
    Ok(CanonicalPath {
        path: if path == raw {
            Cow::Borrowed(raw)
        } else {
            Cow::Owned(path)
        },
        params_dropped,
        encoded_slash,
    })
}

/// What a segment holds that matters for the readings.
struct Found {
    encoded_slash: bool,
    has_params: bool,
}

/// Buffers reused across the segments of one path.
#[derive(Default)]
struct Scratch {
    /// The segment with its escapes normalized.
    text: String,
    /// The segment fully decoded, to check UTF-8 and hidden dot segments.
    decoded: Vec<u8>,
}

impl Scratch {
    /// Normalizes `seg` into `self.text`: decodes unreserved escapes,
    /// upper-cases the rest, and refuses what cannot be read one way.
    fn normalize(&mut self, seg: &str) -> Result<Found, PathRefused> {
        let (text, decoded) = (&mut self.text, &mut self.decoded);
        text.clear();
        decoded.clear();
        let b = seg.as_bytes();
        let mut encoded_slash = false;
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c != b'%' {
                text.push(c as char);
                decoded.push(c);
                i += 1;
                continue;
            }
            let v = match (b.get(i + 1).and_then(hex), b.get(i + 2).and_then(hex)) {
                (Some(h), Some(l)) => h << 4 | l,
                _ => return Err(PathRefused::BadEscape),
            };
            i += 3;
            decoded.push(v);
            match v {
                0..=0x1f | 0x7f => return Err(PathRefused::Control),
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    text.push(v as char)
                }
                _ => {
                    encoded_slash |= v == b'/' || v == b'\\';
                    const HEX: &[u8; 16] = b"0123456789ABCDEF";
                    text.push('%');
                    text.push(HEX[(v >> 4) as usize] as char);
                    text.push(HEX[(v & 15) as usize] as char);
                }
            }
        }
        if std::str::from_utf8(decoded).is_err() {
            return Err(PathRefused::NotUtf8);
        }
        // A plain `.` or `..` is resolved by the caller; one that only some
        // readings see (`..;x`, `..%3B`, `a%2F..`) cannot be resolved once.
        let plain_dot = text == "." || text == "..";
        let has_params = decoded.contains(&b';');
        if !plain_dot && (has_params || encoded_slash || text.contains('.')) {
            for piece in decoded.split(|c| matches!(c, b'/' | b'\\')) {
                let name = piece.split(|c| *c == b';').next().unwrap_or_default();
                if name == b"." || name == b".." {
                    return Err(PathRefused::AmbiguousDotSegment);
                }
            }
        }
        Ok(Found {
            encoded_slash,
            has_params,
        })
    }
}

/// The reading of a canonical `path` by a server that decodes encoded
/// slashes and drops `;` parameters per segment (Tomcat, Jetty, Spring).
fn drop_params(path: &str) -> String {
    let decoded = path
        .replace("%2F", "/")
        .replace("%5C", "/")
        .replace("%3B", ";");
    let mut out = String::with_capacity(decoded.len());
    for seg in decoded.split('/') {
        let name = seg.split(';').next().unwrap_or_default();
        if !name.is_empty() {
            out.push('/');
            out.push_str(name);
        }
    }
    if out.is_empty() || decoded.ends_with('/') {
        out.push('/');
    }
    out
}

fn hex(c: &u8) -> Option<u8> {
    (*c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(p: &str) -> Result<String, PathRefused> {
        canonicalize(p).map(|c| c.path.into_owned())
    }

    #[test]
    fn plain_paths_are_borrowed() {
        for p in [
            "/",
            "/a/b",
            "/a/b/",
            "/.well-known/x",
            "/a.b/c..d",
            "/file.txt",
        ] {
            let c = canonicalize(p).unwrap();
            assert!(matches!(c.path, Cow::Borrowed(_)), "{p}");
            assert_eq!(c.path, p);
            assert_eq!(c.params_dropped, None);
        }
    }

    #[test]
    fn dot_segments_and_slashes_are_resolved() {
        assert_eq!(canon("/a/../b").unwrap(), "/b");
        assert_eq!(canon("/a/./b/").unwrap(), "/a/b/");
        assert_eq!(canon("/a/b/..").unwrap(), "/a/");
        assert_eq!(canon("/../../x").unwrap(), "/x");
        assert_eq!(canon("//a///b").unwrap(), "/a/b");
        assert_eq!(canon("/a/%2e%2e/b").unwrap(), "/b");
        assert_eq!(canon("/a/.%2E").unwrap(), "/");
        assert_eq!(canon("/admin/%2e%2e/public/x").unwrap(), "/public/x");
    }

    #[test]
    fn escapes_are_normalized() {
        assert_eq!(canon("/file%2Etxt").unwrap(), "/file.txt");
        assert_eq!(canon("/%7euser/%41").unwrap(), "/~user/A");
        assert_eq!(canon("/a%20b").unwrap(), "/a%20b");
        assert_eq!(canon("/caf%c3%a9").unwrap(), "/caf%C3%A9");
        assert_eq!(canon("/100%25").unwrap(), "/100%25");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        use PathRefused::*;
        for (p, why) in [
            ("/admin/..%2fpublic/x", AmbiguousDotSegment),
            ("/admin/x/..\\..\\public/x", Backslash),
            ("/admin/..;/public/x", AmbiguousDotSegment),
            ("/admin/.;x/y", AmbiguousDotSegment),
            ("/admin/..%3B/y", AmbiguousDotSegment),
            ("/admin/%2e%2e;x/y", AmbiguousDotSegment),
            ("/admin/users%2f..%2f..", AmbiguousDotSegment),
            ("/a%5c..%5cb", AmbiguousDotSegment),
            ("/a%2", BadEscape),
            ("/a%zz", BadEscape),
            ("/a%00", Control),
            ("/a%0d%0a", Control),
            ("/a\tb", Control),
            ("/%c0%ae%c0%ae/x", NotUtf8),
            ("*", NotOriginForm),
            ("", NotOriginForm),
        ] {
            assert_eq!(canonicalize(p).map(|c| c.path), Err(why), "{p}");
        }
    }

    #[test]
    fn encoded_slashes_are_kept_and_flagged() {
        let c = canonicalize("/repo/a%2fb").unwrap();
        assert_eq!(c.path, "/repo/a%2Fb");
        assert!(c.encoded_slash);
        assert_eq!(c.params_dropped.as_deref(), Some("/repo/a/b"));
    }

    #[test]
    fn params_give_a_second_reading() {
        let c = canonicalize("/public;x/y").unwrap();
        assert_eq!(c.path, "/public;x/y");
        assert_eq!(
            c.readings().collect::<Vec<_>>(),
            ["/public;x/y", "/public/y"]
        );
        let c = canonicalize("/a%3bb/c").unwrap();
        assert_eq!(c.readings().collect::<Vec<_>>(), ["/a%3Bb/c", "/a/c"]);
        let c = canonicalize("/;x/admin").unwrap();
        assert_eq!(c.params_dropped.as_deref(), Some("/admin"));
    }
}
