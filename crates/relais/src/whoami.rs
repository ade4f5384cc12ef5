//! `relais whoami`: its arguments and the exit code; the checks and the report are
//! [`relais_diag::whoami`]'s.

use std::net::IpAddr;
use std::process::ExitCode;

use clap::Args;
use relais_diag::whoami::{self, DEFAULT_TOWARD, WhoamiOptions, exit};

use crate::args::DnsOptions;

const EXIT_TABLE: &str = "\
The address is the one this host's connections toward --to leave from (the routing table is
asked; nothing is sent). Behind a NAT it is a private address, and the internet sees another:
relais asks no outside service, it says so; give the public one (whatismyip) with --address.

Exit codes:
   0  the address has a PTR that resolves back to it (warnings: a HELO name that differs, a
      private address)
   1  the options do not make sense
   2  no route toward --to: this host cannot reach the internet
   3  the reverse DNS could not be checked (DNS failure)
  42  no PTR, or a PTR that does not resolve back to the address";

/// `relais whoami`.
#[derive(Args, Debug)]
#[command(after_long_help = EXIT_TABLE)]
pub struct WhoamiArgs {
    /// The host whose route is asked for (default: a.root-servers.net, 198.41.0.4).
    #[arg(long, value_name = "IP", default_value_t = DEFAULT_TOWARD)]
    to: IpAddr,
    /// The public address to check instead (what whatismyip shows, when a NAT hides it).
    #[arg(long, value_name = "IP")]
    address: Option<IpAddr>,
    /// The HELO name to compare with the PTR (default: this machine's host name).
    #[arg(long)]
    helo: Option<String>,
    #[command(flatten)]
    dns: DnsOptions,
}

/// Runs `relais whoami`.
pub fn run(args: WhoamiArgs) -> ExitCode {
    let resolver = match args.dns.resolver_options() {
        Ok(r) => r,
        Err(e) => return usage(&e),
    };
    let options = WhoamiOptions {
        toward: args.to,
        address: args.address,
        helo: args.helo,
        resolver,
    };
    match whoami::run(options) {
        Ok(report) => {
            let output = if args.dns.json {
                report.to_json()
            } else {
                report.to_text()
            };
            crate::args::print_out(&output);
            ExitCode::from(report.exit())
        }
        Err(e) => usage(&e),
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("relais: {message}");
    ExitCode::from(exit::USAGE)
}
