//! The servers the load benchmark runs its scenarios against, started and
//! signed in: the upstream app, the nginx baseline, bare pingora, and
//! applegate (the binary) beside the Apple emulator, assembled by the kit.

use std::path::{Path, PathBuf};

use applegate::clock;
use applegate::kit::{self, Builder, Secrets, Upstream};

use super::procs::{
    bare_proxy, nginx, nginx_common, nginx_http_common, nginx_proxy_conf, pinned, spawn, wait_for,
    Proc,
};
use super::wrk::{expect_status, wrk, Run};
use super::{browser, Scenario, Sends, Server, APPLEGATE, BUNDLE_ID, CONNECTIONS};

/// A server under test: its port and the process whose CPU is measured.
pub struct Target {
    pub port: u16,
    pub pid: Option<u32>,
}

/// Everything the scenarios run against, up and signed in.
pub struct Bench {
    pub dir: PathBuf,
    /// Kept for their lifetime: dropping stops them.
    pub procs: Vec<Proc>,
    pub targets: Vec<(Server, Target)>,
    pub kit: kit::Stack,
    /// `applegate=<value>` of a real sign-in.
    pub cookie: String,
    /// A native app's id_token.
    pub native: String,
}

impl Bench {
    pub fn target(&self, s: Server) -> &Target {
        &self
            .targets
            .iter()
            .find(|(k, _)| *k == s)
            .expect("every server is started")
            .1
    }

    pub fn header(&self, sends: Sends) -> String {
        match sends {
            Sends::Cookie => format!("Cookie: {}", self.cookie),
            Sends::Html => "Accept: text/html".into(),
            Sends::Bearer => format!("Authorization: Bearer {}", self.native),
        }
    }

    pub fn url(&self, s: Server, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.target(s).port)
    }

    /// Checks the answer once, then runs wrk.
    pub fn check(&self, sc: &Scenario) {
        expect_status(
            &self.url(sc.server, sc.path),
            &[self.header(sc.sends)],
            sc.expect,
        );
    }

    pub fn run(&self, sc: &Scenario, secs: u64, warm: u64) -> Run {
        let t = self.target(sc.server);
        wrk(
            sc.name,
            &self.url(sc.server, sc.path),
            &[self.header(sc.sends)],
            CONNECTIONS,
            secs,
            warm,
            t.pid,
        )
    }

    /// A gateway's config for the binary, on `port`.
    pub fn gateway_toml(&self, port: u16, logging: Logging) -> String {
        let (level, access) = match logging {
            Logging::Quiet => ("warn", false),
            Logging::Info => ("info", false),
            Logging::Access => ("info", true),
        };
        // The sign-in benchmark measures capacity, not the limiter, and the
        // idle-connection test opens 10,000 connections: both limits raised.
        let text = format!(
            "[server]\nthreads = 1\ngrace_period = \"0s\"\nmax_connections = 15000\n\
             [rate_limit]\nsign_in_per_client = 1000000\nsign_in_total = 1000000\napple_token_calls = 1000000\n\
             [apple]\nprivate_key_file = \"{}\"\nbundle_ids = [\"{BUNDLE_ID}\"]\n[session]\nsecret_file = \"{}\"\n\
             [log]\nlevel = \"{}\"\naccess = {access}\n\
             [[routes]]\npath = \"/api/\"\nauth = \"bearer\"\nupstream = \"http://{{upstream}}\"\n\
             [[routes]]\npath = \"/\"\nupstream = \"http://{{upstream}}\"\n",
            Secrets::KEY_FILE,
            Secrets::SESSION_FILE,
            level,
        );
        let mut t: toml::Table = self.kit.toml(&text).parse().expect("the kit writes TOML");
        // The default durable store, one file per gateway (two run at
        // once, and a gateway locks its state file), in the bench's directory.
        kit::set(&mut t, "state", "path", format!("applegate-{port}.state"));
        if port != self.kit.listen.port() {
            kit::set(&mut t, "server", "listen", format!("127.0.0.1:{port}"));
            kit::set(
                &mut t,
                "server",
                "public_url",
                format!("http://localhost:{port}"),
            );
        }
        t.to_string()
    }

    /// Starts the gateway binary with `toml`, pinned to core 0.
    pub fn start_gateway(&self, name: &'static str, file: &str, toml: &str, port: u16) -> Proc {
        let path = self.dir.join(file);
        std::fs::write(&path, toml).unwrap();
        let mut cmd = pinned(0, APPLEGATE);
        cmd.args(["run", "--config", path.to_str().unwrap()]);
        let p = spawn(name, cmd, &path.with_extension("log"));
        wait_for(port, name);
        p
    }
}

