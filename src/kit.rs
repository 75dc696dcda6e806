//! The dev and test kit: the Apple emulator, an upstream and a gateway
//! config on loopback ports, assembled in one place.
//!
//! `applegate dev`, the integration tests (`tests/common`), the micro
//! benchmarks and the load benchmark all need the same stack: a `.p8` key
//! registered at the emulator, the emulator on a port, an upstream (the
//! demo app, or an address the caller runs), a free port for the gateway,
//! and a config naming all of them with the secrets supplied. Each used to
//! assemble its own; [`Builder`] does it once. It starts real parts only
//! (no mocks of the gateway's code paths) and pulls in nothing the release
//! binary does not already link: `applegate dev` uses it too.
//!
//! The gateway itself is started by the caller from the config: in process
//! ([`crate::server::spawn`], tests), in the foreground ([`crate::server::run`],
//! `dev`), or as the real binary (the load benchmark, with
//! [`Secrets::write`] and [`wait_listening`]).

pub mod pki;
pub mod redis;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey, LineEnding};

use crate::clock::SharedClock;
use crate::config::{self, Config, ConfigError};
use crate::emulator::{self, Emulator};
use crate::httpd;

/// Apple's identifiers for one registered client, shaped like Apple's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub team_id: &'static str,
    pub key_id: &'static str,
    pub services_id: &'static str,
}

impl Ids {
    /// What the tests and benchmarks register.
    pub const TEST: Ids = Ids {
        team_id: "TEAM123456",
        key_id: "KEY1234567",
        services_id: "com.example.web",
    };
}

/// Where the gateway's routes go.
#[derive(Debug, Clone, Copy)]
pub enum Upstream {
    /// The demo app ([`crate::demo`]), started by the kit.
    Demo,
    /// An upstream the caller runs (a recorder, nginx, a closed port).
    At(SocketAddr),
}

/// The secrets a gateway of the kit starts with.
pub struct Secrets {
    /// The key the client secret is signed with (`apple.private_key`).
    pub apple_key: SigningKey,
    /// `session.secret`: one secret per line, the first seals.
    pub session: String,
}

impl Secrets {
    /// `apple_key` with a fresh random session secret.
    pub fn new(apple_key: SigningKey) -> Secrets {
        Secrets {
            apple_key,
            session: crate::session::random_token(48),
        }
    }

    fn pem(&self) -> String {
        self.apple_key
            .to_pkcs8_pem(LineEnding::LF)
            .map(|p| p.to_string())
            .expect("a P-256 key encodes as PKCS#8")
    }

    /// The key file [`Self::write`] writes (`apple.private_key_file`).
    pub const KEY_FILE: &'static str = "AuthKey.p8";
    /// The session secret file [`Self::write`] writes (`session.secret_file`).
    pub const SESSION_FILE: &'static str = "session.key";

    /// Writes [`Self::KEY_FILE`] and [`Self::SESSION_FILE`] into `dir`, for
    /// a gateway started as a process (its config names them).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::write(dir.join(Self::KEY_FILE), self.pem())?;
        std::fs::write(dir.join(Self::SESSION_FILE), &self.session)
    }
}

/// Validates `toml` with `secrets` supplied as the environment would
/// (never written to disk), relative paths from the working directory.
/// Without a `[state]` section the state is kept in memory: the default
/// file would land in the working directory (the repository, under
/// `cargo test`); a caller that wants durability names a path.
pub fn config(toml: &str, secrets: &Secrets) -> Result<Config, ConfigError> {
    let mut table: toml::Table = toml.parse().map_err(|e: toml::de::Error| ConfigError {
        problems: vec![config::Problem::new("", format!("invalid TOML: {e}"))],
    })?;
    if !table.contains_key("state") {
        set(&mut table, "state", "backend", "memory".into());
    }
    let toml = table.to_string();
    let (pem, session) = (secrets.pem(), secrets.session.clone());
    let env = move |name: &str| match name {
        config::ENV_APPLE_PRIVATE_KEY => Some(pem.clone()),
        config::ENV_SESSION_SECRET => Some(session.clone()),
        _ => None,
    };
    Config::from_toml(&toml, Path::new("."), &env)
}

/// A free loopback port for a server that binds it itself (pingora), with
/// the two after it free too (`applegate dev --port N` takes N, N+1, N+2).
/// Chosen below the kernel's ephemeral range (32768+), so no `:0` bind or
/// outgoing connection of a test running beside this one can take it
/// between our check and the server's bind.
pub fn free_port() -> u16 {
    loop {
        let port = 20_000 + rand::random::<u16>() % 12_000;
        if (0..3).all(|i| TcpListener::bind(("127.0.0.1", port + i)).is_ok()) {
            return port;
        }
    }
}

