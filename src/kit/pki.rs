//! A test PKI made with the `openssl` command: a private CA and a server
//! certificate it signed, for the tests that need TLS with a CA of their
//! own (an upstream over TLS, `rediss://`).
//!
//! The `openssl` binary rather than a crate: it is on every machine the
//! tests run on (`.ci/setup` installs it), and the files it writes are the
//! ones an operator would hand the gateway.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files of a test PKI in one directory.
pub struct Pki {
    /// The CA's certificate (`ca.crt`).
    pub ca: PathBuf,
    /// The server's certificate (`server.crt`), for `localhost` and
    /// 127.0.0.1, valid two days.
    pub crt: PathBuf,
    /// Its key (`server.key`).
    pub key: PathBuf,
}

impl Pki {
    /// Makes the CA and the server certificate in `dir` (P-256 keys).
    pub fn make(dir: &Path) -> Pki {
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let ca = [
            "-subj",
            "/CN=applegate test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ];
        openssl(
            dir,
            &[&["req", "-x509", "-nodes", "-days", "2"][..], &ec, &ca].concat(),
        );
        let csr = ["req", "-new", "-nodes", "-subj", "/CN=localhost"];
        let out = ["-keyout", "server.key", "-out", "server.csr"];
        openssl(dir, &[&csr[..], &ec, &out].concat());
        std::fs::write(
            dir.join("server.ext"),
            "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        );
        Pki {
            ca: dir.join("ca.crt"),
            crt: dir.join("server.crt"),
            key: dir.join("server.key"),
        }
    }
}

/// `openssl args` in `dir`; the error says how to install it.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl: {e} (install it: sudo apt-get install openssl)"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
