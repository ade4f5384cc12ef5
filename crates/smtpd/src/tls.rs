//! The server's TLS setup: a certificate from the configuration, or a self-signed one made at
//! first start (rcgen) and kept in `data_dir/tls/` so its fingerprint stays the same; more
//! certificates chosen by the name the client asks for (SNI); the oldest protocol version
//! offered; a warning when a certificate expires within [`EXPIRY_WARNING_DAYS`].

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use relais_client::cert;
use relais_config::{Config, TlsVersion};
use relais_metrics::METRICS;
use relais_proto::date::{DateTime, unix_secs};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

/// A certificate that expires within this many days is warned about at start and reload.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// Builds the acceptor, generating a certificate when none is configured.
pub fn acceptor(config: &Config) -> io::Result<TlsAcceptor> {
    let (cert_path, key_path) = match (&config.tls.cert, &config.tls.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let dir = config.data_dir.join("tls");
            let cert = dir.join("cert.pem");
            let key = dir.join("key.pem");
            if !cert.exists() || !key.exists() {
                generate(&config.hostname, &dir, &cert, &key)?;
                info!(
                    "no TLS certificate configured: generated a self-signed one for {} in {}",
                    config.hostname,
                    dir.display()
                );
            }
            (cert, key)
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut expiries = Vec::new();
    let default = load(&provider, &cert_path, &key_path, &mut expiries)?;
    let mut by_name = HashMap::new();
    for pair in &config.tls.sni {
        let key = load(&provider, &pair.cert, &pair.key, &mut expiries)?;
        let names = names_of(&key);
        if names.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: the certificate names no host", pair.cert.display()),
            ));
        }
        for name in names {
            by_name.insert(name, key.clone());
        }
    }
    let versions: &[&rustls::SupportedProtocolVersion] = match config.tls.min_version {
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(BySni { by_name, default }));
    METRICS.certificates(expiries);
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// The certificate for the name the client asked for, else the default one.
#[derive(Debug)]
struct BySni {
    /// Lower-case DNS names (`*.example.org` for a wildcard) to their certificate.
    by_name: HashMap<String, Arc<CertifiedKey>>,
    /// For clients that ask for no name, or for one no other certificate has.
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let wildcard = name.split_once('.').map(|(_, rest)| format!("*.{rest}"));
        Some(
            self.by_name
                .get(&name)
                .or_else(|| wildcard.and_then(|w| self.by_name.get(&w)))
                .unwrap_or(&self.default)
                .clone(),
        )
    }
}

/// A certificate chain and its key, ready to serve; warns when it expires soon, and adds
/// (file, expiry) to `expiries`.
fn load(
    provider: &CryptoProvider,
    cert: &Path,
    key: &Path,
    expiries: &mut Vec<(String, i64)>,
) -> io::Result<Arc<CertifiedKey>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, e))?;
    if certs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no certificate in the file", cert.display()),
        ));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e))?;
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| bad(key, e))?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "TLS certificate or key: {} and {}: {e}",
                cert.display(),
                key.display()
            ),
        )
    })?;
    if let Some(summary) = certified.cert.first().and_then(|c| cert::summarize(c)) {
        expiry_warning(cert, &summary, unix_secs(SystemTime::now()));
        expiries.push((cert.display().to_string(), summary.not_after));
    }
    Ok(Arc::new(certified))
}

/// Warns about a certificate that expires within [`EXPIRY_WARNING_DAYS`] of `now`, or has.
fn expiry_warning(path: &Path, c: &cert::CertSummary, now: i64) {
    let days = c.days_left(now);
    let on = DateTime::from_unix(c.not_after).iso_date();
    if days < 0 {
        warn!("TLS certificate {} expired on {on}", path.display());
    } else if days < EXPIRY_WARNING_DAYS {
        warn!(
            "TLS certificate {} expires in {days} day(s), on {on}",
            path.display()
        );
    }
}

/// The DNS names a certificate serves (its subjectAltName, else its common name), lower case.
fn names_of(key: &CertifiedKey) -> Vec<String> {
    let Some(c) = key.cert.first().and_then(|c| cert::summarize(c)) else {
        return Vec::new();
    };
    let names = if c.dns_names.is_empty() {
        c.subject.into_iter().collect()
    } else {
        c.dns_names
    };
    names
        .into_iter()
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
        .collect()
}

fn bad(path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {e}", path.display()),
    )
}

/// Makes a self-signed certificate for `hostname` (and `localhost`).
fn generate(hostname: &str, dir: &Path, cert: &Path, key: &Path) -> io::Result<()> {
    let mut names = vec![hostname.to_string()];
    if hostname != "localhost" {
        names.push("localhost".into());
    }
    let certified = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
    fs::create_dir_all(dir)?;
    write_private(key, certified.signing_key.serialize_pem().as_bytes())?;
    fs::write(cert, certified.cert.pem())?;
    Ok(())
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}
