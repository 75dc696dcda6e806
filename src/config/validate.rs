//! From the file mirror to the typed [`Config`], collecting every problem.
//!
//! The validator never stops at the first error: each section is read on
//! its own, a bad key is set aside and the section read again, and each
//! semantic check adds to one list. Every [`Problem`] names its key path and
//! says what was expected, so one run of `applegate check` shows the operator
//! all there is to fix.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use p256::pkcs8::DecodePrivateKey;
use serde::de::DeserializeOwned;

use super::file::{self, SECTIONS};
use super::*;

/// One thing wrong with the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `apple.team_id` or `routes[0].upstream`; empty
    /// for problems with the file as a whole.
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Parses `30s`, `10m`, `12h`, `7d` (a whole number and one unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        format!("expected a duration such as \"30s\", \"10m\", \"12h\" or \"7d\", found {text:?}")
    })?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(|| {
        format!("expected a duration such as \"30s\", \"10m\", \"12h\" or \"7d\", found {text:?}")
    })?;
    Ok(Duration::from_secs(secs))
}

struct Validator<'a> {
    problems: Vec<Problem>,
    warnings: Vec<String>,
    base_dir: &'a Path,
    env: EnvLookup<'a>,
}

/// Validates `text`; see [`Config::from_toml`].
pub fn validate(text: &str, base_dir: &Path, env: EnvLookup<'_>) -> Result<Config, Vec<Problem>> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| vec![Problem::new("", format!("invalid TOML: {e}"))])?;
    let mut v = Validator {
        problems: Vec::new(),
        warnings: Vec::new(),
        base_dir,
        env,
    };
    for key in table.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            v.problem(
                key,
                format!("unknown section; expected one of {}", SECTIONS.join(", ")),
            );
        }
    }
    let server: file::ServerSection = v.section(&table, "server");
    let apple: file::AppleSection = v.section(&table, "apple");
    let session: file::SessionSection = v.section(&table, "session");
    let revocation: file::RevocationSection = v.section(&table, "revocation");
    let rate_limit: file::RateLimitSection = v.section(&table, "rate_limit");
    let policy: file::PolicySection = v.section(&table, "policy");
    let log: file::LogSection = v.section(&table, "log");

    let server = v.server(server);
    let apple = v.apple(apple);
    let session = v.session(session, server.as_ref().map(|s| &s.public_url));
    let revocation = Revocation {
        file: revocation.file.map(|f| v.path(&f)),
    };
    let policy = v.policy(policy);
    let log = v.log(log);
    let rate_limit = v.rate_limit(rate_limit);
    let slashes = server
        .as_ref()
        .map_or(EncodedSlashes::Reject, |s| s.encoded_slashes);
    let routes = v.routes(&table, slashes);

    match (server, apple, session) {
        (Some(server), Some(apple), Some(session)) if v.problems.is_empty() => Ok(Config {
            server,
            apple,
            session,
            revocation,
            rate_limit,
            policy,
            routes,
            log,
            warnings: v.warnings,
        }),
        _ => Err(v.problems),
    }
}

