//! DKIM key pairs for `relais dkim keygen`: the private key as PEM (RSA-2048 in PKCS#1,
//! Ed25519 in PKCS#8, the forms [`crate::sign::PrivateKey::load`] reads back) and the TXT
//! record to publish.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::dkim::generate::DkimKeyPair;

/// A key algorithm of DKIM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RSA, 2048 bits (what every verifier knows).
    Rsa,
    /// Ed25519 (RFC 8463): short keys, not yet verified everywhere.
    Ed25519,
}

impl Algorithm {
    /// `rsa` or `ed25519`, as in `k=`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }
}

/// A new key pair.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The private key, PEM.
    pub private_pem: String,
    /// The public key, base64, as in `p=`.
    pub public: String,
}

impl GeneratedKey {
    /// The TXT record to publish at `SELECTOR._domainkey.DOMAIN`.
    pub fn record(&self) -> String {
        record(self.algorithm.name(), &self.public)
    }
}

/// `v=DKIM1; k=ALGORITHM; p=PUBLIC`.
pub fn record(algorithm: &str, public: &str) -> String {
    format!("v=DKIM1; k={algorithm}; p={public}")
}

/// Makes a key pair.
pub fn generate(algorithm: Algorithm) -> Result<GeneratedKey, String> {
    let (label, private, public) = match algorithm {
        Algorithm::Rsa => {
            let pair = DkimKeyPair::generate_rsa(2048).map_err(|e| e.to_string())?;
            let (private, public) = pair.into_inner();
            ("RSA PRIVATE KEY", private, public)
        }
        Algorithm::Ed25519 => {
            let pkcs8 = Ed25519Key::generate_pkcs8().map_err(|e| e.to_string())?;
            let public = Ed25519Key::from_pkcs8_der(&pkcs8)
                .map_err(|e| e.to_string())?
                .public_key();
            ("PRIVATE KEY", pkcs8, public)
        }
    };
    Ok(GeneratedKey {
        algorithm,
        private_pem: pem(label, &private),
        public: STANDARD.encode(public),
    })
}

/// DER as PEM, 64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::PrivateKey;

    #[test]
    fn generated_keys_read_back_with_their_public_key() {
        for algorithm in [Algorithm::Ed25519, Algorithm::Rsa] {
            let key = generate(algorithm).unwrap();
            let path = std::env::temp_dir().join(format!(
                "relais-keygen-{}-{}.pem",
                std::process::id(),
                algorithm.name()
            ));
            std::fs::write(&path, &key.private_pem).unwrap();
            let loaded = PrivateKey::load(&path).unwrap();
            let _ = std::fs::remove_file(&path);
            assert_eq!(loaded.algorithm(), algorithm.name());
            assert_eq!(STANDARD.encode(loaded.public_key()), key.public);
            assert!(
                key.record()
                    .starts_with(&format!("v=DKIM1; k={}; p=", algorithm.name()))
            );
        }
    }
}
