//! The DKIM key report (`relais dns dkim SELECTOR._domainkey.DOMAIN [--key FILE]`): the
//! published record tag by tag, whether a verifier can use it, and whether it is the public
//! half of a local private key.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use relais_dns::{Lookup, Outcome};
use relais_policy::sign::PrivateKey;
use serde_json::json;

use super::{Report, exit, negative, table};

/// One `tag=value` of a DKIM key record, with what it means.
fn meaning(tag: &str, value: &str) -> String {
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
pub(crate) fn tags(record: &str) -> Vec<(String, String)> {
    record
        .split(';')
        .filter_map(|t| {
            let (name, value) = t.split_once('=')?;
            let value: String = value.chars().filter(|c| !c.is_whitespace()).collect();
            Some((name.trim().to_string(), value))
        })
        .collect()
}

/// What is wrong with a key record, if anything.
pub(crate) fn problem(tags: &[(String, String)]) -> Option<String> {
    let get = |n: &str| tags.iter().find(|(t, _)| t == n).map(|(_, v)| v.as_str());
    if get("v").is_some_and(|v| v != "DKIM1") {
        return Some("v= is not DKIM1".into());
    }
    match get("p") {
        None => return Some("no p= tag: no key".into()),
        Some("") => return Some("the key is revoked (empty p=)".into()),
        Some(p) if STANDARD.decode(p).is_err() => return Some("p= is not base64".into()),
        _ => {}
    }
    if get("k").is_some_and(|k| k != "rsa" && k != "ed25519") {
        return Some("unknown key type".into());
    }
    None
}

/// True if `published` (the decoded `p=`) is the public half of `local`: RSA keys are
/// published in PKCS#1 or wrapped in a SubjectPublicKeyInfo, whose last bytes are the PKCS#1
/// key.
fn same_key(published: &[u8], local: &[u8]) -> bool {
    !local.is_empty() && published.ends_with(local)
}

/// The TXT records of a lookup that hold a key (a `p=` tag): one is expected.
pub(crate) fn key_records(lookup: &Lookup<String>) -> Vec<&String> {
    lookup
        .records()
        .iter()
        .filter(|r| r.contains("p="))
        .collect()
}

pub(super) fn dkim_report(name: &str, lookup: Lookup<String>, key: Option<&Path>) -> Report {
    let mut text = format!("DKIM key at {name}:\n");
    let records = key_records(&lookup);
    let mut json = json!({ "name": name });
    let mut code = match (&lookup.outcome, records.as_slice()) {
        (Outcome::Found(_), [record]) => {
            let tags = tags(record);
            let _ = writeln!(text, "  {record}");
            let rows: Vec<Vec<String>> = tags
                .iter()
                .map(|(t, v)| {
                    let shown = if t == "p" && v.len() > 24 {
                        format!("{}…", &v[..24])
                    } else {
                        v.clone()
                    };
                    vec![t.clone(), shown, meaning(t, v)]
                })
                .collect();
            text.push_str(&table(&rows, "    "));
            json["record"] = json!(record);
            match problem(&tags) {
                Some(why) => {
                    let _ = writeln!(
                        text,
                        "  UNUSABLE: {why}: signatures with this selector fail"
                    );
                    json["problem"] = json!(why);
                    exit::NEGATIVE
                }
                None => {
                    text.push_str("  usable: verifiers can check signatures with this key\n");
                    exit::OK
                }
            }
        }
        (Outcome::Found(_), []) => {
            text.push_str("  TXT records, but none with a p= tag: no DKIM key here\n");
            exit::NEGATIVE
        }
        (Outcome::Found(_), _) => {
            text.push_str("  several key records: verifiers may pick any, publish one\n");
            exit::NEGATIVE
        }
        _ => {
            let (code, line) = negative(&lookup);
            let _ = writeln!(text, "  {line}");
            code
        }
    };
    if let Some(path) = key {
        let published = records
            .first()
            .and_then(|r| tags(r).into_iter().find(|(t, _)| t == "p"))
            .and_then(|(_, p)| STANDARD.decode(p).ok());
        match PrivateKey::load(path) {
            Ok(local) => {
                let matches = published
                    .as_deref()
                    .is_some_and(|p| same_key(p, &local.public_key()));
                let verdict = if matches {
                    "matches the published key"
                } else {
                    "DOES NOT MATCH the published key: signatures made with it fail"
                };
                let _ = writeln!(
                    text,
                    "  local key {} ({}): {verdict}",
                    path.display(),
                    local.algorithm()
                );
                json["local_key"] =
                    json!({ "file": path.display().to_string(), "matches": matches });
                if !matches && code == exit::OK {
                    code = exit::NEGATIVE;
                }
            }
            Err(e) => {
                let _ = writeln!(text, "  local key: cannot read it: {e}");
                json["local_key"] = json!({ "file": path.display().to_string(), "error": e });
                code = exit::USAGE;
            }
        }
    }
    Report { text, json, code }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records() {
        let t = tags("v=DKIM1; k=rsa; p=MIIB IjAN");
        assert_eq!(t[2], ("p".to_string(), "MIIBIjAN".to_string()));
        // (record, problem)
        let table: &[(&str, Option<&str>)] = &[
            ("v=DKIM1; k=rsa; p=AAAA", None),
            ("p=AAAA", None),
            ("v=DKIM1; k=ed25519; p=AAAA", None),
            ("v=DKIM1; p=", Some("revoked")),
            ("v=DKIM1; k=rsa", Some("no p=")),
            ("v=DKIM2; p=AAAA", Some("DKIM1")),
            ("v=DKIM1; k=dsa; p=AAAA", Some("unknown key type")),
            ("v=DKIM1; p=!!!", Some("base64")),
        ];
        for (record, expected) in table {
            let got = problem(&tags(record));
            match expected {
                None => assert_eq!(got, None, "{record}"),
                Some(word) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(word)),
                    "{record}: {got:?}"
                ),
            }
        }
        assert!(same_key(&[1, 2, 3, 4], &[3, 4]));
        assert!(!same_key(&[1, 2, 3, 4], &[]));
        assert!(!same_key(&[1, 2], &[1, 2, 3]));
    }
}