impl Validator<'_> {
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(key, message));
    }

    /// A path from the config, relative to the config file's directory.
    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// Reads table `name` into its mirror. A key that does not fit is
    /// reported and removed, and the rest read again, so all bad keys of a
    /// section are reported together.
    fn section<T: DeserializeOwned + Default>(&mut self, top: &toml::Table, name: &str) -> T {
        match top.get(name) {
            None => T::default(),
            Some(toml::Value::Table(t)) => self.table_into(t.clone(), name),
            Some(other) => {
                self.problem(
                    name,
                    format!("expected a table [{name}], found {}", other.type_str()),
                );
                T::default()
            }
        }
    }

    fn table_into<T: DeserializeOwned + Default>(&mut self, mut t: toml::Table, path: &str) -> T {
        // Each round removes one key, so this ends after at most `len` rounds.
        for _ in 0..=t.len() {
            match toml::Value::Table(t.clone()).try_into::<T>() {
                Ok(v) => return v,
                Err(e) => {
                    let (key, message) = split_serde_error(&e.to_string());
                    match key.filter(|k| t.contains_key(k)) {
                        Some(k) => {
                            self.problem(format!("{path}.{k}"), message);
                            t.remove(&k);
                        }
                        None => {
                            self.problem(path, message);
                            return T::default();
                        }
                    }
                }
            }
        }
        T::default()
    }

    fn routes(&mut self, top: &toml::Table, slashes: EncodedSlashes) -> Vec<Route> {
        let items = match top.get("routes") {
            None => {
                self.problem(
                    "routes",
                    "missing; add at least one [[routes]] with path and upstream",
                );
                return Vec::new();
            }
            Some(toml::Value::Array(items)) => items.clone(),
            Some(other) => {
                self.problem(
                    "routes",
                    format!("expected [[routes]] tables, found {}", other.type_str()),
                );
                return Vec::new();
            }
        };
        if items.is_empty() {
            self.problem("routes", "empty; add at least one [[routes]]");
        }
        let mut routes = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let key = format!("routes[{i}]");
            let toml::Value::Table(t) = item else {
                self.problem(&key, "expected a table");
                continue;
            };
            let r: file::RouteSection = self.table_into(t, &key);
            if let Some(route) = self.route(r, &key, slashes) {
                routes.push(route);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, r) in routes.iter().enumerate() {
            if !seen.insert((r.host.clone(), r.port, r.path.clone())) {
                self.problem(
                    format!("routes[{i}]"),
                    format!(
                        "duplicate route for host {}{} and path {:?}",
                        r.host.as_deref().unwrap_or("*"),
                        r.port.map(|p| format!(":{p}")).unwrap_or_default(),
                        r.path
                    ),
                );
            }
        }
        routes
    }

    fn route(
        &mut self,
        r: file::RouteSection,
        key: &str,
        slashes: EncodedSlashes,
    ) -> Option<Route> {
        let problems_before = self.problems.len();
        let path = r.path.unwrap_or_else(|| "/".to_string());
        // Prefixes are compared with canonical request paths, so they must be
        // canonical themselves, and made of characters that no reading of a
        // path decodes differently (letters, digits, `-._~` and `/`).
        let plain = path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~'));
        let canonical =
            crate::canonical::path::canonicalize(&path).is_ok_and(|c| c.path == path.as_str());
        if !path.starts_with('/') || !plain || !canonical {
            self.problem(
                format!("{key}.path"),
                format!("expected a plain path prefix starting with \"/\" (letters, digits, -._~ and single slashes, no dot segments), found {path:?}"),
            );
        }
        if path.starts_with("/oauth2/") || path == "/oauth2" {
            self.problem(
                format!("{key}.path"),
                "/oauth2/ is where the gateway's own endpoints live; choose another path",
            );
        }
        let (host, port) = match r.host.as_deref() {
            None => (None, None),
            Some(h) => match crate::canonical::host::parse(h.as_bytes()) {
                Ok(c) => (Some(c.name.into_owned()), c.port),
                Err(_) => {
                    self.problem(
                        format!("{key}.host"),
                        format!("expected a host name, optionally with a port (\"app.example.com\", \"app.example.com:8443\"), without scheme or path, found {h:?}"),
                    );
                    (None, None)
                }
            },
        };
        let encoded_slashes = match r.encoded_slashes {
            None => slashes,
            Some(v) => self.encoded_slashes(&v, &format!("{key}.encoded_slashes")),
        };
        let auth = match r.auth.as_deref() {
            None | Some("required") => AuthMode::Required,
            Some("public") => AuthMode::Public,
            Some("bearer") => AuthMode::Bearer,
            Some(other) => {
                self.problem(
                    format!("{key}.auth"),
                    format!("expected \"required\", \"public\" or \"bearer\", found {other:?}"),
                );
                AuthMode::Required
            }
        };
        let connect_timeout = self.duration(
            r.connect_timeout,
            &format!("{key}.connect_timeout"),
            Duration::from_secs(5),
        );
        let read_timeout = self.duration(
            r.read_timeout,
            &format!("{key}.read_timeout"),
            Duration::from_secs(60),
        );
        let Some(upstream) = r.upstream else {
            self.problem(
                format!("{key}.upstream"),
                "missing; expected the app's URL, e.g. \"http://127.0.0.1:3000\"",
            );
            return None;
        };
        let upstream = self.upstream(&upstream, &format!("{key}.upstream"))?;
        if self.problems.len() > problems_before {
            return None;
        }
        Some(Route {
            host,
            port,
            path,
            encoded_slashes,
            upstream,
            auth,
            connect_timeout,
            read_timeout,
        })
    }

    fn upstream(&mut self, text: &str, key: &str) -> Option<Upstream> {
        let url = match url::Url::parse(text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
            _ => {
                self.problem(
                    key,
                    format!("expected an http:// or https:// URL such as \"http://127.0.0.1:3000\", found {text:?}"),
                );
                return None;
            }
        };
        if url.path() != "/" || url.query().is_some() {
            self.problem(
                key,
                format!("expected scheme, host and port only (requests keep their own path), found {text:?}"),
            );
            return None;
        }
        let tls = url.scheme() == "https";
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_string();
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        // Resolved once here: pingora's HttpPeer::new does a blocking lookup
        // and panics on failure, so peers are built from addresses at start.
        match (host.as_str(), port)
            .to_socket_addrs()
            .map(|mut a| a.next())
        {
            Ok(Some(addr)) => Some(Upstream {
                url: text.to_string(),
                addr,
                tls,
                sni: host,
            }),
            Ok(None) => {
                self.problem(key, format!("{host:?} resolves to no address"));
                None
            }
            Err(e) => {
                self.problem(key, format!("cannot resolve {host:?}: {e}"));
                None
            }
        }
    }

    fn encoded_slashes(&mut self, value: &str, key: &str) -> EncodedSlashes {
        match value {
            "reject" => EncodedSlashes::Reject,
            "keep" => EncodedSlashes::Keep,
            other => {
                self.problem(
                    key,
                    format!("expected \"reject\" or \"keep\", found {other:?}"),
                );
                EncodedSlashes::Reject
            }
        }
    }

    /// A whole number within `range` (inclusive), or `default` when unset.
    fn bounded(
        &mut self,
        value: Option<i64>,
        key: &str,
        what: &str,
        range: (i64, i64),
        default: usize,
    ) -> usize {
        match value {
            None => default,
            Some(n) if (range.0..=range.1).contains(&n) => n as usize,
            Some(n) => {
                self.problem(
                    key,
                    format!("expected {what} from {} to {}, found {n}", range.0, range.1),
                );
                default
            }
        }
    }

    fn rate_limit(&mut self, r: file::RateLimitSection) -> RateLimit {
        let mut rate = |v: Option<i64>, name: &str, default: usize| {
            self.bounded(
                v,
                &format!("rate_limit.{name}"),
                "a number of requests per second",
                (1, 1_000_000),
                default,
            ) as u32
        };
        RateLimit {
            sign_in_per_client: rate(r.sign_in_per_client, "sign_in_per_client", 10),
            sign_in_total: rate(r.sign_in_total, "sign_in_total", 1000),
            apple_token_calls: rate(r.apple_token_calls, "apple_token_calls", 100),
        }
    }

    fn duration(&mut self, value: Option<String>, key: &str, default: Duration) -> Duration {
        match value.map(|v| parse_duration(&v)) {
            None => default,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.problem(key, e);
                default
            }
        }
    }

    fn server(&mut self, s: file::ServerSection) -> Option<Server> {
        let listen = match s
            .listen
            .as_deref()
            .unwrap_or("0.0.0.0:8080")
            .parse::<SocketAddr>()
        {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(
                    "server.listen",
                    format!(
                        "expected an address and port such as \"0.0.0.0:8080\", found {:?}",
                        s.listen.unwrap_or_default()
                    ),
                );
                None
            }
        };
        let public_url = match s.public_url {
            None => {
                self.problem(
                    "server.public_url",
                    "missing; expected the external origin browsers use, e.g. \"https://app.example.com\"",
                );
                None
            }
            Some(u) => self.public_url(&u),
        };
        let threads = match s.threads {
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            Some(n) if (1..=1024).contains(&n) => n as usize,
            Some(n) => {
                self.problem(
                    "server.threads",
                    format!("expected a number of worker threads from 1 to 1024, found {n}"),
                );
                1
            }
        };
        let grace_period = self.duration(
            s.grace_period,
            "server.grace_period",
            Duration::from_secs(10),
        );
        let max_callback_body = match s.max_callback_body {
            None => 64 * 1024,
            Some(n) if (1024..=1024 * 1024).contains(&n) => n as usize,
            Some(n) => {
                self.problem(
                    "server.max_callback_body",
                    format!("expected a size in bytes from 1024 to 1048576, found {n}"),
                );
                0
            }
        };
        let read_buffer = match s.read_buffer {
            None => DEFAULT_READ_BUFFER,
            Some(n) if (0..=1024 * 1024).contains(&n) => n as usize,
            Some(n) => {
                self.problem(
                    "server.read_buffer",
                    format!("expected a size in bytes from 0 to 1048576, found {n}"),
                );
                0
            }
        };
        let encoded_slashes = match s.encoded_slashes {
            None => EncodedSlashes::Reject,
            Some(v) => self.encoded_slashes(&v, "server.encoded_slashes"),
        };
        let mut trusted_proxies = Vec::new();
        for (i, cidr) in s.trusted_proxies.unwrap_or_default().iter().enumerate() {
            // A bare address is a one-address network.
            let parsed = cidr
                .parse::<ipnet::IpNet>()
                .or_else(|_| cidr.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match parsed {
                Ok(net) => trusted_proxies.push(net.trunc()),
                Err(_) => self.problem(
                    format!("server.trusted_proxies[{i}]"),
                    format!("expected an address or CIDR such as \"10.0.0.0/8\" or \"::1\", found {cidr:?}"),
                ),
            }
        }
        let head_timeout = self.duration(
            s.head_timeout,
            "server.head_timeout",
            Duration::from_secs(10),
        );
        let keepalive_timeout = self.duration(
            s.keepalive_timeout,
            "server.keepalive_timeout",
            Duration::from_secs(60),
        );
        let max_head_size = self.bounded(
            s.max_head_size,
            "server.max_head_size",
            "a size in bytes",
            (1024, 1024 * 1024),
            32 * 1024,
        );
        let max_headers = self.bounded(
            s.max_headers,
            "server.max_headers",
            "a number of header fields",
            (8, 256),
            100,
        );
        let fd_limit = super::fd_limit();
        let max_connections = self.bounded(
            s.max_connections,
            "server.max_connections",
            "a number of connections",
            (1, 1_000_000),
            (fd_limit / 2).clamp(64, 10_000) as usize,
        );
        if max_connections as u64 > fd_limit * 9 / 10 {
            self.warnings.push(format!(
                "server.max_connections = {max_connections} is close to or above this process's file-descriptor limit ({fd_limit}); raise the limit (ulimit -n, LimitNOFILE=) or lower max_connections"
            ));
        }
        Some(Server {
            listen: listen?,
            read_buffer,
            encoded_slashes,
            trusted_proxies,
            head_timeout,
            max_head_size,
            max_headers,
            keepalive_timeout,
            max_connections,
            public_url: public_url?,
            threads,
            grace_period,
            max_callback_body,
        })
    }

    fn public_url(&mut self, text: &str) -> Option<PublicUrl> {
        let key = "server.public_url";
        let url = match url::Url::parse(text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
            _ => {
                self.problem(
                    key,
                    format!("expected an http(s) origin such as \"https://app.example.com\", found {text:?}"),
                );
                return None;
            }
        };
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            self.problem(
                key,
                format!("expected an origin without path, query or fragment (the callback is /oauth2/callback under it), found {text:?}"),
            );
            return None;
        }
        if !url.username().is_empty() || url.password().is_some() {
            self.problem(key, "expected no user name or password in the URL");
            return None;
        }
        let https = url.scheme() == "https";
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let origin = url.origin().ascii_serialization();
        let bare = host.trim_matches(['[', ']']);
        let is_ip = bare.parse::<IpAddr>().is_ok();
        let is_local = bare == "localhost" || bare.ends_with(".localhost");
        if !https || is_ip || is_local {
            self.warnings.push(format!(
                "server.public_url: Apple accepts only https Return URLs on a domain name (no http, localhost or IP address); {text:?} works with the emulator but not with Apple"
            ));
        }
        Some(PublicUrl {
            origin,
            host,
            https,
        })
    }

    fn apple(&mut self, a: file::AppleSection) -> Option<Apple> {
        let team_id = self.apple_id(a.team_id, "apple.team_id", "Team ID");
        let key_id = self.apple_id(a.key_id, "apple.key_id", "Key ID");
        let services_id = match a.services_id {
            Some(s)
                if !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') =>
            {
                Some(s)
            }
            Some(s) => {
                self.problem(
                    "apple.services_id",
                    format!("expected the Services ID (reverse-DNS style, e.g. \"com.example.web\"), found {s:?}"),
                );
                None
            }
            None => {
                self.problem(
                    "apple.services_id",
                    "missing; expected the Services ID from Certificates, Identifiers & Profiles (e.g. \"com.example.web\"); it is the OAuth client_id",
                );
                None
            }
        };
        let private_key = self.private_key(a.private_key_file);
        let u = a.base_url.as_deref().unwrap_or(APPLE_BASE_URL);
        let base_url = match url::Url::parse(u) {
            Ok(p)
                if matches!(p.scheme(), "http" | "https")
                    && p.host_str().is_some()
                    && p.query().is_none() =>
            {
                Some(u.trim_end_matches('/').to_string())
            }
            _ => {
                self.problem(
                    "apple.base_url",
                    format!("expected a URL such as \"https://appleid.apple.com\", found {u:?}"),
                );
                None
            }
        };
        if let Some(b) = &base_url {
            if b != APPLE_BASE_URL {
                self.warnings.push(format!(
                    "apple.base_url: {b:?} is not Apple ({APPLE_BASE_URL}); fine for the emulator, wrong for production"
                ));
            }
        }
        let scopes = a
            .scopes
            .unwrap_or_else(|| vec!["name".into(), "email".into()]);
        for s in &scopes {
            if s != "name" && s != "email" {
                self.problem(
                    "apple.scopes",
                    format!("expected a list of \"name\" and \"email\", found {s:?}"),
                );
            }
        }
        let timeout = self.duration(a.timeout, "apple.timeout", Duration::from_secs(10));
        let client_secret_lifetime = self.duration(
            a.client_secret_lifetime,
            "apple.client_secret_lifetime",
            Duration::from_secs(86_400),
        );
        if client_secret_lifetime > MAX_CLIENT_SECRET_LIFETIME
            || client_secret_lifetime < Duration::from_secs(120)
        {
            self.problem(
                "apple.client_secret_lifetime",
                "expected between 2 minutes and 15777000 seconds (Apple's limit of six months), e.g. \"1d\"",
            );
        }
        let keys_refetch_interval = self.duration(
            a.keys_refetch_interval,
            "apple.keys_refetch_interval",
            Duration::from_secs(60),
        );
        let bundle_ids = a.bundle_ids.unwrap_or_default();
        for b in &bundle_ids {
            if b.is_empty()
                || !b
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                self.problem(
                    "apple.bundle_ids",
                    format!("expected app bundle IDs such as \"com.example.app\", found {b:?}"),
                );
            }
        }
        let leeway = self.duration(a.leeway, "apple.leeway", Duration::from_secs(60));
        if leeway > Duration::from_secs(300) {
            self.problem(
                "apple.leeway",
                "expected at most \"5m\" of clock-skew leeway",
            );
        }
        Some(Apple {
            team_id: team_id?,
            services_id: services_id?,
            key_id: key_id?,
            private_key: private_key?,
            base_url: base_url?,
            scopes,
            timeout,
            client_secret_lifetime,
            keys_refetch_interval,
            leeway,
            bundle_ids,
        })
    }

    /// Team ID and Key ID: ten upper-case letters and digits.
    fn apple_id(&mut self, value: Option<String>, key: &str, what: &str) -> Option<String> {
        match value {
            Some(v)
                if v.len() == 10
                    && v.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) =>
            {
                Some(v)
            }
            Some(v) => {
                self.problem(
                    key,
                    format!("expected the 10-character {what} (upper-case letters and digits, e.g. \"ABCDE12345\"), found {v:?}"),
                );
                None
            }
            None => {
                self.problem(
                    key,
                    format!(
                        "missing; expected the 10-character {what} from Apple's developer portal"
                    ),
                );
                None
            }
        }
    }

    fn private_key(&mut self, file: Option<String>) -> Option<Secret<p256::ecdsa::SigningKey>> {
        let key = "apple.private_key_file";
        let from_env = (self.env)(ENV_APPLE_PRIVATE_KEY);
        let (pem, source) = match (file, from_env) {
            (Some(_), Some(_)) => {
                self.problem(
                    key,
                    format!("set both here and in {ENV_APPLE_PRIVATE_KEY}; keep one so it is clear which key is used"),
                );
                return None;
            }
            (Some(f), None) => {
                let path = self.path(&f);
                match std::fs::read_to_string(&path) {
                    Ok(text) => (text, format!("{:?}", path.display().to_string())),
                    Err(e) => {
                        self.problem(
                            key,
                            format!("cannot read {:?}: {e}", path.display().to_string()),
                        );
                        return None;
                    }
                }
            }
            (None, Some(text)) => (text, ENV_APPLE_PRIVATE_KEY.to_string()),
            (None, None) => {
                self.problem(
                    key,
                    format!("missing; expected the path of the AuthKey_<KeyID>.p8 file from Apple (or its PEM text in {ENV_APPLE_PRIVATE_KEY})"),
                );
                return None;
            }
        };
        match p256::ecdsa::SigningKey::from_pkcs8_pem(pem.trim()) {
            Ok(k) => Some(Secret::new(k)),
            Err(_) => {
                self.problem(
                    key,
                    format!("{source} is not a P-256 private key in PKCS#8 PEM (the .p8 file Apple lets you download once, starting with \"-----BEGIN PRIVATE KEY-----\")"),
                );
                None
            }
        }
    }

    fn session(
        &mut self,
        s: file::SessionSection,
        public_url: Option<&PublicUrl>,
    ) -> Option<Session> {
        let secure = public_url.is_some_and(|u| u.https);
        let keys = self.session_keys(s.secret_file);
        let cookie_domain = s
            .cookie_domain
            .map(|d| d.trim_start_matches('.').to_ascii_lowercase());
        let cookie_name = s.cookie_name.unwrap_or_else(|| {
            match (secure, &cookie_domain) {
                (true, None) => "__Host-applegate",
                (true, Some(_)) => "__Secure-applegate",
                (false, _) => "applegate",
            }
            .to_string()
        });
        let key = "session.cookie_name";
        if cookie_name.is_empty() || !cookie_name.bytes().all(is_cookie_name_byte) {
            self.problem(
                key,
                format!("expected letters, digits and !#$%&'*+-.^_`|~ only, found {cookie_name:?}"),
            );
        } else if cookie_name.starts_with("__Host-") && (!secure || cookie_domain.is_some()) {
            self.problem(
                key,
                "a __Host- cookie needs an https public_url and no cookie_domain (browsers drop it otherwise)",
            );
        } else if cookie_name.starts_with("__Secure-") && !secure {
            self.problem(
                key,
                "a __Secure- cookie needs an https public_url (browsers drop it otherwise)",
            );
        }
        if let (Some(d), Some(u)) = (&cookie_domain, public_url) {
            if u.host != *d && !u.host.ends_with(&format!(".{d}")) {
                self.problem(
                    "session.cookie_domain",
                    format!("{d:?} does not contain the public_url host {:?}, so browsers would refuse the cookie", u.host),
                );
            }
        }
        let lifetime = self.duration(
            s.lifetime,
            "session.lifetime",
            Duration::from_secs(7 * 86_400),
        );
        if lifetime < Duration::from_secs(60) {
            self.problem("session.lifetime", "expected at least \"1m\"");
        }
        let login_timeout = self.duration(
            s.login_timeout,
            "session.login_timeout",
            Duration::from_secs(600),
        );
        if login_timeout < Duration::from_secs(60) || login_timeout > Duration::from_secs(600) {
            self.problem(
                "session.login_timeout",
                "expected between \"1m\" and \"10m\" (how long a sign-in round trip through Apple may take)",
            );
        }
        let same_site = match s.same_site.as_deref() {
            None | Some("lax") => SameSite::Lax,
            Some("strict") => SameSite::Strict,
            Some(other) => {
                self.problem(
                    "session.same_site",
                    format!("expected \"lax\" or \"strict\", found {other:?} (the sign-in round trip has its own SameSite=None cookie)"),
                );
                SameSite::Lax
            }
        };
        Some(Session {
            keys: keys?,
            cookie_name,
            cookie_domain,
            lifetime,
            login_timeout,
            same_site,
            secure,
        })
    }

    fn session_keys(&mut self, file: Option<String>) -> Option<Secret<Vec<cookie::Key>>> {
        let key = "session.secret_file";
        let from_env = (self.env)(ENV_SESSION_SECRET);
        let text = match (file, from_env) {
            (Some(_), Some(_)) => {
                self.problem(
                    key,
                    format!("set both here and in {ENV_SESSION_SECRET}; keep one so it is clear which secret is used"),
                );
                return None;
            }
            (Some(f), None) => {
                let path = self.path(&f);
                match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) => {
                        self.problem(
                            key,
                            format!("cannot read {:?}: {e}", path.display().to_string()),
                        );
                        return None;
                    }
                }
            }
            (None, Some(t)) => t,
            (None, None) => {
                self.problem(
                    key,
                    format!("missing; expected a file holding a random secret (make one with `openssl rand -base64 48`), or the secret in {ENV_SESSION_SECRET}"),
                );
                return None;
            }
        };
        let secrets: Vec<&str> = text
            .lines()
            .flat_map(|l| l.split([',', ' ', '\t']))
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        if secrets.is_empty() {
            self.problem(
                key,
                "no secret found; expected one secret per line (the first seals, all open)",
            );
            return None;
        }
        let mut keys = Vec::new();
        for (i, s) in secrets.iter().enumerate() {
            if !has_enough_entropy(s) {
                self.problem(
                    key,
                    format!("secret #{} looks weaker than 32 random bytes; make one with `openssl rand -base64 48`", i + 1),
                );
                continue;
            }
            // derive_from needs at least 32 bytes, which has_enough_entropy ensures.
            keys.push(cookie::Key::derive_from(s.as_bytes()));
        }
        (keys.len() == secrets.len()).then(|| Secret::new(keys))
    }

    fn policy(&mut self, p: file::PolicySection) -> Policy {
        let lower = |v: Option<Vec<String>>| {
            v.unwrap_or_default()
                .into_iter()
                .map(|s| s.trim().trim_start_matches('@').to_ascii_lowercase())
                .collect::<Vec<_>>()
        };
        // Parsed by the policy's own parser, so both sides compare alike.
        let mut allowed_emails = Vec::new();
        for e in lower(p.allowed_emails) {
            match crate::policy::Email::parse(&e) {
                Some(m) => allowed_emails.push(m.canonical(&e).into_owned()),
                None => self.problem(
                    "policy.allowed_emails",
                    format!("expected e-mail addresses, found {e:?}"),
                ),
            }
        }
        let allowed_email_domains: Vec<String> = lower(p.allowed_email_domains)
            .into_iter()
            .map(|d| d.strip_suffix('.').unwrap_or(&d).to_string())
            .collect();
        for d in &allowed_email_domains {
            if d.is_empty() || d.contains('@') {
                self.problem(
                    "policy.allowed_email_domains",
                    format!("expected domains such as \"example.com\", found {d:?}"),
                );
            }
        }
        let allowed_subs = p.allowed_subs.unwrap_or_default();
        if allowed_emails.is_empty() && allowed_email_domains.is_empty() && allowed_subs.is_empty()
        {
            self.warnings.push(
                "policy: no allowed_emails, allowed_email_domains or allowed_subs, so anyone with an Apple ID can sign in".into(),
            );
        }
        Policy {
            allowed_emails,
            allowed_email_domains,
            allowed_subs,
            allow_private_relay: p.allow_private_relay.unwrap_or(true),
            require_verified_email: p.require_verified_email.unwrap_or(true),
        }
    }

    fn log(&mut self, l: file::LogSection) -> Log {
        let level = l.level.unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::builder()
            .parse(&level)
            .is_err()
        {
            self.problem(
                "log.level",
                format!("expected a level (error, warn, info, debug, trace) or a filter such as \"info,applegate=debug\", found {level:?}"),
            );
        }
        let format = match l.format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                self.problem(
                    "log.format",
                    format!("expected \"text\" or \"json\", found {other:?}"),
                );
                LogFormat::Text
            }
        };
        Log {
            level,
            format,
            access: l.access.unwrap_or(true),
        }
    }
}

