//! The command line: its arguments (clap) and what each command does.
//!
//! clap owns usage: `--help` and `--version` print and exit 0, bad usage
//! prints clap's message and exits 2. Everything after parsing is reported
//! here, once; a bad config exits 2 as well, a failure to run exits 1.

mod online;
mod reload;

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use applegate::config::{self, Config, LogFormat};
use applegate::{clock, dev, server};
use clap::{Args, Parser, Subcommand};

/// Sign in with Apple in front of your web apps.
#[derive(Parser)]
#[command(
    name = "applegate",
    version,
    // `applegate --config FILE` (no command) predates the subcommands and
    // means `run`; the two forms must not be mixed.
    args_conflicts_with_subcommands = true,
    after_help = "Secrets come from files named in the config or from the environment\n\
                  (APPLEGATE_APPLE_PRIVATE_KEY, APPLEGATE_SESSION_SECRET), never from arguments."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Run the gateway with this config: short for `run --config FILE`
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// What `applegate` was asked to do.
#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway
    Run(RunArgs),
    /// Validate config and keys; print what to enter at Apple
    Check(CheckArgs),
    /// Gateway + Apple emulator + demo app on ports N, N+1, N+2; no Apple account needed
    Dev {
        /// The gateway's port; the emulator and the demo app take the next two
        // The range leaves room for N+2 and refuses 0, which would let the
        // OS pick a port the printed URL could not name.
        #[arg(short, long, value_name = "N", default_value_t = 4180,
              value_parser = clap::value_parser!(u16).range(1..65533))]
        port: u16,
    },
    /// Ask a running gateway's admin listener whether it answers: exit 0 on
    /// 200, 1 otherwise (a container HEALTHCHECK; the image has no curl)
    Health {
        /// The URL to GET (plain http, 2 s deadline)
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9180/ping")]
        url: String,
    },
    /// Replace the running gateway with a new process (new config, or new
    /// binary) without dropping a connection: check the config, start
    /// `run --upgrade`, signal the old one; exit 0 once the new one has
    /// taken over (a systemd unit's ExecReload)
    Reload(ReloadArgs),
    /// Print the version
    Version,
}

/// `run`'s arguments.
#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    file: ConfigFile,
    /// Take the listening sockets over from the gateway running now: it
    /// hands them over `server.upgrade_sock` when sent SIGQUIT (within 5 s
    /// of this start), then drains and exits
    #[arg(long)]
    upgrade: bool,
}

/// `reload`'s arguments.
#[derive(Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    file: ConfigFile,
    /// The running gateway's process id (systemd: $MAINPID)
    #[arg(long, value_name = "PID", value_parser = clap::value_parser!(i32).range(2..))]
    pid: i32,
}

/// The `--config FILE` that `run` and `check` require.
#[derive(Args)]
pub struct ConfigFile {
    /// The config file (TOML; see conf/applegate.example.toml)
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
}

/// `check`'s arguments.
#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    file: ConfigFile,
    /// Also ask Apple's token endpoint whether it accepts the client secret
    #[arg(long)]
    online: bool,
}

impl Cli {
    /// The command to run; `None` (no command, no `--config`) asks for help.
    pub fn into_command(self) -> Option<Command> {
        match (self.command, self.config) {
            (Some(command), _) => Some(command),
            (None, Some(config)) => Some(Command::Run(RunArgs {
                file: ConfigFile { config },
                upgrade: false,
            })),
            (None, None) => None,
        }
    }
}

/// Runs `command`; the process's exit code.
pub fn dispatch(command: Option<Command>) -> ExitCode {
    match command {
        // A bad config is reported by `load`, exit 2; the command never starts.
        Some(Command::Run(c)) => {
            let start = if c.upgrade {
                server::Start::Upgrade
            } else {
                server::Start::Fresh
            };
            load(&c.file.config, "run").map_or_else(|bad| bad, |cfg| run(&cfg, start))
        }
        Some(Command::Reload(r)) => load(&r.file.config, "reload")
            .map_or_else(|bad| bad, |cfg| reload::reload(&r.file.config, &cfg, r.pid)),
        Some(Command::Check(c)) => load(&c.file.config, "check").map_or_else(
            |bad| bad,
            |cfg| match check(&c.file.config, &cfg) {
                ok if ok == ExitCode::SUCCESS && c.online => online::check(&cfg),
                other => other,
            },
        ),
        Some(Command::Dev { port }) => dev(port),
        Some(Command::Health { url }) => health(&url),
        Some(Command::Version) => {
            say(&format!("applegate {}\n", env!("CARGO_PKG_VERSION")));
            ExitCode::SUCCESS
        }
        // A bare `applegate` is someone finding their way: help, exit 0.
        None => {
            say(&<Cli as clap::CommandFactory>::command()
                .render_help()
                .to_string());
            ExitCode::SUCCESS
        }
    }
}

