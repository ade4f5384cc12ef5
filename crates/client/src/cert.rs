//! Just enough X.509 to show a certificate: subject and issuer common names, the DNS names
//! of the subjectAltName extension, validity dates, and whether it signed itself.
//!
//! A small DER reader (RFC 5280 structure, tag-length-value) instead of a full X.509 crate:
//! the verification itself is rustls'; this only describes. The probe shows it, and the
//! server reads its own certificates' names (SNI) and expiry with it.

use relais_proto::date::parse_asn1_time;

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertSummary {
    /// Subject common name.
    pub subject: Option<String>,
    /// Issuer common name.
    pub issuer: Option<String>,
    /// DNS names of the subjectAltName extension.
    pub dns_names: Vec<String>,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// Subject and issuer are the same name: nobody vouches for it.
    pub self_signed: bool,
}

impl CertSummary {
    /// Days from `now` (Unix seconds) until expiry (negative once expired).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }

    /// Whether `host` is one of the names (wildcards `*.example.org` cover one label), or the
    /// common name when there is no subjectAltName.
    pub fn covers(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let names: Vec<&String> = if self.dns_names.is_empty() {
            self.subject.iter().collect()
        } else {
            self.dns_names.iter().collect()
        };
        names.iter().any(|name| {
            let name = name.to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(suffix) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
                None => name == host,
            }
        })
    }
}

/// One DER element: its tag and contents.
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
}

/// Reads one element from the front of `input`; returns it and the rest.
fn next(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((
        Tlv {
            tag,
            body: &rest[..len],
        },
        &rest[len..],
    ))
}

/// All elements of a constructed element's contents.
fn children(mut body: &[u8]) -> Vec<Tlv<'_>> {
    let mut out = Vec::new();
    while let Some((tlv, rest)) = next(body) {
        out.push(tlv);
        body = rest;
    }
    out
}

const SEQUENCE: u8 = 0x30;
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// Parses a DER certificate; `None` when it is not one this reader understands.
pub fn summarize(der: &[u8]) -> Option<CertSummary> {
    let (cert, _) = next(der)?;
    let tbs = children(cert.body).into_iter().next()?;
    let mut fields = children(tbs.body).into_iter().peekable();
    // [0] EXPLICIT version, when present.
    if fields.peek().is_some_and(|f| f.tag == 0xa0) {
        fields.next();
    }
    let _serial = fields.next()?;
    let _signature = fields.next()?;
    let issuer = fields.next()?;
    let validity = fields.next()?;
    let subject = fields.next()?;
    let _spki = fields.next()?;
    let mut dns_names = Vec::new();
    for field in fields {
        if field.tag == 0xa3 {
            dns_names = alt_names(field.body);
        }
    }
    let times = children(validity.body);
    Some(CertSummary {
        subject: common_name(subject.body),
        issuer: common_name(issuer.body),
        dns_names,
        not_before: time(times.first()?)?,
        not_after: time(times.get(1)?)?,
        self_signed: issuer.body == subject.body,
    })
}

/// The SubjectPublicKeyInfo of a DER certificate, whole (tag and length included): what a
/// TLSA record with selector 1 describes.
pub fn spki(der: &[u8]) -> Option<&[u8]> {
    let (cert, _) = next(der)?;
    let (tbs, _) = next(cert.body)?;
    let mut rest = tbs.body;
    let (first, after) = next(rest)?;
    if first.tag == 0xa0 {
        rest = after;
    }
    // serial, signature, issuer, validity, subject
    for _ in 0..5 {
        rest = next(rest)?.1;
    }
    let (_, after) = next(rest)?;
    Some(&rest[..rest.len() - after.len()])
}

/// The first CN of a Name (SEQUENCE OF SET OF SEQUENCE { OID, value }).
fn common_name(name: &[u8]) -> Option<String> {
    for set in children(name) {
        for attribute in children(set.body) {
            let parts = children(attribute.body);
            if let [oid, value, ..] = parts.as_slice()
                && oid.body == OID_COMMON_NAME
            {
                return Some(String::from_utf8_lossy(value.body).into_owned());
            }
        }
    }
    None
}

/// The dNSName entries of the subjectAltName extension, from `[3] { SEQUENCE OF Extension }`.
fn alt_names(explicit: &[u8]) -> Vec<String> {
    let Some((extensions, _)) = next(explicit) else {
        return Vec::new();
    };
    for extension in children(extensions.body) {
        let parts = children(extension.body);
        let Some(oid) = parts.first() else { continue };
        if oid.body != OID_SUBJECT_ALT_NAME {
            continue;
        }
        // extnValue is the last part: an OCTET STRING holding SEQUENCE OF GeneralName.
        let Some(value) = parts.last() else { continue };
        let Some((names, _)) = next(value.body) else {
            continue;
        };
        if names.tag != SEQUENCE {
            continue;
        }
        return children(names.body)
            .into_iter()
            .filter(|n| n.tag == 0x82)
            .map(|n| String::from_utf8_lossy(n.body).into_owned())
            .collect();
    }
    Vec::new()
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as Unix seconds.
fn time(tlv: &Tlv<'_>) -> Option<i64> {
    let text = std::str::from_utf8(tlv.body).ok()?;
    match tlv.tag {
        0x17 => parse_asn1_time(text, false),
        0x18 => parse_asn1_time(text, true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        // The calendar is relais_proto::date's; what the probe shows of validity dates.
        use relais_proto::date::{DateTime, days_from_civil};
        let date = |unix| DateTime::from_unix(unix).iso_date();
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_868_800), "2000-03-01");
        assert_eq!(date(days_from_civil(2038, 1, 19) * 86_400), "2038-01-19");
    }

    #[test]
    fn validity_times() {
        // (tag, text, Unix seconds)
        let table: &[(u8, &[u8], Option<i64>)] = &[
            (0x17, b"700101000000Z", Some(0)),
            (0x17, b"491231235959Z", Some(2_524_607_999)),
            (0x18, b"20000301000000Z", Some(951_868_800)),
            (0x18, b"700101000000Z", None),
            (0x04, b"700101000000Z", None),
            (0x17, b"\xff", None),
        ];
        for (tag, body, want) in table {
            assert_eq!(time(&Tlv { tag: *tag, body }), *want, "{tag:#x} {body:?}");
        }
    }

    #[test]
    fn days_left_counts_whole_days() {
        let cert = CertSummary {
            subject: None,
            issuer: None,
            dns_names: Vec::new(),
            not_before: 0,
            not_after: 10 * 86_400,
            self_signed: false,
        };
        // (now, days left)
        let table: &[(i64, i64)] = &[(0, 10), (1, 9), (10 * 86_400, 0), (10 * 86_400 + 1, -1)];
        for &(now, left) in table {
            assert_eq!(cert.days_left(now), left, "{now}");
        }
    }

    #[test]
    fn names_and_wildcards() {
        let cert = CertSummary {
            subject: Some("mx.example.test".into()),
            issuer: None,
            dns_names: vec!["mx.example.test".into(), "*.mail.example.test".into()],
            not_before: 0,
            not_after: 0,
            self_signed: false,
        };
        assert!(cert.covers("MX.example.test."));
        assert!(cert.covers("a.mail.example.test"));
        assert!(!cert.covers("a.b.mail.example.test"));
        assert!(!cert.covers("other.test"));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(summarize(b"").is_none());
        assert!(summarize(&[0x30, 0x85, 1, 2, 3]).is_none());
        assert!(summarize(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_none());
    }
}
