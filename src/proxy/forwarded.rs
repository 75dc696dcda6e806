//! Forwarding headers: who the client is, as the upstream hears it.
//!
//! `X-Forwarded-For/-Proto/-Host/-Port`, `Forwarded` (RFC 7239) and
//! `X-Real-IP` tell an upstream the client's address, scheme and host.
//! From a client they are lies waiting to happen (an app that rate-limits
//! or allow-lists by `X-Forwarded-For` trusts whoever typed it), so they
//! are replaced by the gateway's own: the peer address, the real scheme and
//! the canonical host. Only a peer in `server.trusted_proxies` (a load
//! balancer in front) has its headers kept and extended the usual way.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

// Built at compile time: inserting one neither parses nor allocates.
const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
const XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
const XFPORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The trusted proxies, built once from config.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    pub fn new(nets: &[IpNet]) -> Self {
        TrustedProxies {
            nets: nets.to_vec(),
        }
    }

    /// Whether `ip` is one of them.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: the peer, or, when the peer is trusted, the
    /// right-most address in `X-Forwarded-For` that is not itself a trusted
    /// proxy (left of that, anyone could have written anything).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        let values: Vec<&[u8]> = headers.get_all(XFF).iter().map(|v| v.as_bytes()).collect();
        for hop in values.iter().rev().flat_map(|v| v.rsplit(|b| *b == b',')) {
            let Some(ip) = std::str::from_utf8(hop)
                .ok()
                .and_then(|s| s.trim().parse::<IpAddr>().ok())
            else {
                break;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 (`::ffff:10.0.0.1`, as a dual-stack listener reports
/// IPv4 peers) compared as the IPv4 address it is.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether a header name (lower case, as `http` keys them) is one of the
/// forwarding headers in either spelling, `-` or `_`.
fn is_forwarding_header(name: &str) -> bool {
    let n = name.as_bytes();
    // Most names are ruled out by their length alone.
    if !matches!(n.len(), 9 | 15 | 16 | 17) {
        return false;
    }
    [&XFF, &XFP, &XFH, &XFPORT, &FORWARDED, &REAL_IP]
        .iter()
        .any(|h| {
            let h = h.as_str().as_bytes();
            h.len() == n.len()
                && h.iter()
                    .zip(n)
                    .all(|(a, b)| *a == if *b == b'_' { b'-' } else { *b })
        })
}

/// What the gateway knows of the hop from the client.
pub struct Hop<'a> {
    /// The peer's address (the client, or a trusted proxy).
    pub peer: IpAddr,
    /// Whether the peer is a trusted proxy.
    pub trusted: bool,
    /// `http` or `https`, as the gateway's listener speaks.
    pub scheme: &'static str,
    /// The canonical host (`name[:port]`), as the upstream's `Host`.
    pub host: &'a HeaderValue,
    /// The port the request was addressed to.
    pub port: u16,
}

/// Sets the forwarding headers on the request to the upstream.
pub fn apply(headers: &mut HeaderMap, hop: &Hop<'_>) -> pingora::Result<()> {
    let peer = canonical_ip(hop.peer);
    // CGI-style servers (WSGI, PHP, Rack) read `X_Forwarded_For` as
    // `X-Forwarded-For` and merge the two, the client's first: an `_`
    // spelling is never a proxy's and always goes; from an untrusted peer
    // every spelling goes.
    let spoofed = |k: &HeaderName| {
        let n = k.as_str();
        is_forwarding_header(n) && (!hop.trusted || n.as_bytes().contains(&b'_'))
    };
    if headers.keys().any(spoofed) {
        let names: Vec<HeaderName> = headers.keys().filter(|k| spoofed(k)).cloned().collect();
        for name in names {
            headers.remove(&name);
        }
    }
    let peer_text = ip_text(peer);
    let host = hop.host.to_str().unwrap_or_default();
    let mut element = String::with_capacity(peer_text.len() + host.len() + 32);
    element.push_str("for=");
    match peer {
        IpAddr::V4(_) => element.push_str(&peer_text),
        IpAddr::V6(_) => {
            element.push_str("\"[");
            element.push_str(&peer_text);
            element.push_str("]\"");
        }
    }
    element.push_str(";host=\"");
    element.push_str(host);
    element.push_str("\";proto=");
    element.push_str(hop.scheme);
    // Kept and extended from a trusted proxy; ours alone otherwise (then
    // the lookups find nothing, as every copy was just removed).
    let peer_value = value(peer_text.clone())?;
    let (xff, forwarded) = if hop.trusted {
        (
            value(extended(headers, &XFF, &peer_text))?,
            value(extended(headers, &FORWARDED, &element))?,
        )
    } else {
        (peer_value.clone(), value(element)?)
    };
    headers.insert(XFF, xff);
    headers.insert(FORWARDED, forwarded);
    if !headers.contains_key(REAL_IP) {
        headers.insert(REAL_IP, peer_value);
    }
    if !headers.contains_key(XFP) {
        headers.insert(XFP, HeaderValue::from_static(hop.scheme));
    }
    if !headers.contains_key(XFH) {
        headers.insert(XFH, hop.host.clone());
    }
    if !headers.contains_key(XFPORT) {
        let port = match hop.port {
            80 => HeaderValue::from_static("80"),
            443 => HeaderValue::from_static("443"),
            p => HeaderValue::from(p),
        };
        headers.insert(XFPORT, port);
    }
    Ok(())
}

/// An address as text, IPv4 written out by hand: `Display` goes through
/// the formatting machinery and this runs on every proxied request.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut out = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
    out
}

/// The values a proxy in front sent for `name`, joined, with `ours` added.
fn extended(headers: &HeaderMap, name: &HeaderName, ours: &str) -> String {
    let mut out = String::new();
    for v in headers.get_all(name).iter().filter_map(|v| v.to_str().ok()) {
        out.push_str(v);
        out.push_str(", ");
    }
    out.push_str(ours);
    out
}

/// A header value from text we built (addresses, hosts already checked).
fn value(text: String) -> pingora::Result<HeaderValue> {
    HeaderValue::try_from(text).map_err(|e| {
        pingora::Error::because(
            pingora::ErrorType::InvalidHTTPHeader,
            "forwarding header",
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> HeaderMap {
        let mut r = HeaderMap::new();
        for (k, v) in headers {
            r.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        r
    }

    static HOST: HeaderValue = HeaderValue::from_static("app.example.com");

    fn hop(peer: &str, trusted: bool) -> Hop<'static> {
        Hop {
            peer: peer.parse().unwrap(),
            trusted,
            scheme: "http",
            host: &HOST,
            port: 80,
        }
    }

    fn get(r: &HeaderMap, n: impl http::header::AsHeaderName) -> Option<&str> {
        r.get(n).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn client_headers_are_replaced_from_an_untrusted_peer() {
        let mut r = req(&[
            ("X-Forwarded-For", "1.2.3.4"),
            ("x-forwarded-for", "5.6.7.8"),
            ("X-Real-IP", "1.2.3.4"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "admin.example.com"),
            ("X-Forwarded-Port", "443"),
            ("Forwarded", "for=1.2.3.4"),
            ("X_Forwarded_For", "6.6.6.6"),
            ("X_Real_IP", "6.6.6.6"),
            ("X_Forwarded_Host", "admin.example.com"),
        ]);
        apply(&mut r, &hop("203.0.113.9", false)).unwrap();
        assert_eq!(get(&r, XFF), Some("203.0.113.9"));
        assert_eq!(get(&r, REAL_IP), Some("203.0.113.9"));
        assert_eq!(get(&r, XFP), Some("http"));
        assert_eq!(get(&r, XFH), Some("app.example.com"));
        assert_eq!(get(&r, XFPORT), Some("80"));
        assert_eq!(
            get(&r, FORWARDED),
            Some("for=203.0.113.9;host=\"app.example.com\";proto=http")
        );
        assert_eq!(r.get_all(XFF).iter().count(), 1);
        for n in ["x_forwarded_for", "x_real_ip", "x_forwarded_host"] {
            assert_eq!(get(&r, n), None, "{n}");
        }
    }

    #[test]
    fn a_trusted_proxy_has_its_headers_extended() {
        let mut r = req(&[
            ("X-Forwarded-For", "198.51.100.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Real-IP", "198.51.100.7"),
        ]);
        r.append("x_forwarded_for", HeaderValue::from_static("6.6.6.6"));
        r.append("x_real_ip", HeaderValue::from_static("6.6.6.6"));
        apply(&mut r, &hop("10.0.0.2", true)).unwrap();
        assert_eq!(get(&r, XFF), Some("198.51.100.7, 10.0.0.2"));
        assert_eq!(get(&r, "x_forwarded_for"), None, "never a proxy's spelling");
        assert_eq!(get(&r, "x_real_ip"), None);
        assert_eq!(get(&r, XFP), Some("https"));
        assert_eq!(get(&r, REAL_IP), Some("198.51.100.7"));
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let t = TrustedProxies::new(&["10.0.0.0/8".parse().unwrap()]);
        let r = req(&[("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.0.0.5")]);
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            t.client(peer, &r),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        let untrusted: IpAddr = "203.0.113.1".parse().unwrap();
        assert_eq!(t.client(untrusted, &r), untrusted);
        let mapped: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        assert!(t.contains(mapped));
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "127.0.0.1",
            "::1",
            "2001:db8::7",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    #[test]
    fn ipv6_peers_are_quoted_in_forwarded() {
        let mut r = req(&[]);
        apply(&mut r, &hop("2001:db8::7", false)).unwrap();
        assert_eq!(
            get(&r, FORWARDED),
            Some("for=\"[2001:db8::7]\";host=\"app.example.com\";proto=http")
        );
        assert_eq!(get(&r, XFF), Some("2001:db8::7"));
    }
}
