//! TLS for the client: rustls with the ring provider, and certificate verification that can be
//! reported instead of enforced.
//!
//! Design note: with [`TlsPolicy::verify`] off, the handshake accepts any certificate (it still
//! checks that the server holds the key: handshake signatures are always verified), and once it
//! is done the chain is verified separately against the same trust store. The outcome lands in
//! [`TlsInfo::verification`]. A probe can then show an expired or self-signed certificate
//! instead of a bare handshake failure, and the verifying path is the same code either way.

use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;

use crate::config::{TlsPolicy, Tlsa};
use crate::dane::DaneVerifier;

/// What was negotiated, and what the certificate is worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The IANA name of the cipher suite (`TLS13_AES_256_GCM_SHA384`).
    pub cipher: String,
    /// The name the certificate was checked against (and sent as SNI when it is a DNS name).
    pub server_name: String,
    /// The server's certificate chain as sent, end-entity first, DER.
    pub peer_certificates: Vec<Vec<u8>>,
    /// Whether the chain verifies for `server_name` against the trust store.
    pub verification: CertVerification,
}

/// The result of verifying the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertVerification {
    /// The chain leads to a trusted root, is valid now and names the server.
    Verified,
    /// It does not; the reason in rustls' words (expired, unknown issuer, name mismatch, …).
    Failed(String),
}

impl CertVerification {
    /// True for [`CertVerification::Verified`].
    pub fn is_verified(&self) -> bool {
        matches!(self, CertVerification::Verified)
    }
}

/// A connector for one session plus the verifier used to judge the certificate afterwards.
pub(crate) struct TlsSetup {
    /// Performs the handshake.
    pub connector: TlsConnector,
    /// Verifies a chain; an error when there is no usable trust store.
    verifier: Result<Arc<WebPkiServerVerifier>, String>,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup")
            .field("trust_store", &self.verifier.is_ok())
            .finish()
    }
}

/// The one crypto provider: ring.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

/// The system's trust anchors, read once per process.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

impl TlsSetup {
    /// Builds the rustls configuration for `policy`.
    pub fn new(policy: &TlsPolicy) -> Result<TlsSetup, String> {
        let provider = provider();
        let mut roots = RootCertStore::empty();
        if !policy.ca_file_only {
            roots.add_parsable_certificates(system_roots().iter().cloned());
        }
        if let Some(file) = &policy.ca_file {
            let certs = CertificateDer::pem_file_iter(file)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read CA file {}: {e}", file.display()))?;
            if certs.is_empty() {
                return Err(format!("no certificate in CA file {}", file.display()));
            }
            roots.add_parsable_certificates(certs);
        }
        let verifier = if roots.is_empty() {
            Err("no trusted root certificates available".to_string())
        } else {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| e.to_string())
        };
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let dane = (!policy.dane.is_empty()).then(|| DaneVerifier {
            records: policy.dane.clone(),
            provider: Arc::clone(&provider),
        });
        let config = if policy.verify && dane.is_none() {
            builder.with_webpki_verifier(Arc::clone(verifier.as_ref().map_err(Clone::clone)?))
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ReportOnly {
                    algorithms: provider.signature_verification_algorithms,
                    dane,
                }))
        }
        .with_no_client_auth();
        Ok(TlsSetup {
            connector: TlsConnector::from(Arc::new(config)),
            verifier,
        })
    }

    /// Verifies the chain the server sent, for `name`, now.
    pub fn verify(
        &self,
        chain: &[CertificateDer<'static>],
        name: &ServerName<'static>,
    ) -> CertVerification {
        let verifier = match &self.verifier {
            Ok(v) => v,
            Err(e) => return CertVerification::Failed(e.clone()),
        };
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return CertVerification::Failed("the server sent no certificate".into());
        };
        match verifier.verify_server_cert(end_entity, intermediates, name, &[], UnixTime::now()) {
            Ok(_) => CertVerification::Verified,
            Err(e) => CertVerification::Failed(e.to_string()),
        }
    }
}

/// The negotiated protocol version (`TLSv1.3`) and the IANA name of the cipher suite
/// (`TLS13_AES_256_GCM_SHA384`) of a finished handshake, client or server side: what the
/// diagnostics show and what `Received` headers say.
pub fn negotiated(conn: &rustls::CommonState) -> (String, String) {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => "unknown".to_string(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| {
            let suite = s.suite();
            suite
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{suite:?}"))
        })
        .unwrap_or_else(|| "unknown".to_string());
    (version, cipher)
}

