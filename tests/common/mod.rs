//! The test stack: the real gateway (pingora, in process), the Apple
//! emulator and the demo upstream, each on its own ephemeral port, talking
//! real HTTP over loopback.

#![allow(dead_code)]

pub mod browser;
pub mod raw;
pub mod ws;

use std::path::PathBuf;
use std::sync::Arc;

use applegate::clock::{Clock, ManualClock, SharedClock, SystemClock};
use applegate::config::Config;
use applegate::emulator::Emulator;
use applegate::kit::{self, Builder, Ids, Secrets, Upstream};
use applegate::{httpd, server};
use p256::ecdsa::SigningKey;

#[allow(unused_imports)]
pub use applegate::kit::free_port;
#[allow(unused_imports)]
pub use browser::{Browser, Nav, Person};

pub const TEAM_ID: &str = Ids::TEST.team_id;
pub const KEY_ID: &str = Ids::TEST.key_id;
pub const SERVICES_ID: &str = Ids::TEST.services_id;

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
    /// Extra keys for the [log] section (e.g. `access_file`).
    pub log_toml: String,
    /// `server.public_url` instead of `http://localhost:<port>` (an https
    /// origin, as behind a TLS terminator; the scripted browser then cannot
    /// follow it, raw requests can).
    pub public_url: Option<String>,
    /// `[rate_limit] sign_in_per_client`: high by default, since tests sign
    /// in many times a second from one loopback address.
    pub sign_in_per_client: u32,
    /// `[rate_limit] apple_token_calls`, high by default for the same reason.
    pub apple_token_calls: u32,
    /// The login-state cookie `SameSite=Lax` ([`kit::break_login_cookie`]):
    /// the negative control of the real-browser tests.
    pub break_login_cookie: bool,
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
            log_toml: String::new(),
            public_url: None,
            sign_in_per_client: 100_000,
            apple_token_calls: 100_000,
            break_login_cookie: false,
        }
    }
}

/// A running stack.
pub struct Stack {
    pub gateway: server::Running,
    pub emulator: Emulator,
    /// The demo app, unless the routes go to another upstream.
    pub demo: Option<httpd::Handle>,
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
        let kit = Builder::new(opts.clock.clone())
            .public_url(opts.public_url.clone())
            .upstream(opts.upstream.map_or(Upstream::Demo, Upstream::At))
            .start()
            .unwrap();
        let toml = format!(
            r#"
[server]
threads = 1
grace_period = "0s"
{server_extra}

[apple]
keys_refetch_interval = "1s"
{apple_extra}

[log]
level = "warn"
{log_extra}

[rate_limit]
sign_in_per_client = {sign_in_per_client}
sign_in_total = 100000
apple_token_calls = {apple_token_calls}

{extra}

{routes}
[[routes]]
path = "/"
auth = "{root_auth}"
upstream = "http://{{upstream}}"
"#,
            root_auth = opts.root_auth,
            server_extra = opts.server_toml,
            log_extra = opts.log_toml,
            sign_in_per_client = opts.sign_in_per_client,
            apple_token_calls = opts.apple_token_calls,
            extra = opts.extra_toml,
            apple_extra = opts.apple_toml,
            routes = opts
                .routes
                .iter()
                .map(|(p, auth)| format!(
                    "[[routes]]\npath = \"{p}\"\nauth = \"{auth}\"\nupstream = \"http://{{upstream}}\"\n"
                ))
                .collect::<String>(),
        );
        let secrets = Secrets {
            // A key the emulator does not know, to provoke `invalid_client`.
            apple_key: if opts.wrong_key {
                SigningKey::random(&mut rand::thread_rng())
            } else {
                kit.key.clone()
            },
            session: opts.session_secret.clone(),
        };
        let mut config = kit
            .config(&toml, &secrets)
            .unwrap_or_else(|e| panic!("test config: {e}\n{}", kit.toml(&toml)));
        if opts.break_login_cookie {
            kit::break_login_cookie(&mut config);
        }
        let gateway = server::spawn(&config, opts.clock).unwrap();
        let kit::Stack {
            public_url: url,
            key,
            emulator,
            demo,
            ..
        } = kit;
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
