//! Test certificates made with rcgen, written as PEM files for servers and clients.

use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;

use super::wait::tempdir;

/// A server certificate and its key as PEM files, and the CA that signed it (if any).
pub struct Certs {
    /// The CA certificate to trust (`--ca-file`, `--tls-ca-path`); the certificate itself when
    /// self-signed.
    pub ca: PathBuf,
    /// The server certificate, followed by the CA's when there is one.
    pub chain: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Certs {
    /// A certificate for `name` (and the addresses `ips`) signed by a fresh CA whose common
    /// name is `ca_name`.
    pub fn signed_by(ca_name: &str, name: &str, ips: &[IpAddr]) -> Certs {
        Certs::issue(ca_name, &[name], ips)
    }

    /// One certificate for every name of `names`, signed by a fresh CA named `ca_name`.
    pub fn signed_for(ca_name: &str, names: &[&str]) -> Certs {
        Certs::issue(ca_name, names, &[])
    }

    fn issue(ca_name: &str, names: &[&str], ips: &[IpAddr]) -> Certs {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let mut leaf =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        for ip in ips {
            leaf.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        leaf.distinguished_name.push(DnType::CommonName, names[0]);
        let key = KeyPair::generate().unwrap();
        let cert = leaf.signed_by(&key, &ca).unwrap();
        Certs::write(
            &ca.pem(),
            &format!("{}{}", cert.pem(), ca.pem()),
            &key.serialize_pem(),
        )
    }

    /// A self-signed certificate for `name`.
    pub fn self_signed(name: &str) -> Certs {
        use rcgen::{CertificateParams, DnType, KeyPair};
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Certs::write(&cert.pem(), &cert.pem(), &key.serialize_pem())
    }

    fn write(ca: &str, chain: &str, key: &str) -> Certs {
        let dir = tempdir("relais-certs-");
        let certs = Certs {
            ca: dir.path().join("ca.pem"),
            chain: dir.path().join("chain.pem"),
            key: dir.path().join("key.pem"),
            _dir: dir,
        };
        fs::write(&certs.ca, ca).unwrap();
        fs::write(&certs.chain, chain).unwrap();
        fs::write(&certs.key, key).unwrap();
        certs
    }
}
