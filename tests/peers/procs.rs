//! The peers' processes: find the tool (or fail saying how to install it),
//! give it a scratch directory, start it in its own process group with its
//! output in a log, wait for its port, and stop the whole group on drop.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What installs every peer on Debian: what `.ci/test` runs.
pub const SETUP: &str = "bash .ci/setup nginx caddy chromium chromium-driver";

/// How long a tool may take to listen on its port.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The path of `program` (`$PATH`, then the sbin directories, where
/// Debian puts nginx and which a normal user's `$PATH` lacks). Panics with
/// the command that installs it: a missing peer is a failure, never a skip.
pub fn require(program: &str, package: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path
        .split(':')
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"])
        .filter(|d| !d.is_empty());
    for dir in dirs {
        let candidate = Path::new(dir).join(program);
        if is_executable(&candidate) {
            return candidate;
        }
    }
    panic!(
        "{program} is not installed, and this test runs the real one: \
         install it with `sudo apt-get install -y {package}` (or `{SETUP}`)"
    );
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A scratch directory, removed on drop.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!(
            "applegate-peers-{name}-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Scratch { path }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `text` to `name` in the directory; its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A running tool and everything it started (its process group), stopped
/// when dropped: SIGTERM, then SIGKILL after a few seconds.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` as `name`, stdout and stderr to `log`.
    pub fn start(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let err = out.try_clone().expect("a file handle clones");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own group, so drop stops its children too (nginx's
            // worker, the browser chromedriver starts).
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// Waits until the tool accepts connections on `port` of 127.0.0.1;
    /// panics with its log if it exits first or does not within the
    /// start timeout.
    pub fn wait_port(&mut self, port: u16) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before listening on {port}:\n{}",
                    self.name,
                    self.log()
                );
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{} does not listen on {port} after {START_TIMEOUT:?}:\n{}",
            self.name,
            self.log()
        );
    }

    /// What the tool wrote so far (its last 4 KB).
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let from = text.len().saturating_sub(4096);
        let from = (from..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text[from..].to_string()
    }

    fn signal_group(&self, signal: libc::c_int) {
        // SAFETY: kill(2) with the negated id of the group we created for
        // this child (process_group(0) made its pid the group id).
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), signal);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.name, self.log());
        }
        self.signal_group(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Whatever is left of the group (a browser's helpers) goes now.
        self.signal_group(libc::SIGKILL);
        let _ = self.child.wait();
    }
}
