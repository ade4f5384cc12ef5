//! Daemons that say nothing on their output once they log to a file (rspamd, clamd,
//! clamav-milter): a bash watcher starts one, prints the `listening on …` line the daemon
//! helper waits for once its port (or socket) answers, and passes SIGTERM on.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::process::Daemon;

/// How long a filter may take to start (rspamd loads its rules for several seconds).
const START: Duration = Duration::from_secs(60);

/// `program args…`, announced once 127.0.0.1:`port` accepts connections.
pub fn on_port(name: &str, program: &str, args: &[String], port: u16) -> Daemon {
    let ready = format!("(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null");
    watched(name, program, args, &ready, &format!("127.0.0.1:{port}"))
}

/// `program args…`, announced once the unix socket `path` exists.
pub fn on_socket(name: &str, program: &str, args: &[String], path: &Path) -> Daemon {
    let ready = format!("[ -S '{}' ]", path.display());
    // The daemon helper reads an address from the line: a socket has none, so a fake one.
    watched(name, program, args, &ready, "127.0.0.1:1")
}

fn watched(name: &str, program: &str, args: &[String], ready: &str, addr: &str) -> Daemon {
    let mut sh = Command::new("bash");
    sh.arg("-c").arg(format!(
        "\"$@\" & pid=$!; trap 'kill $pid; wait $pid; exit 0' TERM INT; \
         for i in $(seq 1 600); do \
           if {ready}; then echo \"listening on {addr}\"; break; fi; \
           kill -0 $pid 2>/dev/null || exit 1; sleep 0.1; done; wait $pid"
    ));
    sh.arg(name).arg(program).args(args);
    Daemon::start(name, sh, 1, START)
}
