//! `check --online`: ask Apple whether it accepts our client secret.
//!
//! A code exchange with a made-up code ([`Client::probe_credentials`]):
//! `invalid_grant` means Apple accepted the client secret and refused only
//! the code; `invalid_client` means it refused the secret, for one of a
//! few reasons Apple does not tell apart. Exit 1 for either failure
//! (Apple refused, Apple unreachable): 2 stays for a bad config file.

use std::process::ExitCode;

use applegate::apple::{AppleError, Client};
use applegate::clock;
use applegate::config::Config;
use applegate::proxy::error::Chain;

/// Probes Apple's token endpoint with `c`'s credentials and reports.
pub fn check(c: &Config) -> ExitCode {
    let a = &c.apple;
    let token_url = format!("{}/auth/token", a.base_url);
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the HTTP client: {e}"))
        .and_then(|rt| {
            rt.block_on(async {
                let client = Client::new(a, c.server.public_url.callback_url(), clock::system())
                    .map_err(|e| Chain(&e).to_string())?;
                Ok(client.probe_credentials().await)
            })
        });
    match result {
        Ok(Ok(())) => {
            super::say(&format!(
                "\napplegate check --online: Apple accepted the client secret (Team ID {}, Services ID {}, Key ID {}) at {token_url}.\n",
                a.team_id, a.services_id, a.key_id
            ));
            ExitCode::SUCCESS
        }
        Ok(Err(AppleError::InvalidClient { .. })) => {
            eprintln!(
                "applegate check --online: Apple refused the client secret (invalid_client) at {token_url}.\n\
                 Likely causes:\n  \
                 - the Services ID {services} does not belong to the team of the key (Team ID {team})\n  \
                 - apple.key_id {key} is not the Key ID of this .p8 key (Keys in the developer portal)\n  \
                 - the key was revoked, or does not have Sign in with Apple enabled\n  \
                 - this machine's clock is off: the client secret is dated by it (compare `date -u` with a time server)\n  \
                 - apple.team_id {team} is wrong (Membership details in the developer portal)\n  \
                 - the Return URL {callback} is not registered for the Services ID",
                services = a.services_id,
                team = a.team_id,
                key = a.key_id,
                callback = c.server.public_url.callback_url(),
            );
            ExitCode::from(1)
        }
        Ok(Err(e @ (AppleError::Unreachable { .. } | AppleError::Status { .. }))) => {
            eprintln!(
                "applegate check --online: no answer from Apple's token endpoint: {}\n\
                 Check this machine's network, DNS and proxy settings, and apple.base_url.",
                Chain(&e)
            );
            ExitCode::from(1)
        }
        Ok(Err(e)) => {
            eprintln!(
                "applegate check --online: Apple's answer was not what a credentials check expects: {}",
                Chain(&e)
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("applegate check --online: {e}");
            ExitCode::from(1)
        }
    }
}