/// How a benchmarked gateway logs.
#[derive(Debug, Clone, Copy)]
pub enum Logging {
    /// Warnings only, no access log: the scenarios' gateway, measured
    /// this way since the first run (figures stay comparable).
    Quiet,
    /// The default level (info), access log off.
    Info,
    /// The default level with the access log on (to stderr, a file).
    Access,
}

/// Starts the upstream, the baseline, bare pingora and applegate (with the
/// emulator in this process, on the client core), and signs in.
pub fn start(dir: &Path) -> Bench {
    let mut procs = Vec::new();
    let mut targets = Vec::new();
    // The upstream app: nginx answering 1 KiB, on the client core.
    let up_port = kit::free_port();
    let body = "x".repeat(1024);
    procs.push(nginx(
        "upstream",
        dir,
        &format!(
            "{}http {{ {} server {{ listen 127.0.0.1:{up_port} backlog=4096; location / {{ default_type text/plain; return 200 \"{body}\"; }} }} }}\n",
            nginx_common(dir, "upstream"),
            nginx_http_common(dir, "upstream")
        ),
        1,
    ));
    wait_for(up_port, "upstream nginx");
    let pid = std::fs::read_to_string(dir.join("upstream.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok());
    targets.push((Server::Upstream, Target { port: up_port, pid }));

    // The baseline: a plain nginx reverse proxy, one worker, keep-alive to the upstream.
    let ngx_port = kit::free_port();
    let ngx = nginx(
        "nginx-proxy",
        dir,
        &nginx_proxy_conf(dir, "nginx-proxy", ngx_port, up_port, &["/".into()], 16384),
        0,
    );
    wait_for(ngx_port, "nginx proxy");
    targets.push((
        Server::Nginx,
        Target {
            port: ngx_port,
            pid: Some(ngx.pid()),
        },
    ));
    procs.push(ngx);

    // A bare pingora passthrough (this benchmark, re-executed).
    let bare_port = kit::free_port();
    let bare = bare_proxy("bare pingora", &dir.join("bare.log"), bare_port, up_port);
    targets.push((
        Server::Bare,
        Target {
            port: bare_port,
            pid: Some(bare.pid()),
        },
    ));
    procs.push(bare);

    // applegate, with the Apple emulator in this process (client core).
    let kit = Builder::new(clock::system())
        .upstream(Upstream::At(([127, 0, 0, 1], up_port).into()))
        .start()
        .unwrap();
    kit.secrets().write(dir).unwrap();
    let mut bench = Bench {
        dir: dir.to_path_buf(),
        procs,
        targets,
        kit,
        cookie: String::new(),
        native: String::new(),
    };
    let ag_port = bench.kit.listen.port();
    let ag = bench.start_gateway(
        "applegate",
        "applegate.toml",
        &bench.gateway_toml(ag_port, Logging::Quiet),
        ag_port,
    );
    bench.targets.push((
        Server::Applegate,
        Target {
            port: ag_port,
            pid: Some(ag.pid()),
        },
    ));
    bench.procs.push(ag);
    // The access log's cost: two more gateways, the same but for the log,
    // both at the default level (info), the log off and on. Their
    // scenarios run in the same interleaved rounds as the others, so the
    // two figures are measured alike; the same secret file opens the
    // same session cookie.
    for (server, name, file, logging) in [
        (
            Server::ApplegateInfo,
            "applegate (info log)",
            "applegate-info.toml",
            Logging::Info,
        ),
        (
            Server::ApplegateAccessLog,
            "applegate (access log)",
            "applegate-access.toml",
            Logging::Access,
        ),
    ] {
        let port = kit::free_port();
        let p = bench.start_gateway(name, file, &bench.gateway_toml(port, logging), port);
        bench.targets.push((
            server,
            Target {
                port,
                pid: Some(p.pid()),
            },
        ));
        bench.procs.push(p);
    }
    bench.cookie = sign_in(&bench.kit.public_url);
    let emu = &bench.kit.emulator;
    let now = clock::system().now();
    bench.native = emu.sign(&serde_json::json!({
        "iss": emu.base_url(), "aud": BUNDLE_ID, "iat": now, "exp": now + 86_400,
        "sub": "001234.0123456789abcdef0123456789abcdef.0042", "email": "x7k2@privaterelay.appleid.com",
        "email_verified": "true", "is_private_email": "true", "real_user_status": 2,
    }));
    bench
}

/// A real sign-in for the session cookie: `applegate=<value>`.
fn sign_in(public: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut b = browser::Browser::new();
        let page = b
            .sign_in(
                &format!("{public}/oauth2/start?rd=/"),
                &browser::Person::new("bench@example.com"),
            )
            .await;
        assert_eq!(
            page.status, 200,
            "sign-in for the benchmark failed: {}",
            page.body
        );
        format!(
            "applegate={}",
            b.cookie("applegate").expect("session cookie").value
        )
    })
}
