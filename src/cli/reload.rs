//! `applegate reload --config FILE --pid PID`: a running gateway replaced
//! by a new process (the config as it is now, the binary as installed now)
//! without a refused or reset connection. nginx's answer, on pingora's
//! graceful upgrade: a proxy's whole config cannot be swapped inside a
//! running process, so a reload is an upgrade to the same binary.
//!
//! 1. The config is read and checked (by the caller: a bad one exits 2 and
//!    the running gateway is not touched).
//! 2. `applegate run --upgrade --config FILE` starts; once it listens on
//!    `server.upgrade_sock`, and only then,
//! 3. the running gateway is sent SIGQUIT: it hands its listening sockets
//!    over, serves on for pingora's 5 s, drains and exits
//!    (src/drain.rs); the new one takes the state file once it is free
//!    (src/upgrade.rs).
//! 4. Exit 0 when the old process is gone and the new one runs; 1 (with
//!    the reason) otherwise. Should the new process die before step 3, the
//!    old one was never signalled and goes on serving.
//!
//! The new process is left running in its own process group, writing to
//! this command's stdout and stderr (under systemd: the journal), and
//! tells systemd it is the main process (src/systemd.rs).

use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use applegate::config::Config;
use applegate::upgrade::handover_bound;

/// How long the new process may take to listen on the upgrade socket, and
/// then to take the listening sockets once the old one is signalled
/// (pingora's old side retries its connect for 5 s).
const STEP: Duration = Duration::from_secs(10);

/// Runs the procedure; see the module doc.
pub fn reload(path: &Path, c: &Config, pid: i32) -> ExitCode {
    match handover(path, c, pid) {
        Ok(new) => {
            println!("applegate reload: process {new} took over from {pid}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("applegate reload: {e}");
            ExitCode::from(1)
        }
    }
}

fn handover(path: &Path, c: &Config, pid: i32) -> Result<u32, String> {
    if !alive(pid) {
        return Err(format!("no running process {pid} to take over from"));
    }
    if let applegate::config::State::Embedded { path } = &c.state {
        applegate::state::probe_writable(path)
            .map_err(|e| format!("state.path: cannot write {}: {e}", path.display()))?;
    }
    let sock = &c.server.upgrade_sock;
    // A socket left by an upgrade that failed half way would look like the
    // new process listening; the new process replaces it anyway.
    if std::fs::symlink_metadata(sock).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(sock);
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut child = Command::new(exe)
        .args(["run", "--upgrade", "--config"])
        .arg(path)
        .stdin(Stdio::null())
        // Its own group: a Ctrl-C meant for this command does not reach it.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the new gateway: {e}"))?;
    let new = child.id();
    let untouched = format!("the running gateway ({pid}) was not signalled and still serves");
    wait(&mut child, STEP, || sock.exists()).map_err(|e| {
        format!(
            "the new gateway ({new}) {e} before listening on {}; {untouched}",
            sock.display()
        )
    })?;
    // SAFETY: kill(2) with a pid checked above and a valid signal number.
    if unsafe { libc::kill(pid, libc::SIGQUIT) } != 0 {
        let e = std::io::Error::last_os_error();
        let _ = child.kill();
        return Err(format!(
            "cannot signal {pid}: {e}; the new gateway was stopped"
        ));
    }
    // The new process removes the socket once the sockets have arrived.
    wait(&mut child, STEP, || !sock.exists())
        .map_err(|e| format!("the new gateway ({new}) {e} before taking the listening sockets"))?;
    wait(
        &mut child,
        handover_bound(c.server.grace_period) + STEP,
        || !alive(pid),
    )
    .map_err(|e| format!("the new gateway ({new}) {e} while {pid} was draining"))?;
    Ok(new)
}

/// Polls `done` until it holds; an error if `child` exits or `limit` passes
/// first (said as the end of a sentence about the child).
fn wait(child: &mut Child, limit: Duration, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let end = Instant::now() + limit;
    loop {
        if done() {
            return Ok(());
        }
        match child.try_wait() {
            Ok(Some(status)) => return Err(format!("exited ({status})")),
            Ok(None) => {}
            Err(e) => return Err(format!("cannot be watched ({e})")),
        }
        if Instant::now() >= end {
            let _ = child.kill();
            return Err(format!(
                "did not get there within {}s and was stopped",
                limit.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` runs: it exists and is not a zombie (an exited process
/// its parent has not collected yet still answers kill(pid, 0)).
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    // /proc/PID/stat: "pid (comm) S ...", the state after the last ')'.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}
