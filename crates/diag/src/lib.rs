//! `relais-diag`: the engines behind `relais explain`, `probe`, `send`, `shell`, `dns` and
//! `dnsbl`, as a library that tests can reach.
//!
//! Its place in the flow: diagnostics are the floor above [`relais_client`] (the SMTP client
//! engine), [`relais_dns`] (lookups with typed outcomes) and [`relais_proto`] (replies,
//! addresses, dates), and below the `relais` binary, its only user. The binary keeps the
//! command line (clap), password prompts, printing and exit codes; everything that talks to a
//! server, judges what it saw or renders a report lives here. Nothing here depends on the
//! server crates.
//!
//! - [`explain`]: plain-words explanations of SMTP reply codes, enhanced status codes and
//!   Outlook error numbers.
//! - [`probe`]: a domain's MX hosts (or one server) probed stage by stage, with verdicts.
//! - [`send`]: one test message and the whole dialogue, as swaks does.
//! - [`shell`]: an interactive (or scripted) SMTP session with helpers.
//! - [`check`]: a domain's whole mail set-up in one report (the probe, and MTA-STS, TLS-RPT,
//!   BIMI, DNS block lists), as text, JSON or an HTML page.
//! - [`dns`]: the DNS and DNSBL reports.
//! - [`sink`]: a test SMTP server with programmable faults and a capture store.
//! - [`whoami`]: this host's source address, its PTR and forward confirmation, the HELO name.

pub mod check;
pub mod dns;
pub mod explain;
mod html;
mod mechanism;
pub mod probe;
pub mod send;
pub mod shell;
pub mod sink;
pub mod whoami;

pub use mechanism::Mechanism;

/// One transcript line as every diagnostic shows it: seconds since the start, marker, text.
pub fn show(e: &relais_client::Entry) -> String {
    format!("{:>8.3} {e}", e.at.as_secs_f64())
}

/// A duration as the reports show it: `12.3 ms`.
fn ms(d: std::time::Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// This host's name, for the default EHLO name and sender (`localhost` when it has none).
fn host_name() -> String {
    gethostname::gethostname()
        .into_string()
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