/// Waits until something accepts connections on `addr`; false after `timeout`.
pub fn wait_listening(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Why the kit could not start.
#[derive(Debug)]
pub enum Error {
    /// A fixed port was taken.
    Bind(u16, std::io::Error),
    /// The emulator refused its options.
    Emulator(emulator::SetupError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Bind(port, e) => write!(f, "cannot listen on 127.0.0.1:{port}: {e}"),
            Error::Emulator(e) => write!(f, "Apple emulator: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// How to assemble a stack; ports left at 0 are chosen free.
pub struct Builder {
    ids: Ids,
    gateway_port: u16,
    emulator_port: u16,
    demo_port: u16,
    public_url: Option<String>,
    upstream: Upstream,
    clock: SharedClock,
}

impl Builder {
    /// The test identifiers, the demo app, every port free, `clock` for
    /// the emulator (share it with the gateway to move time in tests).
    pub fn new(clock: SharedClock) -> Builder {
        Builder {
            ids: Ids::TEST,
            gateway_port: 0,
            emulator_port: 0,
            demo_port: 0,
            public_url: None,
            upstream: Upstream::Demo,
            clock,
        }
    }

    pub fn ids(mut self, ids: Ids) -> Builder {
        self.ids = ids;
        self
    }

    /// Fixed ports (`dev`); 0 leaves one to choose.
    pub fn ports(mut self, gateway: u16, emulator: u16, demo: u16) -> Builder {
        (self.gateway_port, self.emulator_port, self.demo_port) = (gateway, emulator, demo);
        self
    }

    /// `server.public_url` instead of `http://localhost:<gateway port>`
    /// (an https origin, as behind a TLS terminator).
    pub fn public_url(mut self, url: Option<String>) -> Builder {
        self.public_url = url;
        self
    }

    pub fn upstream(mut self, upstream: Upstream) -> Builder {
        self.upstream = upstream;
        self
    }

    /// Generates the `.p8` key, starts the emulator (registering the key
    /// and the gateway's callback) and the demo app if asked.
    pub fn start(self) -> Result<Stack, Error> {
        let bind =
            |port: u16| TcpListener::bind(("127.0.0.1", port)).map_err(|e| Error::Bind(port, e));
        let port = match self.gateway_port {
            0 => free_port(),
            p => p,
        };
        // `localhost`, while the emulator is `127.0.0.1`: two different
        // sites, so a browser treats Apple's `form_post` as the cross-site
        // POST it is in production (only `SameSite=None` cookies travel).
        let public_url = self
            .public_url
            .unwrap_or_else(|| format!("http://localhost:{port}"));
        let key = SigningKey::random(&mut rand::thread_rng());
        let (demo, upstream) = match self.upstream {
            Upstream::Demo => {
                let demo = crate::demo::start(bind(self.demo_port)?)
                    .map_err(|e| Error::Bind(self.demo_port, e))?;
                let addr = demo.addr;
                (Some(demo), addr)
            }
            Upstream::At(addr) => (None, addr),
        };
        let listen = SocketAddr::from(([127, 0, 0, 1], port));
        let emulator = Emulator::start(
            bind(self.emulator_port)?,
            emulator::Options {
                clients: vec![emulator::Client::new(
                    self.ids.services_id,
                    self.ids.team_id,
                    self.ids.key_id,
                    *key.verifying_key(),
                    format!("{public_url}/oauth2/callback"),
                )],
                allow_insecure_redirects: true,
                clock: self.clock,
                // The admin page's consent revocation reaches the gateway
                // directly, whatever its public URL (https behind a TLS
                // terminator, in some tests).
                notify_url: Some(format!(
                    "http://{listen}{}",
                    config::DEFAULT_NOTIFICATIONS_PATH
                )),
            },
        )
        .map_err(Error::Emulator)?;
        Ok(Stack {
            ids: self.ids,
            listen,
            public_url,
            upstream,
            key,
            emulator,
            demo,
        })
    }
}

/// The parts around a gateway, running; they stop when dropped.
pub struct Stack {
    pub ids: Ids,
    /// Where the gateway is to listen.
    pub listen: SocketAddr,
    /// The gateway's public URL.
    pub public_url: String,
    /// Where its routes go.
    pub upstream: SocketAddr,
    /// The key registered at the emulator.
    pub key: SigningKey,
    pub emulator: Emulator,
    /// The demo app, when it is the upstream.
    pub demo: Option<httpd::Handle>,
}

impl Stack {
    /// `toml` completed for this stack: `server.listen`,
    /// `server.public_url`, the `[apple]` identifiers and `base_url` set,
    /// and `{upstream}` replaced by the upstream's address. Panics if
    /// `toml` is not TOML: callers pass their own fixed text.
    pub fn toml(&self, toml: &str) -> String {
        let mut table: toml::Table = toml
            .replace("{upstream}", &self.upstream.to_string())
            .parse()
            .unwrap_or_else(|e| panic!("kit config is not TOML: {e}\n{toml}"));
        let ids = self.ids;
        for (section, key, value) in [
            ("server", "listen", self.listen.to_string()),
            ("server", "public_url", self.public_url.clone()),
            ("apple", "team_id", ids.team_id.into()),
            ("apple", "services_id", ids.services_id.into()),
            ("apple", "key_id", ids.key_id.into()),
            ("apple", "base_url", self.emulator.base_url().into()),
        ] {
            set(&mut table, section, key, value);
        }
        table.to_string()
    }

    /// The gateway's config: [`Self::toml`], validated with `secrets`.
    pub fn config(&self, toml: &str, secrets: &Secrets) -> Result<Config, ConfigError> {
        config(&self.toml(toml), secrets)
    }

    /// Secrets with the key registered at the emulator.
    pub fn secrets(&self) -> Secrets {
        Secrets::new(self.key.clone())
    }
}

/// Test only: makes `config`'s login-state cookie `SameSite=Lax`, the
/// mistake that loses Apple's cross-site `form_post` in a real browser (the
/// negative control of `tests/peers/chromium.rs`). No config file can ask
/// for it.
#[doc(hidden)]
pub fn break_login_cookie(config: &mut Config) {
    config.session.login_cookie_lax = true;
}

/// Sets `section.key`, creating the section.
pub fn set(table: &mut toml::Table, section: &str, key: &str, value: String) {
    let entry = table
        .entry(section)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(s) = entry {
        s.insert(key.into(), value.into());
    }
}
