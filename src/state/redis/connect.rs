//! How the Redis store reaches Redis: the one server `redis_url` names,
//! or the master that `redis_sentinels` know by the name in `redis_url`;
//! over TLS (`rediss://`) trusting the system's roots or `redis_ca_file`.
//!
//! Every (re)connect asks anew where to go ([`Target::connect`]), so after
//! a Sentinel failover the store writes to the new master: the old one,
//! now a replica, refuses writes, and Sentinel closes its clients when it
//! turns it into one; [`Target::still_master`] notices within a tick (a
//! second) that the Sentinels name another master.

use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisResult, TlsCertificates, TlsMode};
use std::time::Duration;

use crate::config;

/// Where the store's Redis is.
pub(super) enum Target {
    /// One server.
    Server(redis::Client),
    /// The master of a Sentinel-watched group, asked of the Sentinels each
    /// time (the client is `&mut` while it asks), and where it was last.
    Sentinel(tokio::sync::Mutex<(SentinelClient, String)>),
}

/// Where `config` points, for messages: never the URL itself (it may hold
/// a password), and the key that says it.
pub(super) fn describe(config: &config::Redis) -> String {
    let url = url::Url::parse(config.url.expose()).ok();
    let host = url
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    if config.sentinels.is_empty() {
        let port = url.as_ref().and_then(url::Url::port).unwrap_or(6379);
        return format!("Redis at {host}:{port} (state.redis_url)");
    }
    let sentinels: Vec<String> = config
        .sentinels
        .iter()
        .map(|(h, p)| format!("{h}:{p}"))
        .collect();
    format!(
        "the master {host:?} of the Sentinels {} (state.redis_sentinels)",
        sentinels.join(", ")
    )
}

impl Target {
    /// From `[state]`; connects to nothing yet.
    pub(super) fn new(config: &config::Redis) -> RedisResult<Target> {
        let info = config.url.expose().as_str().into_connection_info()?;
        let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
        let certs = || TlsCertificates {
            client_tls: None,
            root_cert: config.ca_pem.clone(),
        };
        if config.sentinels.is_empty() {
            return Ok(Target::Server(match &config.ca_pem {
                Some(_) => redis::Client::build_with_tls(info, certs())?,
                None => redis::Client::open(info)?,
            }));
        }
        // The URL's host is the master's name, as the Sentinels know it;
        // its credentials, database and scheme are the master's.
        let name = match info.addr() {
            ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.clone(),
            _ => String::new(),
        };
        let sentinels = config.sentinels.iter().map(|(host, port)| match tls {
            true => ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: false,
                tls_params: None,
            },
            false => ConnectionAddr::Tcp(host.clone(), *port),
        });
        let redis = info.redis_settings();
        let mut b = SentinelClientBuilder::new(sentinels, name, SentinelServerType::Master)?
            .set_client_to_redis_db(redis.db());
        if let Some(user) = redis.username() {
            b = b.set_client_to_redis_username(user);
        }
        if let Some(password) = redis.password() {
            b = b.set_client_to_redis_password(password);
        }
        if tls {
            b = b
                .set_client_to_redis_tls_mode(TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(TlsMode::Secure);
            if config.ca_pem.is_some() {
                b = b
                    .set_client_to_redis_certificates(certs())
                    .set_client_to_sentinel_certificates(certs());
            }
        }
        Ok(Target::Sentinel(tokio::sync::Mutex::new((
            b.build()?,
            String::new(),
        ))))
    }

    /// A connection for commands and a subscription, both to the server
    /// to write to now (for Sentinel: the master they name now).
    pub(super) async fn connect(
        &self,
        timeout: Duration,
    ) -> RedisResult<(ConnectionManager, PubSub)> {
        let client = match self {
            Target::Server(client) => client.clone(),
            Target::Sentinel(s) => {
                let mut s = s.lock().await;
                let client = s.0.async_get_client().await?;
                s.1 = client.get_connection_info().addr().to_string();
                client
            }
        };
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = client.get_connection_manager_with_config(manager).await?;
        let pubsub = client.get_async_pubsub().await?;
        Ok((conn, pubsub))
    }

    /// Whether the server `conn` reaches is still the one to write to:
    /// with Sentinel, whether the Sentinels still name it the master (they
    /// name the new one as soon as they promote it; the old one may go on
    /// taking writes until they turn it into a replica, and those are lost
    /// then).
    pub(super) async fn still_master(&self, conn: &mut ConnectionManager) -> RedisResult<bool> {
        redis::cmd("PING").query_async::<String>(conn).await?;
        match self {
            Target::Server(_) => Ok(true),
            Target::Sentinel(s) => {
                let mut s = s.lock().await;
                let now = s.0.async_get_client().await?;
                Ok(now.get_connection_info().addr().to_string() == s.1)
            }
        }
    }
}
