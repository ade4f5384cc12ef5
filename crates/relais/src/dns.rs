//! `relais dns` and `relais dnsbl`: their arguments, the query they mean for
//! [`relais_diag::dns`], printing and the exit code. Every lookup goes to `--resolver IP[:PORT]`
//! (or `$RELAIS_RESOLVER`), else to the nameservers of `/etc/resolv.conf`; the exit code table
//! is in the library's documentation and in `--help` (64: the command line was not understood,
//! as for any `relais` command).

use std::net::IpAddr;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use relais_diag::dns::{self, Query, exit};

use crate::args::DnsOptions;

const EXIT_TABLE: &str = "\
Exit codes:
  0  found: records exist; mail hosts with addresses; PTR forward-confirmed; SPF record
     valid, or 'pass' with --ip; DMARC record valid; not listed on any zone
  1  a negative answer: NXDOMAIN or NODATA; null MX or no reachable mail host; no PTR or
     PTR not forward-confirmed; no SPF record, an invalid one, or a result other than
     'pass'; no valid DMARC record; listed on a zone
  64 the command line was not understood
  4  an argument was not understood (--resolver, a name that cannot be a DNS name)
  5  the DNS failed: time-out, SERVFAIL, REFUSED, network error, SPF 'temperror', a list
     answering with one of its error codes (and no zone listing the address)

The resolver: --resolver IP[:PORT] (IPv6: [addr]:port), else $RELAIS_RESOLVER, else the
nameservers of /etc/resolv.conf. Names are always queried fully qualified.";

/// `relais dns`.
#[derive(Args, Debug)]
#[command(after_long_help = EXIT_TABLE)]
pub struct DnsArgs {
    #[command(subcommand)]
    query: DnsQuery,
    #[command(flatten)]
    options: DnsOptions,
}

#[derive(Subcommand, Debug)]
enum DnsQuery {
    /// Where mail for a domain goes: MX hosts by preference with their addresses, null MX
    /// (RFC 7505), or the domain's own address when it has no MX (implicit MX).
    Mx {
        /// The mail domain.
        domain: String,
    },
    /// The A and AAAA records of a host.
    #[command(alias = "aaaa")]
    A {
        /// The host name.
        host: String,
    },
    /// The PTR of an address, and whether it is forward-confirmed (the PTR name resolves
    /// back to the address).
    Ptr {
        /// The address (IPv4 or IPv6).
        ip: IpAddr,
    },
    /// The TXT records of a name.
    Txt {
        /// The name.
        name: String,
    },
    /// The SPF record of a domain, term by term; with --ip, evaluated for that address.
    Spf {
        /// The domain (of the MAIL FROM address).
        domain: String,
        /// Evaluate the record for this client address.
        #[arg(long)]
        ip: Option<IpAddr>,
        /// The HELO name the client gave (for %{h} macros; default: the domain).
        #[arg(long)]
        helo: Option<String>,
        /// The MAIL FROM address (for %{s} and %{l} macros; default: postmaster@DOMAIN). Its
        /// domain must be DOMAIN.
        #[arg(long)]
        sender: Option<String>,
    },
    /// The DKIM key published at SELECTOR._domainkey.DOMAIN, tag by tag; with --key, whether
    /// it is the public half of that private key (as `relais dkim keygen` writes it).
    Dkim {
        /// The key's name: SELECTOR._domainkey.DOMAIN.
        name: String,
        /// A private key file (PEM) to compare with the published key.
        #[arg(long)]
        key: Option<std::path::PathBuf>,
    },
    /// The DMARC record that applies to a domain (its own, or a parent's).
    Dmarc {
        /// The domain (of the From: header).
        domain: String,
    },
}

/// `relais dnsbl`.
#[derive(Args, Debug)]
#[command(after_long_help = EXIT_TABLE)]
pub struct DnsblArgs {
    /// The address to check.
    ip: IpAddr,
    /// A DNSBL zone to ask (repeat for several). Default: zen.spamhaus.org, bl.spamcop.net,
    /// psbl.surriel.com.
    #[arg(long = "zone", value_name = "ZONE")]
    zones: Vec<String>,
    #[command(flatten)]
    options: DnsOptions,
}

/// Runs `relais dns`.
pub fn run(args: DnsArgs) -> ExitCode {
    let query = match args.query {
        DnsQuery::Mx { domain } => Query::Mx(domain),
        DnsQuery::A { host } => Query::A(host),
        DnsQuery::Ptr { ip } => Query::Ptr(ip),
        DnsQuery::Txt { name } => Query::Txt(name),
        DnsQuery::Spf {
            domain,
            ip,
            helo,
            sender,
        } => Query::Spf {
            domain,
            ip,
            helo,
            sender,
        },
        DnsQuery::Dmarc { domain } => Query::Dmarc(domain),
        DnsQuery::Dkim { name, key } => Query::Dkim { name, key },
    };
    execute(query, &args.options)
}

/// Runs `relais dnsbl`.
pub fn run_dnsbl(args: DnsblArgs) -> ExitCode {
    let DnsblArgs { ip, zones, options } = args;
    execute(Query::Dnsbl { ip, zones }, &options)
}

/// Checks the query and the options, looks up, prints, returns the exit code.
fn execute(query: Query, options: &DnsOptions) -> ExitCode {
    let answer = query
        .check()
        .map_err(|message| (exit::USAGE, message))
        .and_then(|()| {
            let resolver = options
                .resolver_options()
                .map_err(|message| (exit::USAGE, message))?;
            dns::run(query, &resolver, options.json)
        });
    match answer {
        Ok(answer) => {
            crate::args::print_out(&answer.output);
            ExitCode::from(answer.code)
        }
        Err((code, message)) => {
            eprintln!("relais: {message}");
            ExitCode::from(code)
        }
    }
}
