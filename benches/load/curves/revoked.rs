//! The revocation curve's state files: a gateway's store pre-filled with
//! revoked sessions and users.
//!
//! Written through the store's own API ([`applegate::state::Embedded`]
//! and its [`Store`] trait), one committed write per revocation as the
//! gateway writes them (a sign-out, an Apple notification), so the file is
//! what a gateway that lived through them would hold, and the benchmark
//! needs no test-only code in the product. One file grows through the
//! sizes asked; a copy is taken at each (a running gateway locks its file).

use std::path::{Path, PathBuf};
use std::time::Instant;

use applegate::state::{Embedded, Store, SubRevocation};

/// How long the revocations are kept: a month, as long as a session lives.
const KEPT_SECS: u64 = 30 * 86_400;

/// A state file with `size` revocations, and how long it took to write.
pub struct Filled {
    pub size: usize,
    pub path: PathBuf,
    pub secs: f64,
}

/// Files in `dir` with each of `sizes` revocations (ascending), half of
/// them revoked sessions (ids like the gateway's) and half revoked users
/// (`sub`s shaped like Apple's), in force at `now` (Unix seconds). None
/// of them is the benchmark's session or user. Size 0 is no file: the
/// gateway creates an empty one.
pub fn fill(dir: &Path, sizes: &[usize], now: u64) -> Vec<Filled> {
    let growing = dir.join("revoked-growing.state");
    let mut out = Vec::new();
    let mut written = 0;
    let started = Instant::now();
    for &size in sizes {
        let path = dir.join(format!("revoked-{size}.state"));
        if size > 0 {
            let store = Embedded::open(&growing).expect("open the state file to fill");
            while written < size {
                if written % 2 == 0 {
                    let id = applegate::session::random_token(16);
                    store
                        .revoke_session(&id, now + KEPT_SECS)
                        .expect("revoke a session");
                } else {
                    let sub = format!(
                        "{:06}.{:032x}.{:04}",
                        written % 1_000_000,
                        rand::random::<u128>(),
                        written % 10_000
                    );
                    let r = SubRevocation {
                        at: now,
                        until: now + KEPT_SECS,
                    };
                    store.revoke_sub(&sub, r).expect("revoke a user");
                }
                written += 1;
            }
            drop(store);
            std::fs::copy(&growing, &path).expect("copy the state file");
        }
        let secs = started.elapsed().as_secs_f64();
        println!("  state file with {size} revocations written ({secs:.1} s so far)");
        out.push(Filled { size, path, secs });
    }
    let _ = std::fs::remove_file(&growing);
    out
}
