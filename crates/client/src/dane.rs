//! DANE for SMTP (RFC 7672): the server's certificate checked against its DNSSEC-validated
//! TLSA records instead of a certificate authority. DANE-EE (usage 3) matches the server's own
//! certificate or public key, whatever its names and dates; DANE-TA (usage 2) matches an
//! authority in the chain the server sent, which then vouches for the server's name. PKIX
//! usages (0, 1) are not used for SMTP. [`matches`] is pure and tested as a table; `tls::verify_chain`
//! judges a chain seen without DANE (`relais check`) as a DANE delivery would.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::cert;
use crate::config::Tlsa;

/// True if the certificate `der` is what `record` describes (its selector and matching type;
/// the usage is the caller's).
pub fn matches(record: &Tlsa, der: &[u8]) -> bool {
    let selected = match record.selector {
        0 => der,
        1 => match cert::spki(der) {
            Some(spki) => spki,
            None => return false,
        },
        _ => return false,
    };
    match record.matching {
        0 => selected == record.data.as_slice(),
        1 => ring::digest::digest(&ring::digest::SHA256, selected).as_ref() == record.data,
        2 => ring::digest::digest(&ring::digest::SHA512, selected).as_ref() == record.data,
        _ => false,
    }
}

/// Checks a server's certificate against its TLSA records.
#[derive(Debug)]
pub(crate) struct DaneVerifier {
    /// The records (usable ones: 2 and 3).
    pub records: Vec<Tlsa>,
    /// The crypto provider, for DANE-TA's chain check.
    pub provider: Arc<CryptoProvider>,
}

impl DaneVerifier {
    /// Checks the chain a server sent against the records (DANE-EE first, then DANE-TA with
    /// the matched authority as the only root and the server's name checked).
    pub fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ee = self.records.iter().filter(|r| r.usage == 3);
        if ee.clone().any(|r| matches(r, end_entity)) {
            return Ok(ServerCertVerified::assertion());
        }
        let ta: Vec<&Tlsa> = self.records.iter().filter(|r| r.usage == 2).collect();
        for (i, authority) in intermediates.iter().enumerate() {
            if !ta.iter().any(|r| matches(r, authority)) {
                continue;
            }
            let mut roots = RootCertStore::empty();
            if roots.add(authority.clone().into_owned()).is_err() {
                continue;
            }
            let verifier =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                    .build()
                    .map_err(|e| rustls::Error::General(e.to_string()))?;
            return verifier.verify_server_cert(
                end_entity,
                &intermediates[..i],
                server_name,
                &[],
                now,
            );
        }
        Err(rustls::Error::General(
            "DANE: the certificate matches none of the TLSA records".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate, DER.
    fn sample() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["mx.example".to_string()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn records_match_certificates_and_keys() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["mx.example".to_string()]).unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let spki = cert::spki(&der).unwrap().to_vec();
        let expected = rcgen::PublicKeyData::subject_public_key_info(&key);
        assert_eq!(spki, expected, "the SubjectPublicKeyInfo");
        assert!(!matches(
            &Tlsa {
                usage: 3,
                selector: 1,
                matching: 1,
                data: vec![]
            },
            &sample()
        ));
        let sha256 = |b: &[u8]| {
            ring::digest::digest(&ring::digest::SHA256, b)
                .as_ref()
                .to_vec()
        };
        let sha512 = |b: &[u8]| {
            ring::digest::digest(&ring::digest::SHA512, b)
                .as_ref()
                .to_vec()
        };
        let t = |selector, matching, data: Vec<u8>| Tlsa {
            usage: 3,
            selector,
            matching,
            data,
        };
        // (record, matches)
        let cases = [
            (t(0, 0, der.clone()), true),
            (t(1, 0, spki.clone()), true),
            (t(0, 1, sha256(&der)), true),
            (t(1, 1, sha256(&spki)), true),
            (t(1, 2, sha512(&spki)), true),
            (t(1, 1, sha256(&der)), false),
            (t(0, 1, sha256(&spki)), false),
            (t(1, 1, vec![0; 32]), false),
            (t(2, 1, sha256(&spki)), false),
            (t(1, 3, sha256(&spki)), false),
        ];
        for (record, want) in cases {
            assert_eq!(matches(&record, &der), want, "{record:?}");
        }
    }
}