fn init_logging(log: &config::Log) {
    use tracing_subscriber::filter::{filter_fn, FilterExt};
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("APPLEGATE_LOG").unwrap_or_else(|_| log.level.clone());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Pingora's debug and trace lines print raw request bytes, whole header
    // maps (Cookie, Authorization) and targets with their query (`?code=`):
    // capped at info whatever level is asked for, so no level logs a secret.
    // The hint keeps the combined filter's maximum level the configured
    // one: without it the `log` bridge is opened to trace, and every
    // pingora `debug!` on the hot path is formatted only to be dropped.
    let cap = filter_fn(|meta| {
        !(meta.target().starts_with("pingora") && *meta.level() > tracing::Level::INFO)
    })
    .with_max_level_hint(tracing::level_filters::LevelFilter::TRACE);
    let filter = filter.and(cap);
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry();
    let _ = match log.format {
        LogFormat::Json => registry.with(fmt.json().with_filter(filter)).try_init(),
        LogFormat::Text => registry.with(fmt.with_filter(filter)).try_init(),
    };
}

/// The config at `path`; a bad one has every problem printed here, once,
/// and becomes exit code 2.
fn load(path: &Path, verb: &str) -> Result<Config, ExitCode> {
    Config::load(path, &config::process_env).map_err(|e| {
        let n = e.problems.len();
        eprintln!(
            "applegate {verb}: {} has {n} problem{}:",
            path.display(),
            if n == 1 { "" } else { "s" }
        );
        for p in &e.problems {
            eprintln!("  {p}");
        }
        ExitCode::from(2)
    })
}