/// Summarizes a finished handshake.
pub(crate) fn info(
    setup: &TlsSetup,
    conn: &rustls::ClientConnection,
    name: &ServerName<'static>,
) -> TlsInfo {
    let (version, cipher) = negotiated(conn);
    let chain: Vec<CertificateDer<'static>> = conn
        .peer_certificates()
        .map(<[CertificateDer<'static>]>::to_vec)
        .unwrap_or_default();
    TlsInfo {
        version,
        cipher,
        server_name: name.to_str().into_owned(),
        verification: setup.verify(&chain, name),
        peer_certificates: chain.iter().map(|c| c.as_ref().to_vec()).collect(),
    }
}

/// Accepts any certificate during the handshake (unless DANE records say which) but still
/// checks the handshake signatures, so the server must hold the private key of what it
/// presents. See the module notes.
#[derive(Debug)]
struct ReportOnly {
    /// The provider's signature algorithms.
    algorithms: WebPkiSupportedAlgorithms,
    /// The server's TLSA records, when DANE decides instead of a certificate authority.
    dane: Option<DaneVerifier>,
}

impl ServerCertVerifier for ReportOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.dane {
            Some(dane) => dane.verify(end_entity, intermediates, server_name, now),
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Parses a server name for SNI and verification: a DNS name or an IP address.
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    let trimmed = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(trimmed.to_string())
        .map_err(|e| format!("bad TLS server name {name:?}: {e}"))
}

/// Whether the chain a server sent (end-entity first, DER) is what its TLSA `records` allow for
/// the host `name`, checked as a delivery with DANE checks it during the handshake
/// ([`DaneVerifier`]): for a diagnosis of a session that did not enforce DANE. The error says
/// why not, in rustls' words.
pub fn verify_chain(records: &[Tlsa], chain: &[Vec<u8>], name: &str) -> Result<(), String> {
    let (end_entity, rest) = chain
        .split_first()
        .ok_or("the server sent no certificate")?;
    let name = server_name(name)?;
    let verifier = DaneVerifier {
        records: records.to_vec(),
        provider: provider(),
    };
    let intermediates: Vec<CertificateDer<'_>> = rest
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    verifier
        .verify(
            &CertificateDer::from(end_entity.as_slice()),
            &intermediates,
            &name,
            UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        assert!(server_name("mx.example.com").is_ok());
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("[::1]").is_ok());
        assert!(server_name("bad name").is_err());
    }

    #[test]
    fn a_missing_ca_file_is_an_error() {
        let policy = TlsPolicy {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsPolicy::default()
        };
        assert!(TlsSetup::new(&policy).is_err());
    }

    #[test]
    fn no_roots_means_every_chain_fails_but_the_setup_works() {
        let policy = TlsPolicy {
            ca_file_only: true,
            ..TlsPolicy::default()
        };
        let setup = TlsSetup::new(&policy).expect("report-only setup needs no roots");
        let name = server_name("mx.example.com").unwrap();
        assert!(matches!(
            setup.verify(&[], &name),
            CertVerification::Failed(_)
        ));
        let enforcing = TlsPolicy {
            verify: true,
            ..policy
        };
        assert!(TlsSetup::new(&enforcing).is_err());
    }

    #[test]
    fn chains_are_judged_as_a_dane_delivery_judges_them() {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["mx.example".to_string()]).unwrap();
        let leaf = params.signed_by(&key, &ca).unwrap().der().to_vec();
        let chain = vec![leaf.clone(), ca.der().to_vec()];
        let t = |usage, data: &[u8]| Tlsa {
            usage,
            selector: 0,
            matching: 0,
            data: data.to_vec(),
        };
        // (records, name, accepted)
        let cases = [
            (vec![t(3, &leaf)], "mx.example", true),
            // DANE-EE: whatever the name.
            (vec![t(3, &leaf)], "other.example", true),
            (vec![t(2, ca.der())], "mx.example", true),
            // DANE-TA: the authority vouches for the host's name only.
            (vec![t(2, ca.der())], "other.example", false),
            (vec![t(3, ca.der())], "mx.example", false),
            (vec![t(2, &leaf)], "mx.example", false),
        ];
        for (records, name, want) in cases {
            let got = verify_chain(&records, &chain, name);
            assert_eq!(got.is_ok(), want, "{records:?} {name}: {got:?}");
        }
        assert!(verify_chain(&[t(3, &leaf)], &[], "mx.example").is_err());
    }
}
