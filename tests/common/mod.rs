//! The test stack: the real gateway (pingora, in process), the Apple
//! emulator and the demo upstream, each on its own ephemeral port, talking
//! real HTTP over loopback.

#![allow(dead_code)]

pub mod browser;
pub mod raw;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use applegate::clock::{Clock, ManualClock, SharedClock, SystemClock};
use applegate::config::{self, Config};
use applegate::emulator::{self, Emulator};
use applegate::{demo, httpd, server};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey, LineEnding};

#[allow(unused_imports)]
pub use browser::{Browser, Nav, Person};

pub const TEAM_ID: &str = "TEAM123456";
pub const KEY_ID: &str = "KEY1234567";
pub const SERVICES_ID: &str = "com.example.web";

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the shared test data beside the repository (`../shared`).
pub fn shared(path: &str) -> PathBuf {
    let p = root().join("..").join("shared").join(path);
    assert!(
        p.exists(),
        "test data {} is missing: the repository expects ../shared beside it",
        p.display()
    );
    p
}

/// A free loopback port for a server that binds it itself (pingora).
/// Chosen below the kernel's ephemeral range (32768+), so no `:0` bind or
/// outgoing connection of a test running beside this one can take it
/// between our check and pingora's bind.
pub fn free_port() -> u16 {
    loop {
        let port = 20_000 + rand::random::<u16>() % 12_000;
        if (0..3).all(|i| TcpListener::bind(("127.0.0.1", port + i)).is_ok()) {
            return port;
        }
    }
}

/// How to build a stack.
pub struct Options {
    /// Extra TOML appended to the generated config (e.g. a [policy]).
    pub extra_toml: String,
    /// Extra routes to the demo app: (path prefix, auth mode).
    pub routes: Vec<(&'static str, &'static str)>,
    /// Extra keys for the [apple] section.
    pub apple_toml: String,
    /// The clock shared by gateway and emulator.
    pub clock: SharedClock,
    /// Session secrets (one per line), first seals.
    pub session_secret: String,
    /// Sign client secrets with this key instead of the one registered at
    /// the emulator (to provoke `invalid_client`).
    pub wrong_key: bool,
    /// Send every route to this upstream instead of the demo app;
    /// `{upstream}` in `extra_toml` is replaced by the upstream's address.
    pub upstream: Option<std::net::SocketAddr>,
    /// `auth` of the catch-all route `/`.
    pub root_auth: &'static str,
    /// Extra keys for the [server] section.
    pub server_toml: String,
    /// `server.public_url` instead of `http://localhost:<port>` (an https
    /// origin, as behind a TLS terminator; the scripted browser then cannot
    /// follow it, raw requests can).
    pub public_url: Option<String>,
    /// `[rate_limit] sign_in_per_client`: high by default, since tests sign
    /// in many times a second from one loopback address.
    pub sign_in_per_client: u32,
    /// `[rate_limit] apple_token_calls`, high by default for the same reason.
    pub apple_token_calls: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            extra_toml: String::new(),
            routes: Vec::new(),
            apple_toml: String::new(),
            clock: Arc::new(SystemClock),
            session_secret: "b0f1c2a3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5"
                .into(),
            wrong_key: false,
            upstream: None,
            root_auth: "required",
            server_toml: String::new(),
            public_url: None,
            sign_in_per_client: 100_000,
            apple_token_calls: 100_000,
        }
    }
}

/// A running stack.
pub struct Stack {
    pub gateway: server::Running,
    pub emulator: Emulator,
    pub demo: httpd::Handle,
    pub config: Config,
    /// `http://localhost:<port>`: the gateway's public URL.
    pub url: String,
    pub key: SigningKey,
}

impl Stack {
    pub fn start() -> Stack {
        Stack::with(Options::default())
    }

    pub fn with(opts: Options) -> Stack {
        let key = SigningKey::random(&mut rand::thread_rng());
        let port = free_port();
        let url = opts
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://localhost:{port}"));
        let demo = demo::start(TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        let upstream = opts.upstream.unwrap_or(demo.addr);
        let emulator = Emulator::start_local(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            emulator::Client::new(
                SERVICES_ID,
                TEAM_ID,
                KEY_ID,
                *key.verifying_key(),
                format!("{url}/oauth2/callback"),
            ),
            opts.clock.clone(),
        )
        .unwrap();
        let toml = format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "{url}"
threads = 1
grace_period = "0s"
{server_extra}

[apple]
team_id = "{TEAM_ID}"
services_id = "{SERVICES_ID}"
key_id = "{KEY_ID}"
base_url = "{base}"
keys_refetch_interval = "1s"
{apple_extra}

[log]
level = "warn"

[rate_limit]
sign_in_per_client = {sign_in_per_client}
sign_in_total = 100000
apple_token_calls = {apple_token_calls}

{extra}

{routes}
[[routes]]
path = "/"
auth = "{root_auth}"
upstream = "http://{demo}"
"#,
            base = emulator.base_url(),
            demo = upstream,
            root_auth = opts.root_auth,
            server_extra = opts.server_toml,
            sign_in_per_client = opts.sign_in_per_client,
            apple_token_calls = opts.apple_token_calls,
            extra = opts.extra_toml.replace("{upstream}", &upstream.to_string()),
            apple_extra = opts.apple_toml,
            routes = opts
                .routes
                .iter()
                .map(|(p, auth)| format!(
                    "[[routes]]\npath = \"{p}\"\nauth = \"{auth}\"\nupstream = \"http://{}\"\n",
                    upstream
                ))
                .collect::<String>(),
        );
        let signing = if opts.wrong_key {
            SigningKey::random(&mut rand::thread_rng())
        } else {
            key.clone()
        };
        let pem = signing.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let secret = opts.session_secret.clone();
        let env = move |name: &str| match name {
            config::ENV_APPLE_PRIVATE_KEY => Some(pem.clone()),
            config::ENV_SESSION_SECRET => Some(secret.clone()),
            _ => None,
        };
        let config = Config::from_toml(&toml, Path::new("."), &env)
            .unwrap_or_else(|e| panic!("test config: {e}\n{toml}"));
        let gateway = server::spawn(&config, opts.clock).unwrap();
        Stack {
            gateway,
            emulator,
            demo,
            config,
            url,
            key,
        }
    }

    /// A URL on the gateway.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Signs `b` in as `email` from `/oauth2/start?rd=/`; the final page.
    pub async fn sign_in(&self, b: &mut Browser, email: &str) -> browser::Page {
        b.sign_in(&self.at("/oauth2/start?rd=/"), &Person::new(email))
            .await
    }

    /// As [`Self::sign_in`], stopping at the callback's answer.
    pub async fn sign_in_steps(&self, b: &mut Browser, email: &str) -> browser::SignIn {
        b.sign_in_steps(&self.at("/oauth2/start?rd=/"), &Person::new(email))
            .await
    }

    /// The session cookie's name.
    pub fn session_cookie(&self) -> &str {
        &self.config.session.cookie_name
    }
}

/// A manual clock at the real current time.
pub fn manual_clock() -> Arc<ManualClock> {
    ManualClock::at(SystemClock.now())
}