fn check(path: &Path, c: &Config) -> ExitCode {
    let mut out = String::new();
    let _ = writeln!(out, "applegate check: {} is valid.\n", path.display());
    let _ = writeln!(out, "  listen       {}", c.server.listen);
    let _ = writeln!(out, "  public URL   {}", c.server.public_url.origin);
    let _ = writeln!(
        out,
        "  Apple        Team ID {}, Services ID {}, Key ID {} (private key loaded)",
        c.apple.team_id, c.apple.services_id, c.apple.key_id
    );
    let _ = writeln!(out, "  Apple URL    {}", c.apple.base_url);
    let _ = writeln!(
        out,
        "  upgrades     over {}",
        c.server.upgrade_sock.display()
    );
    let _ = match &c.state {
        config::State::Embedded { path } => {
            writeln!(out, "  state        embedded, {}", path.display())
        }
        config::State::Memory => writeln!(
            out,
            "  state        memory only (lost at exit: sign-outs do not survive a restart)"
        ),
        // Never the URL: it may hold a password.
        config::State::Redis(r) => writeln!(
            out,
            "  state        Redis{}, keys under {:?}{}",
            match (r.cluster, r.sentinels.len()) {
                (true, _) => " Cluster".to_string(),
                (false, 0) => String::new(),
                (false, n) => format!(" through {n} Sentinel(s)"),
            },
            r.key_prefix,
            if r.fail_closed {
                ", sessions refused while it is out of reach"
            } else {
                ""
            }
        ),
    };
    for r in &c.routes {
        let _ = writeln!(
            out,
            "  route        {}{}{} -> {} (auth {}{})",
            r.host.as_deref().unwrap_or(""),
            r.port.map(|p| format!(":{p}")).unwrap_or_default(),
            r.path,
            r.upstream.url,
            match r.auth {
                config::AuthMode::Required => "required",
                config::AuthMode::Public => "public",
                config::AuthMode::Bearer => "bearer",
            },
            match r.encoded_slashes {
                config::EncodedSlashes::Keep => ", encoded slashes kept",
                config::EncodedSlashes::Reject => "",
            }
        );
    }
    let _ = writeln!(
        out,
        "\nIn Apple's developer portal (Certificates, Identifiers & Profiles > Identifiers >\n\
         Services IDs > {} > Sign in with Apple > Configure), enter:\n",
        c.apple.services_id
    );
    let _ = writeln!(
        out,
        "  Domains and Subdomains:  {}",
        c.server.public_url.host
    );
    let _ = writeln!(
        out,
        "  Return URLs:             {}",
        c.server.public_url.callback_url()
    );
    let _ = writeln!(
        out,
        "\nUnder the App ID's Sign in with Apple settings (Server-to-Server Notification\n\
         Endpoint), enter:\n\n  Notification URL:        {}{}",
        c.server.public_url.origin, c.apple.notifications_path
    );
    for w in &c.warnings {
        let _ = writeln!(out, "\nwarning: {w}");
    }
    say(&out);
    // The gateway would not start with a state file it cannot write; the
    // database itself is not opened here: a running gateway holds its lock.
    if let config::State::Embedded { path } = &c.state {
        if let Err(e) = applegate::state::probe_writable(path) {
            eprintln!(
                "applegate check: state.path: cannot write {}: {e}",
                path.display()
            );
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

/// Writes to stdout; a closed stdout (`| head`, a supervisor that stopped
/// reading) must not crash the gateway, so errors are ignored.
fn say(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
    let _ = std::io::stdout().flush();
}

/// Runs the gateway until it is stopped; exit 1 when it cannot run.
fn serve(c: &Config, verb: &str, start: server::Start) -> ExitCode {
    match server::run(c, clock::system(), start) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("applegate {verb}: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(c: &Config, start: server::Start) -> ExitCode {
    init_logging(&c.log);
    for w in &c.warnings {
        tracing::warn!("{w}");
    }
    serve(c, "run", start)
}

fn dev(port: u16) -> ExitCode {
    let ports = dev::Ports {
        gateway: port,
        emulator: port + 1,
        demo: port + 2,
    };
    let d = match dev::prepare(ports) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("applegate dev: {e}");
            return ExitCode::from(1);
        }
    };
    init_logging(&d.config.log);
    say(&format!(
        "\napplegate dev mode: no Apple account needed.\n\n  Open  {}/  in a browser and sign in.\n\n  gateway        {}\n  Apple emulator {}  (Services ID {}, Team ID {}, Key ID {})\n  emulator admin {}/admin  (revoke a user's consent)\n  demo app       http://{}\n\nCtrl-C stops all three.\n",
        d.config.server.public_url.origin,
        d.config.server.public_url.origin,
        d.emulator.base_url(),
        dev::SERVICES_ID,
        dev::TEAM_ID,
        dev::KEY_ID,
        d.emulator.base_url(),
        d.demo.addr,
    ));
    serve(&d.config, "dev", server::Start::Fresh)
}

/// How long `health` waits in all: connect, send, first line of the answer.
const HEALTH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// GETs `url`; exit 0 if it answers 200, 1 (with the reason) otherwise.
fn health(url: &str) -> ExitCode {
    match health_status(url) {
        Ok(200) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("applegate health: {url} answered {status}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("applegate health: {url}: {e}");
            ExitCode::from(1)
        }
    }
}

/// The status code `url` answers a GET with, over plain HTTP/1.1 and
/// within [`HEALTH_DEADLINE`]: no HTTP client, no runtime, for a probe
/// that runs every few seconds in a container.
fn health_status(url: &str) -> Result<u16, String> {
    use std::io::Read as _;
    use std::net::TcpStream;
    use std::time::Instant;
    use url::{Position, Url};

    let u = Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if u.scheme() != "http" {
        return Err("only http:// URLs (the admin listener is plain HTTP)".into());
    }
    let deadline = Instant::now() + HEALTH_DEADLINE;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("no answer within {}s", HEALTH_DEADLINE.as_secs()))
    };
    let addrs = u.socket_addrs(|| None).map_err(|e| e.to_string())?;
    let mut stream = None;
    let mut last = String::from("the host has no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, left()?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    let mut s = stream.ok_or(last)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        &u[Position::BeforePath..Position::AfterQuery],
        &u[Position::BeforeHost..Position::AfterPort],
    );
    s.set_write_timeout(Some(left()?))
        .map_err(|e| e.to_string())?;
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    // The status line is all that is read: "HTTP/1.1 200 OK\r\n".
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 1024 {
        s.set_read_timeout(Some(left()?))
            .map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default();
    match line.split(' ').collect::<Vec<_>>()[..] {
        [version, code, ..] if version.starts_with("HTTP/1.") => code
            .parse()
            .map_err(|_| format!("not an HTTP answer: {line:?}")),
        _ => Err(format!("not an HTTP answer: {line:?}")),
    }
}
