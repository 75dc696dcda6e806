//! The `applegate` command: parses arguments and calls the library.
//!
//! Every error is reported here, once; bad usage or config exits 2.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use applegate::config::{self, Config, LogFormat};

/// pingora allocates per request; mimalloc beat glibc malloc by 5-15% in
/// throughput on the proxy path (benches/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use applegate::{clock, dev, server};

const USAGE: &str = "\
applegate: Sign in with Apple in front of your web apps

Usage:
  applegate run --config FILE     run the gateway
  applegate check --config FILE   validate config and keys; print what to enter at Apple
  applegate dev [--port N]        gateway + Apple emulator + demo app, no Apple account
                                  (ports N, N+1, N+2; default 4180)
  applegate version

Secrets come from files named in the config or from the environment
(APPLEGATE_APPLE_PRIVATE_KEY, APPLEGATE_SESSION_SECRET), never from arguments.
";

enum Command {
    Run(PathBuf),
    Check(PathBuf),
    Dev(u16),
    Version,
    Help,
}

/// Parses arguments; `Err` is a usage message.
fn parse(args: &[String]) -> Result<Command, String> {
    let mut it = args.iter().map(String::as_str);
    let first = it.next();
    let (sub, rest): (&str, Vec<&str>) = match first {
        None => return Ok(Command::Help),
        Some(s)
            if s.starts_with('-')
                && s != "-h"
                && s != "--help"
                && s != "-V"
                && s != "--version" =>
        {
            ("run", std::iter::once(s).chain(it).collect())
        }
        Some(s) => (s, it.collect()),
    };
    let mut config = None;
    let mut port = None;
    let mut i = 0;
    while i < rest.len() {
        let value = |i: usize| {
            rest.get(i + 1)
                .copied()
                .ok_or(format!("{} needs a value", rest[i]))
        };
        match rest[i] {
            "--config" | "-c" => {
                config = Some(PathBuf::from(value(i)?));
                i += 2;
            }
            "--port" | "-p" => {
                let v = value(i)?;
                port = Some(
                    v.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0 && *p < 65533)
                        .ok_or(format!("--port: expected a port number, found {v:?}"))?,
                );
                i += 2;
            }
            a if a.starts_with("--config=") => {
                config = Some(PathBuf::from(&a["--config=".len()..]));
                i += 1;
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let need_config = |c: Option<PathBuf>| c.ok_or("--config FILE is required".to_string());
    match sub {
        "run" => Ok(Command::Run(need_config(config)?)),
        "check" => Ok(Command::Check(need_config(config)?)),
        "dev" if config.is_none() => Ok(Command::Dev(port.unwrap_or(4180))),
        "dev" => Err("dev makes its own config; it takes no --config".into()),
        "version" | "-V" | "--version" => Ok(Command::Version),
        "help" | "-h" | "--help" => Ok(Command::Help),
        other => Err(format!("unknown command {other:?}")),
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

fn check(path: &Path) -> ExitCode {
    let c = match load(path, "check") {
        Ok(c) => c,
        Err(code) => return code,
    };
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
    for w in &c.warnings {
        let _ = writeln!(out, "\nwarning: {w}");
    }
    say(&out);
    ExitCode::SUCCESS
}

/// Writes to stdout; a closed stdout (`| head`, a supervisor that stopped
/// reading) must not crash the gateway, so errors are ignored.
fn say(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
    let _ = std::io::stdout().flush();
}

fn run(path: &Path) -> ExitCode {
    let c = match load(path, "run") {
        Ok(c) => c,
        Err(code) => return code,
    };
    init_logging(&c.log);
    for w in &c.warnings {
        tracing::warn!("{w}");
    }
    match server::run(&c, clock::system()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("applegate run: {e}");
            ExitCode::from(1)
        }
    }
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
        "\napplegate dev mode: no Apple account needed.\n\n  Open  {}/  in a browser and sign in.\n\n  gateway        {}\n  Apple emulator {}  (Services ID {}, Team ID {}, Key ID {})\n  demo app       http://{}\n\nCtrl-C stops all three.\n",
        d.config.server.public_url.origin,
        d.config.server.public_url.origin,
        d.emulator.base_url(),
        dev::SERVICES_ID,
        dev::TEAM_ID,
        dev::KEY_ID,
        d.demo.addr,
    ));
    match server::run(&d.config, clock::system()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("applegate dev: {e}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Ok(Command::Run(p)) => run(&p),
        Ok(Command::Check(p)) => check(&p),
        Ok(Command::Dev(port)) => dev(port),
        Ok(Command::Version) => {
            say(&format!("applegate {}\n", env!("CARGO_PKG_VERSION")));
            ExitCode::SUCCESS
        }
        Ok(Command::Help) => {
            say(USAGE);
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("applegate: {msg}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
