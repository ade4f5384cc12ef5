//! Runs `relais` against a fresh fixture DNS server.

use std::process::Command;
use std::time::Duration;

use relais_dns::fixture::{Server, standard};

use crate::common::{RELAIS, process};

/// How long one run may take before the test gives up on it.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

pub use crate::common::process::Run;

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
    let mut command = Command::new(RELAIS);
    command.args(args).args(["--dns-timeout", "0.3"]);
    if let Some(resolver) = resolver {
        command.args(["--resolver", resolver]);
    }
    command.env_remove("RELAIS_RESOLVER");
    for (key, value) in env {
        command.env(key, value);
    }
    process::run(command, None, RUN_TIMEOUT)
}
