//! `relais check DOMAIN`: its arguments and what they mean for [`relais_diag::check`], the
//! outputs (text, `--json`, `--html FILE`) and the exit code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use relais_diag::check::{self, CheckOptions, exit};
use relais_diag::probe::ProbeOptions;
use relais_dns::dnsbl::DEFAULT_ZONES;

use crate::args::DnsOptions;

const EXIT_TABLE: &str = "\
What is checked: the MX hosts (and a null MX); each MX address probed as `relais probe` does
(banner, PTR and forward confirmation, EHLO, STARTTLS and the certificate, postmaster@, a
random recipient, open relay); SPF (evaluated for each MX address), DMARC and, with
--dkim-selector, DKIM keys; MTA-STS (the _mta-sts record, and the policy file fetched over
HTTPS, each MX host in its mx list), TLS-RPT, BIMI; DANE: each MX host's _25._tcp TLSA
records, whether DNSSEC validates them (and the MX records), and whether the certificate each
address offers in STARTTLS matches them (RFC 7672); every MX address on the DNS block lists
(--dnsbl, default: zen.spamhaus.org, bl.spamcop.net, psbl.surriel.com).

Exit codes, by the worst verdict (as monitoring plugins have them):
   0  every verdict is ok
   1  the worst verdict is a warning
   2  the worst verdict is a failure
   3  nothing could be checked: the options do not make sense";

/// `relais check`.
#[derive(Args, Debug)]
#[command(after_long_help = EXIT_TABLE)]
pub struct CheckArgs {
    /// The mail domain.
    domain: String,
    /// The SMTP port of the MX hosts.
    #[arg(long, default_value_t = 25)]
    port: u16,
    /// The name to give in EHLO/HELO (default: this machine's host name).
    #[arg(long)]
    helo: Option<String>,
    /// Seconds to wait for each step of the probe.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Extra CA certificates (PEM) to trust when verifying certificates.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Check the DKIM key of this selector; may be repeated.
    #[arg(long = "dkim-selector", value_name = "SEL")]
    dkim_selectors: Vec<String>,
    /// A DNS block list to look every MX address up on; may be repeated (replaces the
    /// default lists).
    #[arg(long = "dnsbl", value_name = "ZONE")]
    dnsbl: Vec<String>,
    /// Write the report as a self-contained HTML page to FILE too.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Show the SMTP dialogue of each address.
    #[arg(long, short = 'v')]
    transcript: bool,
    /// DNSSEC trust anchors (a file of DNSKEY records) for validating the TLSA records
    /// (default: the root's keys).
    #[arg(long, value_name = "FILE")]
    dnssec_trust_anchor: Option<PathBuf>,
    /// The HTTPS port of the MTA-STS policy host (for tests).
    #[arg(long, default_value_t = 443, hide = true)]
    mta_sts_port: u16,
    #[command(flatten)]
    dns: DnsOptions,
}

/// Runs `relais check`.
pub fn run(args: CheckArgs) -> ExitCode {
    let mut options = match options(&args) {
        Ok(o) => o,
        Err(e) => return unknown(&e),
    };
    let live = crate::progress::live(args.dns.json, args.transcript);
    options.probe.progress = live.as_ref().map(|l| l.progress.clone());
    let report = check::run(options);
    if let Some(live) = &live {
        live.finish();
    }
    let report = match report {
        Ok(r) => r,
        Err(e) => return unknown(&e),
    };
    if let Some(file) = &args.html
        && let Err(e) = std::fs::write(file, report.to_html())
    {
        return unknown(&format!("cannot write {}: {e}", file.display()));
    }
    let output = if args.dns.json {
        report.to_json()
    } else if live.is_some() {
        report.to_text_after_progress()
    } else {
        report.to_text(args.transcript)
    };
    crate::args::print_out(&output);
    ExitCode::from(report.exit())
}

fn options(args: &CheckArgs) -> Result<CheckOptions, String> {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        return Err("--timeout: a positive number of seconds".into());
    }
    let dnsbl_zones = if args.dnsbl.is_empty() {
        DEFAULT_ZONES.iter().map(|z| z.to_string()).collect()
    } else {
        args.dnsbl.clone()
    };
    Ok(CheckOptions {
        probe: ProbeOptions {
            target: args.domain.clone(),
            port: args.port,
            host: false,
            rcpt: None,
            from: None,
            helo: args.helo.clone(),
            timeout: Duration::from_secs_f64(args.timeout),
            slow_banner: Duration::from_secs(10),
            greylist_retry: Duration::ZERO,
            concurrency: 4,
            ca_file: args.ca_file.clone(),
            starttls: true,
            tls_on_connect: false,
            auth: None,
            data: false,
            dkim_selectors: args.dkim_selectors.clone(),
            resolver: args.dns.resolver_options()?,
            ports: Vec::new(),
            progress: None,
        },
        dnsbl_zones,
        sts_port: args.mta_sts_port,
        dnssec_trust_anchor: args.dnssec_trust_anchor.clone(),
    })
}

fn unknown(message: &str) -> ExitCode {
    eprintln!("relais check: {message}");
    ExitCode::from(exit::UNKNOWN)
}
