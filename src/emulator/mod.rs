//! The Apple emulator: Sign in with Apple on localhost, as strict as Apple.
//!
//! `dev` mode and the tests point the gateway's `apple.base_url` here. It
//! serves Apple's endpoints with Apple's rules (see DESIGN.md, Testing):
//!
//! - `GET /auth/authorize`: a page a person can use (pick an email, a name,
//!   hide-my-email) that auto-submits the `form_post` to the Return URL;
//!   cancel posts `error=user_cancelled_authorize`. Unknown `client_id`,
//!   unregistered `redirect_uri`, and `name`/`email` scopes without
//!   `response_mode=form_post` are refused as Apple refuses them.
//! - `POST /auth/token`: verifies the ES256 client secret (raw r‖s
//!   signature under the registered public key, `kid`, `iss`, `sub`, `aud`,
//!   lifetime ≤ 15777000 s); codes are bound to `client_id` and
//!   `redirect_uri`, single use, and live 5 minutes; errors are Apple's JSON.
//! - `GET /auth/keys`: the RS256 keys, rotated with [`Emulator::rotate_keys`],
//!   with a `Cache-Control: max-age` ([`Emulator::set_keys_max_age`]).
//! - `POST /auth/revoke`.
//! - Server-to-server notifications, signed like its id_tokens and sent
//!   to the gateway ([`Emulator::notification`]).
//!
//! id_tokens carry booleans as strings, and the `user` field comes only on
//! a user's first consent to a client. [`Emulator::tamper_next_token`] makes
//! the next exchange return a bad id_token, to test the gateway's checks.

mod admin;
mod authorize;
mod grants;
pub mod keys;
mod notify;
mod token;

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use p256::ecdsa::VerifyingKey;

use crate::clock::SharedClock;
use crate::httpd::{self, Reply, Request};
use keys::Keys;

/// The `max-age` of `/auth/keys` answers unless set: clients may cache
/// the keys, unlike every other answer here.
pub const KEYS_MAX_AGE: u64 = 3_600;

/// A registered Services ID (an OAuth client) and its key.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub team_id: String,
    pub key_id: String,
    /// The public half of the `.p8` key the client secret is signed with.
    pub public_key: VerifyingKey,
    /// Registered Return URLs; the exact `redirect_uri` must be one of them.
    pub redirect_uris: Vec<String>,
}

impl Client {
    /// A client with one Return URL.
    pub fn new(
        client_id: &str,
        team_id: &str,
        key_id: &str,
        public_key: VerifyingKey,
        redirect_uri: String,
    ) -> Self {
        Client {
            client_id: client_id.into(),
            team_id: team_id.into(),
            key_id: key_id.into(),
            public_key,
            redirect_uris: vec![redirect_uri],
        }
    }
}

/// How the emulator behaves.
#[derive(Debug, Clone)]
pub struct Options {
    pub clients: Vec<Client>,
    /// Allow `http` and `localhost` Return URLs. Apple never does; `dev`
    /// mode and tests need it.
    pub allow_insecure_redirects: bool,
    pub clock: SharedClock,
    /// The gateway's notification endpoint, where the admin page sends
    /// `consent-revoked` (`dev`); `None`: the page only ends the grants.
    pub notify_url: Option<String>,
}

/// A bad id_token for the next code exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    WrongNonce,
    WrongAudience,
    WrongIssuer,
    Expired,
    /// `alg: none`, no signature.
    AlgNone,
    /// Signed by a key that `/auth/keys` does not publish.
    UnknownKey,
    /// One signature byte changed.
    BadSignature,
}

/// Request counters, to prove the gateway caches.
#[derive(Debug, Default)]
struct Counters {
    authorize: AtomicU64,
    token: AtomicU64,
    keys: AtomicU64,
    revoke: AtomicU64,
}

/// A snapshot of what the emulator was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hits {
    pub authorize: u64,
    pub token: u64,
    pub keys: u64,
    pub revoke: u64,
    /// Distinct client secrets presented to the token endpoint.
    pub client_secrets: usize,
}