/// Splits a serde error from `toml` into the offending key (if it names one)
/// and a message with the key taken out.
fn split_serde_error(text: &str) -> (Option<String>, String) {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().unwrap_or_default().to_string();
    let in_key = lines
        .find_map(|l| l.strip_prefix("in `").and_then(|r| r.strip_suffix('`')))
        .map(|k| k.split(['.', '[']).next().unwrap_or(k).to_string());
    if let Some(rest) = first.strip_prefix("unknown field `") {
        if let Some((field, expected)) = rest.split_once('`') {
            let expected = expected.trim_start_matches(", ").replace('`', "");
            return (Some(field.to_string()), format!("unknown key; {expected}"));
        }
    }
    (in_key, first)
}

/// RFC 6265 cookie-name characters (an HTTP token).
fn is_cookie_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A rough estimate of whether `s` carries 256 bits: its length times the
/// bits per character of the smallest alphabet it fits (hex, base64, any
/// printable), and no fewer than ten distinct characters.
fn has_enough_entropy(s: &str) -> bool {
    let bits_per_char = if s.bytes().all(|b| b.is_ascii_digit()) {
        3.32
    } else if s.bytes().all(|b| b.is_ascii_hexdigit()) {
        4.0
    } else if s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=-_".contains(&b))
    {
        6.0
    } else {
        6.5
    };
    let distinct: std::collections::HashSet<u8> = s.bytes().collect();
    s.len() >= 32 && distinct.len() >= 10 && s.len() as f64 * bits_per_char >= 256.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("ten minutes").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn entropy_estimate_accepts_generated_secrets_only() {
        // `openssl rand -base64 48` and `-hex 32` style secrets pass.
        assert!(has_enough_entropy(
            "q3J0bXk2c0FkZ2VGcGxhbnRzK2FyZS9nb29kLWZvci15b3U9PQ"
        ));
        assert!(has_enough_entropy(
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        ));
        assert!(!has_enough_entropy("correct horse battery staple"));
        assert!(!has_enough_entropy(&"ab".repeat(40)));
        assert!(!has_enough_entropy(
            "0123456789012345678901234567890123456789"
        ));
    }

    #[test]
    fn serde_errors_name_their_key() {
        assert_eq!(
            split_serde_error("unknown field `listn`, expected one of `listen`, `threads`\n"),
            (
                Some("listn".to_string()),
                "unknown key; expected one of listen, threads".to_string()
            )
        );
        assert_eq!(
            split_serde_error("invalid type: string \"two\", expected i64\nin `threads`\n"),
            (
                Some("threads".to_string()),
                "invalid type: string \"two\", expected i64".to_string()
            )
        );
    }
}
