//! DKIM key records (RFC 6376 §3.6.1, RFC 8463): the TXT record at
//! `SELECTOR._domainkey.DOMAIN` read tag by tag, with what each tag means and what makes a
//! record unusable to a verifier. mail-auth, which verifies signatures, has the last word:
//! a record [`problem`] calls usable is one mail-auth takes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;

use crate::Lookup;

/// The first byte of a DER key (a SEQUENCE: PKCS#1 `RSAPublicKey` or SubjectPublicKeyInfo).
const DER_SEQUENCE: u8 = 0x30;
/// The smallest DER RSA public key of 1024 bits (PKCS#1: a 128-byte modulus and its framing):
/// RFC 8301 forbids verifiers to accept smaller keys.
const MIN_RSA_DER: usize = 140;

/// One `tag=value` of a DKIM key record, with what it means.
pub fn meaning(tag: &str, value: &str) -> String {
    match tag {
        "v" if value == "DKIM1" => "version".into(),
        "v" => "WRONG version: must be DKIM1".into(),
        "k" => match value {
            "rsa" => "RSA key".into(),
            "ed25519" => "Ed25519 key (RFC 8463)".into(),
            _ => format!("unknown key type {value:?}: verifiers ignore the key"),
        },
        "p" if value.is_empty() => "empty: the key is REVOKED".into(),
        "p" => format!("public key, {} characters of base64", value.len()),
        "h" => format!("hash algorithms allowed: {value}"),
        "t" => value
            .split(':')
            .map(|f| match f.trim() {
                "y" => "y: testing, verifiers treat failures as unsigned",
                "s" => "s: i= must be exactly d=, no subdomains",
                _ => "unknown flag",
            })
            .collect::<Vec<_>>()
            .join("; "),
        "s" => format!("service types: {value}"),
        "n" => "notes".into(),
        _ => "unknown tag (ignored)".into(),
    }
}

/// The tags of a record, in order.
pub fn tags(record: &str) -> Vec<(String, String)> {
    record
        .split(';')
        .filter_map(|t| {
            let (name, value) = t.split_once('=')?;
            // Folding white space (RFC 6376 §2.8): spaces, tabs and line ends, nothing else.
            let value: String = value
                .chars()
                .filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n'))
                .collect();
            Some((name.trim().to_string(), value))
        })
        .collect()
}

/// What is wrong with a key record, if anything.
pub fn problem(record: &str) -> Option<String> {
    // RFC 6376 §3.2: every tag is `name=value`; a verifier rejects a record with one that is not.
    if let Some(bad) = record
        .split(';')
        .map(str::trim)
        .find(|t| !t.is_empty() && !t.contains('='))
    {
        return Some(format!(
            "{bad:?} is no tag=value: verifiers reject the record"
        ));
    }
    let tags = tags(record);
    let tags = tags.as_slice();
    let get = |n: &str| tags.iter().find(|(t, _)| t == n).map(|(_, v)| v.as_str());
    if get("v").is_some_and(|v| v != "DKIM1") {
        return Some("v= is not DKIM1".into());
    }
    let key = match get("p") {
        None => return Some("no p= tag: no key".into()),
        Some("") => return Some("the key is revoked (empty p=)".into()),
        Some(p) => match STANDARD.decode(p) {
            Ok(key) => key,
            Err(_) => return Some("p= is not base64".into()),
        },
    };
    match get("k").unwrap_or("rsa") {
        "rsa" if key.first() != Some(&DER_SEQUENCE) || key.len() < MIN_RSA_DER => {
            return Some(format!(
                "p= is not an RSA public key of 1024 bits or more ({} bytes; RFC 8301)",
                key.len()
            ));
        }
        "ed25519" if key.len() != 32 => {
            return Some(format!(
                "p= is not an Ed25519 key (32 bytes), it has {}",
                key.len()
            ));
        }
        "rsa" | "ed25519" => {}
        _ => return Some("unknown key type".into()),
    }
    // What the verifier reads: tags as listed, whitespace gone.
    let record: Vec<String> = tags.iter().map(|(t, v)| format!("{t}={v}")).collect();
    DomainKey::parse(record.join(";").as_bytes())
        .err()
        .map(|e| format!("verifiers cannot read the record: {e}"))
}

