//! The server's TLS setup: a certificate from the configuration, or a self-signed one made at
//! first start (rcgen) and kept in `data_dir/tls/` so its fingerprint stays the same.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tracing::info;

use relais_config::Config;

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
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| bad(&cert_path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&cert_path, e))?;
    if certs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no certificate in the file", cert_path.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| bad(&key_path, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("TLS certificate or key: {e}"),
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(server)))
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
