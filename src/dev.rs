//! `applegate dev`: the gateway, the Apple emulator and the demo app on one
//! machine, with no Apple account.
//!
//! Keys are generated at start. The emulator listens on `127.0.0.1` and the
//! gateway is reached as `localhost`: two different sites, so a browser
//! treats Apple's `form_post` as the cross-site POST it is in production
//! (only `SameSite=None` cookies travel with it).

use crate::clock;
use crate::config::{Config, ConfigError};
use crate::emulator::{self, Emulator};
use crate::kit::{self, Builder, Ids, Secrets};

/// Dev-mode identifiers (shaped like Apple's).
pub const TEAM_ID: &str = "DEVTEAM001";
/// The dev Key ID.
pub const KEY_ID: &str = "DEVKEY0001";
/// The dev Services ID.
pub const SERVICES_ID: &str = "dev.applegate.web";

/// Ports for the three parts.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub gateway: u16,
    pub emulator: u16,
    pub demo: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            gateway: 4180,
            emulator: 4181,
            demo: 4182,
        }
    }
}

/// Everything `dev` runs, up.
pub struct Dev {
    pub config: Config,
    pub emulator: Emulator,
    pub demo: crate::httpd::Handle,
}

/// Why dev mode could not start.
#[derive(Debug)]
pub enum DevError {
    Bind(u16, std::io::Error),
    Emulator(emulator::SetupError),
    Config(ConfigError),
}

impl std::fmt::Display for DevError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DevError::Bind(port, e) => write!(
                f,
                "cannot listen on 127.0.0.1:{port}: {e} (choose other ports with --port)"
            ),
            DevError::Emulator(e) => write!(f, "Apple emulator: {e}"),
            DevError::Config(e) => write!(f, "dev config: {e}"),
        }
    }
}

impl std::error::Error for DevError {}

impl From<kit::Error> for DevError {
    fn from(e: kit::Error) -> Self {
        match e {
            kit::Error::Bind(port, e) => DevError::Bind(port, e),
            kit::Error::Emulator(e) => DevError::Emulator(e),
        }
    }
}

/// `conf/dev.toml` (built in), its one route sent to the demo app: the
/// kit sets the rest of this run's ports and addresses.
fn dev_toml() -> String {
    let mut t: toml::Table = include_str!("../conf/dev.toml")
        .parse()
        .expect("conf/dev.toml is valid TOML (a unit test checks)");
    if let Some(toml::Value::Array(routes)) = t.get_mut("routes") {
        if let Some(toml::Value::Table(r)) = routes.first_mut() {
            r.insert("upstream".into(), "http://{upstream}".into());
        }
    }
    t.to_string()
}

/// Starts the emulator and the demo app and builds the gateway's config.
pub fn prepare(ports: Ports) -> Result<Dev, DevError> {
    let stack = Builder::new(clock::system())
        .ids(Ids {
            team_id: TEAM_ID,
            key_id: KEY_ID,
            services_id: SERVICES_ID,
        })
        .ports(ports.gateway, ports.emulator, ports.demo)
        .start()?;
    let config = stack
        .config(&dev_toml(), &Secrets::new(stack.key.clone()))
        .map_err(DevError::Config)?;
    let kit::Stack { emulator, demo, .. } = stack;
    Ok(Dev {
        config,
        emulator,
        demo: demo.expect("the kit starts the demo app by default"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_config_takes_this_runs_ports() {
        let base = kit::free_port();
        let ports = Ports {
            gateway: base,
            emulator: base + 1,
            demo: base + 2,
        };
        let d = prepare(ports).unwrap();
        let s = &d.config.server;
        assert_eq!(s.listen.to_string(), format!("127.0.0.1:{base}"));
        assert_eq!(s.public_url.origin, format!("http://localhost:{base}"));
        assert_eq!(
            d.emulator.base_url(),
            format!("http://127.0.0.1:{}", base + 1)
        );
        assert_eq!(d.config.apple.base_url, d.emulator.base_url());
        assert_eq!(
            d.config.state,
            crate::config::State::Memory,
            "dev keeps nothing (conf/dev.toml says so)"
        );
        assert_eq!(
            d.config.routes[0].upstream.url,
            format!("http://127.0.0.1:{}", base + 2)
        );
    }
}