/// The TXT records of a lookup that hold a key (a `p=` tag): one is expected.
pub fn key_records(lookup: &Lookup<String>) -> Vec<&String> {
    lookup
        .records()
        .iter()
        .filter(|r| r.contains("p="))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Public keys made with openssl (SubjectPublicKeyInfo for RSA, raw for Ed25519).
    const RSA_1024: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDaXGhDI7uGXB2TU2uCWhfuJpIraCYkc1/G1RyKDcrIoPhdXvKtD/Kd+gghVHxXSRUg+5BrgDDD6+SznScGkq78a3nktgne/fGE9mx9gl9seCIAxFscvSHL+cAn6Slo5pzIiPS3tgCrxaeUY9kETmrp4USDHiaejlCK/vYraVFXnQIDAQAB";
    const RSA_512: &str = "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBANBClscWPU3IgF5jxB+TvPzuftv8j6ouN9HHKM4VplduytcrW2ZbEwQ2qABHUrjk5WJJylhmSi+GB/NhY8BJhAcCAwEAAQ==";
    const ED25519: &str = "rodNP/PPDc7oo3da3/3NxO2kdTiee1mikrf+uWfKdi0=";

    #[test]
    fn records() {
        let t = tags("v=DKIM1; k=rsa; p=MIIB IjAN");
        assert_eq!(t[2], ("p".to_string(), "MIIBIjAN".to_string()));
        // (record, problem)
        let table: Vec<(String, Option<&str>)> = vec![
            (format!("v=DKIM1; k=rsa; p={RSA_1024}"), None),
            (format!("p={RSA_1024}"), None),
            (format!("v=DKIM1; k=ed25519; p={ED25519}"), None),
            (
                "v=DKIM1; k=rsa; p=AAAA".to_string(),
                Some("not an RSA public key"),
            ),
            (format!("v=DKIM1; p={RSA_512}"), Some("1024 bits")),
            (format!("v=DKIM1; k=ed25519; p={RSA_1024}"), Some("Ed25519")),
            ("v=DKIM1; p=".to_string(), Some("revoked")),
            ("v=DKIM1; k=rsa".to_string(), Some("no p=")),
            ("v=DKIM2; p=AAAA".to_string(), Some("DKIM1")),
            (
                "v=DKIM1; k=dsa; p=AAAA".to_string(),
                Some("unknown key type"),
            ),
            ("v=DKIM1; p=!!!".to_string(), Some("base64")),
            ("v=DKIM1; p; k=rsa".to_string(), Some("no tag=value")),
        ];
        for (record, expected) in &table {
            let got = problem(record);
            match expected {
                None => assert_eq!(got, None, "{record}"),
                Some(word) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(word)),
                    "{record}: {got:?}"
                ),
            }
        }
    }

    /// Found by the `records` fuzz target (artifact crash-0879cfc2…): a segment without `=`
    /// was skipped, so the key was called usable while mail-auth rejects the record.
    #[test]
    fn crash_0879cfc2_a_tag_without_equals_makes_the_record_unusable() {
        let record = "k=ed25519; e; p= rodNP/PPDc7oo3da3/3NxO2kdTiee1mikrf+ uWfKdi0=";
        assert!(
            problem(record).is_some_and(|p| p.contains("\"e\" is no tag=value")),
            "{:?}",
            problem(record)
        );
        // Without the stray segment it is a usable Ed25519 key.
        assert_eq!(problem(&record.replace(" e;", "")), None);
    }

    /// Found by the `records` fuzz target (artifact crash-378365c9…): any Unicode white space
    /// was taken out of values, a vertical tab too, which a verifier does not skip.
    #[test]
    fn crash_378365c9_only_folding_white_space_is_skipped() {
        let record = format!("v=DKIM1; p={}\u{b}{}", &RSA_1024[..20], &RSA_1024[20..]);
        assert!(
            problem(&record).is_some_and(|p| p.contains("base64")),
            "{:?}",
            problem(&record)
        );
        let folded = format!("v=DKIM1; p={}\r\n\t {}", &RSA_1024[..20], &RSA_1024[20..]);
        assert_eq!(problem(&folded), None);
    }
}
