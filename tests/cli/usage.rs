//! The command line itself: help, version and usage errors (clap's).

use std::process::Command;

use super::BIN;

/// Runs `applegate ARGS`: exit code, stdout, stderr.
fn applegate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--help` lists every command and exits 0; a bare `applegate` prints the
/// same help (someone finding their way is not a usage error).
#[test]
fn help_lists_the_commands_and_exits_0() {
    for args in [&["--help"][..], &["-h"], &["help"], &[]] {
        let (code, stdout, stderr) = applegate(args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(stdout.contains("Usage: applegate"), "{args:?}: {stdout}");
        for command in ["run", "check", "dev", "health", "version"] {
            assert!(
                stdout.contains(&format!("\n  {command} ")),
                "{args:?} lists {command}: {stdout}"
            );
        }
        assert!(
            stdout.contains("APPLEGATE_SESSION_SECRET"),
            "where secrets come from: {stdout}"
        );
    }
}

/// Each command has its own help, naming its options, and exits 0.
#[test]
fn each_command_has_its_own_help() {
    for (command, option) in [
        ("run", "--config <FILE>"),
        ("check", "--config <FILE>"),
        ("dev", "--port <N>"),
    ] {
        let (code, stdout, stderr) = applegate(&[command, "--help"]);
        assert_eq!(code, 0, "{command} --help: {stderr}");
        assert!(
            stdout.contains(&format!("Usage: applegate {command}")),
            "{stdout}"
        );
        assert!(stdout.contains(option), "{command} --help: {stdout}");
    }
    let (_, stdout, _) = applegate(&["dev", "--help"]);
    assert!(stdout.contains("[default: 4180]"), "{stdout}");
}

/// `--version`, `-V` and `version` print the version and exit 0.
#[test]
fn version_exits_0() {
    let want = format!("applegate {}\n", env!("CARGO_PKG_VERSION"));
    for args in [&["--version"][..], &["-V"], &["version"]] {
        assert_eq!(
            applegate(args),
            (0, want.clone(), String::new()),
            "{args:?}"
        );
    }
}

/// An unknown command, an unknown option, a missing `--config` or a bad
/// port is a usage error: clap's message on stderr, exit 2, nothing run.
#[test]
fn usage_errors_exit_2_with_clap_message() {
    for (args, message) in [
        (
            &["frobnicate"][..],
            "error: unrecognized subcommand 'frobnicate'\n\nUsage: applegate",
        ),
        (
            &["run", "--frobnicate"],
            "error: unexpected argument '--frobnicate'",
        ),
        (
            &["run"],
            "error: the following required arguments were not provided",
        ),
        (&["check"], "--config <FILE>"),
        (
            &["dev", "--port", "0"],
            "error: invalid value '0' for '--port <N>'",
        ),
        (&["dev", "--port", "65533"], "error: invalid value '65533'"),
        (
            &["dev", "--config", "x.toml"],
            "error: unexpected argument '--config'",
        ),
        (&["--config", "x.toml", "run"], "error:"),
    ] {
        let (code, stdout, stderr) = applegate(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(
            stderr.contains("For more information, try '--help'."),
            "{args:?}: {stderr}"
        );
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
}

/// `applegate --config FILE` with no command still means `run`: a bad
/// config is reported as `run` reports it, exit 2.
#[test]
fn config_without_a_command_runs() {
    let (code, _, stderr) = applegate(&["--config", "/nonexistent/x.toml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("applegate run: /nonexistent/x.toml has 1 problem")
            && stderr.contains("cannot read config file"),
        "{stderr}"
    );
}