/// A code or refresh token grant.
#[derive(Debug, Clone)]
struct Grant {
    client_id: String,
    redirect_uri: String,
    user: User,
    nonce: Option<String>,
    issued_at: u64,
    used: bool,
}

/// A user as the emulator's page made them.
#[derive(Debug, Clone)]
struct User {
    sub: String,
    email: String,
    is_private: bool,
}

/// Mutable emulator state; one lock, because every handler is short.
struct State {
    keys: Keys,
    codes: HashMap<String, Grant>,
    grants: grants::Grants,
    /// (client_id, sub) pairs that have consented: `user` is sent once.
    consented: HashSet<(String, String)>,
    client_secrets: HashSet<String>,
    /// Every code and token handed out, for tests that check none leaks.
    issued: Vec<String>,
    tamper: Option<Tamper>,
}

struct Shared {
    base_url: String,
    opts: Options,
    /// The `max-age` of `/auth/keys` answers, in seconds.
    keys_max_age: AtomicU64,
    counters: Counters,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Handlers do not panic while holding the lock; if one did, the
        // state is still consistent enough for an emulator.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn client(&self, client_id: &str) -> Option<&Client> {
        self.opts.clients.iter().find(|c| c.client_id == client_id)
    }
}

/// A running emulator; stops when dropped.
pub struct Emulator {
    shared: Arc<Shared>,
    handle: httpd::Handle,
}

/// Why the emulator refused its options.
#[derive(Debug)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupError {}

impl Emulator {
    /// Starts the emulator on `listener`; its base URL is
    /// `http://<listener address>`.
    pub fn start(listener: TcpListener, opts: Options) -> Result<Emulator, SetupError> {
        for c in &opts.clients {
            for uri in &c.redirect_uris {
                check_redirect_uri(uri, opts.allow_insecure_redirects)?;
            }
        }
        let addr = listener
            .local_addr()
            .map_err(|e| SetupError(e.to_string()))?;
        let shared = Arc::new(Shared {
            base_url: format!("http://{addr}"),
            opts,
            keys_max_age: AtomicU64::new(KEYS_MAX_AGE),
            counters: Counters::default(),
            state: Mutex::new(State {
                keys: Keys::new(),
                codes: HashMap::new(),
                grants: grants::Grants::default(),
                consented: HashSet::new(),
                client_secrets: HashSet::new(),
                issued: Vec::new(),
                tamper: None,
            }),
        });
        let s = shared.clone();
        let handle = httpd::spawn(
            "apple-emulator",
            listener,
            Arc::new(move |req| route(&s, req)),
        )
        .map_err(|e| SetupError(e.to_string()))?;
        Ok(Emulator { shared, handle })
    }

    /// Starts an emulator for one client on `listener`, allowing http and
    /// localhost Return URLs (`dev` mode, tests, benchmarks).
    pub fn start_local(
        listener: TcpListener,
        client: Client,
        clock: SharedClock,
    ) -> Result<Emulator, SetupError> {
        Emulator::start(
            listener,
            Options {
                clients: vec![client],
                allow_insecure_redirects: true,
                clock,
                notify_url: None,
            },
        )
    }

