//! `[admin]`: the admin listener (`/metrics`, `/ping`, `/ready`), off
//! unless `listen` is set, and never on a public port.

use std::net::SocketAddr;

use serde::Deserialize;

use super::validate::Validator;
use super::Server;

/// `[admin]`
#[derive(Debug, Clone, Default)]
pub struct Admin {
    /// Where the admin listener listens; `None`: no admin listener.
    pub listen: Option<SocketAddr>,
}

/// `[admin]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminSection {
    listen: Option<String>,
}

/// Reads and checks `[admin]`; `server` (when it read) for the ports the
/// admin listener may not share.
pub(super) fn read(v: &mut Validator<'_>, top: &toml::Table, server: Option<&Server>) -> Admin {
    let a: AdminSection = v.section(top, "admin");
    let key = "admin.listen";
    let Some(text) = a.listen else {
        return Admin::default();
    };
    let Ok(addr) = text.parse::<SocketAddr>() else {
        v.problem(
            key,
            format!("expected an address and port such as \"127.0.0.1:9180\", found {text:?}"),
        );
        return Admin::default();
    };
    let public = server.into_iter().flat_map(|s| {
        [
            Some(("server.listen", s.listen)),
            s.redirect_http.map(|r| ("server.redirect_http", r)),
        ]
    });
    for (name, other) in public.flatten() {
        if clashes(addr, other) {
            v.problem(
                key,
                format!("{addr} is {name}'s port as well; the admin listener must not be public, choose another port (e.g. 127.0.0.1:9180)"),
            );
            return Admin::default();
        }
    }
    Admin { listen: Some(addr) }
}

/// Whether two listeners would take the same port: same port, and the
/// same address or either one every address.
fn clashes(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_shared_port_clashes_on_any_or_the_same_address() {
        assert!(clashes(addr("127.0.0.1:8080"), addr("127.0.0.1:8080")));
        assert!(clashes(addr("127.0.0.1:8080"), addr("0.0.0.0:8080")));
        assert!(clashes(addr("[::]:8080"), addr("127.0.0.1:8080")));
        assert!(!clashes(addr("127.0.0.1:9180"), addr("0.0.0.0:8080")));
        assert!(!clashes(addr("127.0.0.1:8080"), addr("10.0.0.1:8080")));
    }
}
