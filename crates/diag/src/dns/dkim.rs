//! The DKIM key report (`relais dns dkim SELECTOR._domainkey.DOMAIN [--key FILE]`): the
//! published record tag by tag, whether a verifier can use it, and whether it is the public
//! half of a local private key.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use relais_dns::dkim::{key_records, meaning, problem, tags};
use relais_dns::{Lookup, Outcome};
use relais_policy::sign::PrivateKey;
use serde_json::json;

use super::{Report, exit, negative, table};

/// True if `published` (the decoded `p=`) is the public half of `local`: RSA keys are
/// published in PKCS#1 or wrapped in a SubjectPublicKeyInfo, whose last bytes are the PKCS#1
/// key.
fn same_key(published: &[u8], local: &[u8]) -> bool {
    !local.is_empty() && published.ends_with(local)
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
            match problem(record) {
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
    fn local_key_is_the_end_of_the_published_one() {
        assert!(same_key(&[1, 2, 3, 4], &[3, 4]));
        assert!(!same_key(&[1, 2, 3, 4], &[]));
        assert!(!same_key(&[1, 2], &[1, 2, 3]));
    }
}
