//! `relais dkim keygen`: a DKIM key pair for a domain, the private key written with mode 0600,
//! the TXT record to publish and the `[[dkim]]` lines to add printed.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use relais_policy::keygen::{self, Algorithm};

use crate::exit;

/// `relais dkim keygen` arguments.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// The signing domain (`d=`), e.g. `example.org`.
    #[arg(long)]
    domain: String,
    /// The selector (`s=`): the key is published at `SELECTOR._domainkey.DOMAIN`.
    #[arg(long)]
    selector: String,
    /// The key algorithm.
    #[arg(long, value_enum, default_value_t = KeyAlgorithm::Rsa)]
    algorithm: KeyAlgorithm,
    /// Where to write the private key; default: `SELECTOR.DOMAIN.pem` here. An existing file
    /// is never overwritten.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `--algorithm`.
#[derive(ValueEnum, Debug, Clone, Copy)]
enum KeyAlgorithm {
    /// RSA-2048: verified everywhere.
    Rsa,
    /// Ed25519 (RFC 8463): short, but not verified everywhere yet; publish an RSA key too.
    Ed25519,
}

/// Makes the key pair.
pub fn keygen(args: KeygenArgs) -> ExitCode {
    let domain = args
        .domain
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if !relais_proto::address::is_domain(&domain) {
        eprintln!("relais dkim keygen: {:?} is not a domain", args.domain);
        return ExitCode::from(exit::USAGE);
    }
    if !relais_proto::address::is_domain(&args.selector) {
        eprintln!(
            "relais dkim keygen: {:?} is not a usable selector",
            args.selector
        );
        return ExitCode::from(exit::USAGE);
    }
    let algorithm = match args.algorithm {
        KeyAlgorithm::Rsa => Algorithm::Rsa,
        KeyAlgorithm::Ed25519 => Algorithm::Ed25519,
    };
    let key = match keygen::generate(algorithm) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("relais dkim keygen: {e}");
            return ExitCode::from(exit::SERVER);
        }
    };
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}.{domain}.pem", args.selector)));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&out)
        .and_then(|mut f| {
            f.write_all(key.private_pem.as_bytes())
                .and_then(|()| f.sync_all())
        });
    if let Err(e) = written {
        eprintln!("relais dkim keygen: cannot write {}: {e}", out.display());
        return ExitCode::from(exit::CONFIG);
    }
    let path = std::fs::canonicalize(&out).unwrap_or(out);
    println!("# private key ({}): {}", algorithm.name(), path.display());
    println!("# publish this TXT record:");
    println!(
        "{}._domainkey.{domain}. IN TXT {}",
        args.selector,
        quoted(&key.record())
    );
    println!("# and add to relais.toml:");
    println!("[[dkim]]");
    println!("domain = {domain:?}");
    println!("selector = {:?}", args.selector);
    println!("key = {:?}", path.display().to_string());
    ExitCode::from(exit::OK)
}

/// A TXT value as zone files write it: strings of at most 255 characters, each quoted.
fn quoted(text: &str) -> String {
    let parts: Vec<String> = text
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    if parts.len() == 1 {
        parts.concat()
    } else {
        format!("( {} )", parts.join(" "))
    }
}
