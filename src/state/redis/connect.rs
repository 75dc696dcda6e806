//! How the Redis store reaches Redis: the one server `redis_url` names,
//! the master that `redis_sentinels` know by the name in `redis_url`, or
//! a Cluster (`redis_cluster`) that the node in `redis_url` introduces;
//! over TLS (`rediss://`) trusting the system's roots or `redis_ca_file`.
//!
//! In a Cluster, commands go to the node holding their key's slot (every
//! key of one store shares a slot: see `Keys`), and the subscription is to
//! any one node: a `PUBLISH` reaches every node's subscribers. When that
//! node fails the subscription ends, and the next (re)connect subscribes
//! to another the Cluster lists.
//!
//! Every (re)connect asks anew where to go ([`Target::connect`]), so after
//! a Sentinel failover the store writes to the new master: the old one,
//! now a replica, refuses writes, and Sentinel closes its clients when it
//! turns it into one; [`Target::still_master`] notices within a tick (a
//! second) that the Sentinels name another master.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
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
    /// A Cluster; and how to reach one node (for the subscription), by
    /// the seed's credentials, database and TLS.
    /// (Boxed: the largest by far, and there is one per store.)
    Cluster(Box<(ClusterClient, redis::ConnectionInfo)>),
}

/// A connection for commands: to one server (reconnecting by itself), or
/// to a Cluster (routing each command by its key).
#[derive(Clone)]
pub(super) enum Conn {
    One(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::One(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::One(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::One(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
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
        if config.cluster {
            let mut b = ClusterClient::builder(vec![info.clone()])
                .connection_timeout(config.timeout)
                .response_timeout(config.timeout);
            if config.ca_pem.is_some() {
                b = b.certs(certs());
            }
            return Ok(Target::Cluster(Box::new((b.build()?, info))));
        }
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
    pub(super) async fn connect(&self, timeout: Duration) -> RedisResult<(Conn, PubSub)> {
        let client = match self {
            Target::Server(client) => client.clone(),
            Target::Sentinel(s) => {
                let mut s = s.lock().await;
                let client = s.0.async_get_client().await?;
                s.1 = client.get_connection_info().addr().to_string();
                client
            }
            Target::Cluster(c) => {
                let conn = c.0.get_async_connection().await?;
                let pubsub = any_node(conn.clone(), &c.1).await?;
                return Ok((Conn::Cluster(conn), pubsub));
            }
        };
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = client.get_connection_manager_with_config(manager).await?;
        let pubsub = client.get_async_pubsub().await?;
        Ok((Conn::One(conn), pubsub))
    }

    /// Whether the server `conn` reaches is still the one to write to:
    /// with Sentinel, whether the Sentinels still name it the master (they
    /// name the new one as soon as they promote it; the old one may go on
    /// taking writes until they turn it into a replica, and those are lost
    /// then).
    pub(super) async fn still_master(&self, conn: &mut Conn) -> RedisResult<bool> {
        redis::cmd("PING").query_async::<String>(conn).await?;
        match self {
            Target::Server(_) | Target::Cluster(..) => Ok(true),
            Target::Sentinel(s) => {
                let mut s = s.lock().await;
                let now = s.0.async_get_client().await?;
                Ok(now.get_connection_info().addr().to_string() == s.1)
            }
        }
    }
}

/// A subscription on one of the Cluster's nodes, as `CLUSTER NODES` lists
/// them now (in a random order, so replicas spread theirs), each reached
/// as the seed is (credentials, TLS).
async fn any_node(
    mut conn: ClusterConnection,
    seed: &redis::ConnectionInfo,
) -> RedisResult<PubSub> {
    let listed: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await?;
    // `<id> <ip:port@cport[,hostname]> <flags> ...`, one line per node.
    let mut nodes: Vec<(String, u16)> = listed
        .lines()
        .filter(|l| !l.contains("fail") && !l.contains("noaddr"))
        .filter_map(|l| {
            let addr = l.split(' ').nth(1)?.split(['@', ',']).next()?;
            let (host, port) = addr.rsplit_once(':')?;
            Some((
                host.trim_matches(['[', ']']).to_string(),
                port.parse().ok()?,
            ))
        })
        .collect();
    let start = if nodes.is_empty() {
        0
    } else {
        rand::random::<u32>() as usize % nodes.len()
    };
    nodes.rotate_left(start);
    let mut last = None;
    for (host, port) in nodes {
        let addr = match seed.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host, port),
        };
        match redis::Client::open(seed.clone().set_addr(addr)) {
            Ok(client) => match client.get_async_pubsub().await {
                Ok(pubsub) => return Ok(pubsub),
                Err(e) => last = Some(e),
            },
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        redis::RedisError::from((
            redis::ErrorKind::ClusterConnectionNotFound,
            "the Cluster lists no node",
        ))
    }))
}