    /// The base URL to put in `apple.base_url`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The listening address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.handle.addr
    }

    /// What the emulator was asked so far.
    pub fn hits(&self) -> Hits {
        let c = &self.shared.counters;
        Hits {
            authorize: c.authorize.load(Ordering::SeqCst),
            token: c.token.load(Ordering::SeqCst),
            keys: c.keys.load(Ordering::SeqCst),
            revoke: c.revoke.load(Ordering::SeqCst),
            client_secrets: self.shared.state().client_secrets.len(),
        }
    }

    /// Every secret that crossed the emulator: codes, access, refresh and
    /// id tokens it issued, and client secrets it was shown.
    pub fn secrets_seen(&self) -> Vec<String> {
        let st = self.shared.state();
        st.issued
            .iter()
            .chain(st.client_secrets.iter())
            .cloned()
            .collect()
    }

    /// Signs new tokens with a new key (old keys stay published); returns its kid.
    pub fn rotate_keys(&self) -> String {
        self.shared.state().keys.rotate()
    }

    /// The `max-age` that `/auth/keys` answers carry from now on.
    pub fn set_keys_max_age(&self, secs: u64) {
        self.shared.keys_max_age.store(secs, Ordering::SeqCst);
    }

    /// The kid new tokens are signed with.
    pub fn current_kid(&self) -> String {
        self.shared.state().keys.current().kid.clone()
    }

    /// Makes the next code exchange return a bad id_token.
    pub fn tamper_next_token(&self, t: Tamper) {
        self.shared.state().tamper = Some(t);
    }

    /// The `sub` the emulator gives the user who signs in as `email`.
    pub fn sub_of(&self, email: &str) -> String {
        let team = self.shared.opts.clients.first().map(|c| c.team_id.as_str());
        authorize::sub_for(team.unwrap_or_default(), email)
    }

    /// The user `sub` stops using Sign in with Apple with the app: every
    /// grant of theirs ends (their refresh tokens get `invalid_grant`) and
    /// their next sign-in is a first consent again. Sends nothing: see
    /// [`Self::notification`]. How many grants ended.
    pub fn revoke_consent(&self, sub: &str) -> usize {
        revoke_consent(&self.shared, sub)
    }

    /// Signs arbitrary claims with the current key (for tests of the verifier).
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        self.shared.state().keys.current().sign(claims)
    }
}

fn revoke_consent(s: &Shared, sub: &str) -> usize {
    let mut st = s.state();
    st.consented.retain(|(_, user)| user != sub);
    st.grants.revoke_user(sub)
}

/// Apple accepts only https Return URLs on a domain name.
fn check_redirect_uri(uri: &str, allow_insecure: bool) -> Result<(), SetupError> {
    let url =
        url::Url::parse(uri).map_err(|_| SetupError(format!("Return URL {uri:?} is not a URL")))?;
    if allow_insecure {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default();
    let is_ip = host
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok();
    if url.scheme() != "https" || is_ip || host == "localhost" || host.ends_with(".localhost") {
        return Err(SetupError(format!(
            "Return URL {uri:?} refused: Apple accepts only https URLs on a domain name (no localhost or IP address)"
        )));
    }
    Ok(())
}

fn route(s: &Shared, req: Request) -> Reply {
    let reply = match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/auth/authorize") => {
            s.counters.authorize.fetch_add(1, Ordering::Relaxed);
            authorize::page(s, &req)
        }
        ("POST", "/auth/authorize") => authorize::decide(s, &req),
        ("POST", "/auth/token") => {
            s.counters.token.fetch_add(1, Ordering::Relaxed);
            token::token(s, &req)
        }
        ("POST", "/auth/revoke") => {
            s.counters.revoke.fetch_add(1, Ordering::Relaxed);
            token::revoke(s, &req)
        }
        ("GET", "/admin") => admin::page(s),
        ("POST", "/admin/revoke-consent") => admin::revoke_consent(s, &req),
        ("GET", "/auth/keys") => {
            s.counters.keys.fetch_add(1, Ordering::Relaxed);
            let max_age = s.keys_max_age.load(Ordering::SeqCst);
            return Reply::json(200, &s.state().keys.document())
                .header("Cache-Control", &format!("max-age={max_age}"));
        }
        _ => Reply::new(404, "text/plain", "not found"),
    };
    reply.header("Cache-Control", "no-store")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_mode_refuses_what_apple_refuses() {
        for bad in [
            "http://app.example.com/cb",
            "https://localhost/cb",
            "https://127.0.0.1/cb",
            "https://[::1]/cb",
        ] {
            assert!(check_redirect_uri(bad, false).is_err(), "{bad}");
            assert!(check_redirect_uri(bad, true).is_ok(), "{bad} in dev");
        }
        assert!(check_redirect_uri("https://app.example.com/oauth2/callback", false).is_ok());
    }
}
