//! Runs `relais` against a fresh fixture DNS server.

use std::process::Command;

use relais_dns::fixture::{Server, standard};
use serde_json::Value;

/// One run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The `--json` output.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }

    /// Asserts the exit code, showing the output when it is not the one expected.
    #[track_caller]
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts that stdout contains every one of `parts`.
    #[track_caller]
    pub fn shows(self, parts: &[&str]) -> Run {
        for part in parts {
            assert!(
                self.stdout.contains(part),
                "{part:?} not in the output:\n{}",
                self.stdout
            );
        }
        self
    }
}

/// A fixture server serving the standard zones; dropped at the end of the test.
pub fn server() -> Server {
    Server::start(standard()).expect("start the fixture DNS server")
}

/// Runs `relais ARGS --resolver <server>` with `RELAIS_RESOLVER` set to the server too and a
/// short DNS time-out.
pub fn relais(server: &Server, args: &[&str]) -> Run {
    let addr = server.addr().to_string();
    run_with_env(args, &[("RELAIS_RESOLVER", &addr)], Some(&addr))
}

/// Runs `relais ARGS` with the environment `env` (and `--resolver` when given).
pub fn run_with_env(args: &[&str], env: &[(&str, &str)], resolver: Option<&str>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_relais"));
    command.args(args).args(["--dns-timeout", "0.3"]);
    if let Some(resolver) = resolver {
        command.args(["--resolver", resolver]);
    }
    command.env_remove("RELAIS_RESOLVER");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run relais");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
