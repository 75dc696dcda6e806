//! `check` and `run` on good and bad configs: every problem at once, exit 2.

use std::process::Command;

use super::{check, common, key_pem, TempDir, BIN, SECRET};

/// A broken config: every problem is listed at once, each with its key
/// path and what was expected, and the exit code is 2.
#[test]
fn check_lists_every_problem_and_exits_2() {
    let dir = TempDir::new("check-bad");
    dir.write("weak.key", "password123\n");
    let cfg = dir.write(
        "bad.toml",
        r#"
[server]
listn = "0.0.0.0:8080"
public_url = "app.example.com"
threads = "two"
encoded_slashes = "sometimes"
trusted_proxies = ["10.0.0.0/33"]

[rate_limit]
sign_in_per_client = 0

[apple]
team_id = "abc"
key_id = "XYZ9876543"
private_key_file = "missing/AuthKey.p8"
scopes = ["name", "phone"]
timeout = "ten seconds"
notifications_path = "/oauth2/../callback"
revoke_on_sign_out = "yes"

[session]
secret_file = "weak.key"
lifetime = "7 days"

[policy]
allowed_emails = ["not-an-email"]

[[routes]]
path = "api"
upstream = "ftp://127.0.0.1:21"

[[routes]]
upstream = "http://127.0.0.1:3000/app"

[[routes]]
path = "/open"
auth = "public"
assertion = true
upstream = "http://127.0.0.1:3000"

[assertion]
key_file = "weak.key"
lifetime = "2h"

[extras]
x = 1
"#,
    );
    let (code, stdout, stderr) = check(&cfg);
    assert_eq!(code, 2, "stdout: {stdout}\nstderr: {stderr}");
    for expected in [
        "server.listn: unknown key; expected one of listen, public_url",
        "server.threads: invalid type: string \"two\"",
        "server.public_url: expected an http(s) origin",
        "apple.team_id: expected the 10-character Team ID",
        "apple.services_id: missing; expected the Services ID",
        "apple.private_key_file: cannot read",
        "apple.scopes: expected a list of \"name\" and \"email\", found \"phone\"",
        "apple.timeout: expected a duration such as \"30s\"",
        "apple.notifications_path: expected an absolute path",
        "apple.revoke_on_sign_out: invalid type: string \"yes\", expected a boolean",
        "session.secret_file: secret #1 looks weaker than 32 random bytes",
        "session.lifetime: expected a duration",
        "policy.allowed_emails: expected e-mail addresses, found \"not-an-email\"",
        "routes[0].path: expected a plain path prefix starting with \"/\"",
        "server.encoded_slashes: expected \"reject\" or \"keep\", found \"sometimes\"",
        "server.trusted_proxies[0]: expected an address or CIDR",
        "rate_limit.sign_in_per_client: expected a number of requests per second from 1 to 1000000, found 0",
        "routes[0].upstream: expected an http:// or https:// URL",
        "routes[1].upstream: expected scheme, host and port only",
        "extras: unknown section",
        "assertion.key_file: \"",
        "weak.key\" is not a P-256 private key in PKCS#8 PEM",
        "assertion.lifetime: expected between 30s and 1h, found 7200s",
        "routes[2].assertion: a public route has no signed-in user to assert",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("problems:"), "{stderr}");
    assert!(
        !stderr.contains("password123"),
        "the weak secret itself is not printed"
    );
}

/// `run` with a bad config exits 2 with the same report.
#[test]
fn run_with_a_bad_config_exits_2() {
    let dir = TempDir::new("run-bad");
    let cfg = dir.write("bad.toml", "[server]\nlisten = \"nope\"\n");
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("server.listen: expected an address and port"),
        "{stderr}"
    );
    let out = Command::new(BIN).args(["run"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing --config is a usage error"
    );
    let out = Command::new(BIN)
        .args(["check", "--config", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
    let dir2 = TempDir::new("syntax");
    let cfg = dir2.write("syntax.toml", "[server\nlisten = 1\n");
    let (code, _, stderr) = check(&cfg);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("invalid TOML") && stderr.contains("line 1"),
        "TOML's line and column kept: {stderr}"
    );
}

/// The shipped example config, with test key files beside it, is valid:
/// exit 0, the Return URL, domain and notification URL to enter at
/// Apple, and warnings.
#[test]
fn example_config_checks_and_prints_the_return_url() {
    let dir = TempDir::new("check-example");
    let example =
        std::fs::read_to_string(common::root().join("conf/applegate.example.toml")).unwrap();
    let cfg = dir.write("applegate.toml", &example);
    dir.write("AuthKey_XYZ9876543.p8", &key_pem());
    dir.write("session.key", &format!("{SECRET}\n"));
    let (code, stdout, stderr) = check(&cfg);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("Return URLs:             https://app.example.com/oauth2/callback"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Domains and Subdomains:  app.example.com"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "Notification URL:        https://app.example.com/oauth2/apple/notifications"
        ),
        "{stdout}"
    );
    assert!(
        !stdout.contains("warning: server.public_url"),
        "https on a domain: no warning\n{stdout}"
    );

    // An http localhost URL works but is warned about.
    let local = example
        .replace("https://app.example.com", "http://localhost:8080")
        .replace("__Host-applegate", "applegate");
    let cfg = dir.write("local.toml", &local);
    let (code, stdout, _) = check(&cfg);
    assert_eq!(code, 0);
    assert!(
        stdout.contains(
            "warning: server.public_url: Apple accepts only https Return URLs on a domain name"
        ),
        "{stdout}"
    );
}
