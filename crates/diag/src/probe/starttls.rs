//! STARTTLS (not with TLS on connect: the session is encrypted already), EHLO again under TLS,
//! and the certificate verdicts (for the handshake on connect too).

use std::time::{Instant, SystemTime};

use relais_client::{CertVerification, TlsInfo};
use relais_proto::EhloResponse;
use relais_proto::date::{DateTime, unix_secs};
use serde_json::json;

use super::exit;
use super::report::Verdict;
use super::session::{Session, Step, Stop, stage_error};
use relais_client::cert::{self, CertSummary};

impl Session<'_> {
    /// STARTTLS when offered (and not turned off), then EHLO again: returns the new EHLO.
    pub(super) async fn starttls(
        &mut self,
        ehlo: &EhloResponse,
        tls_name: &str,
    ) -> Step<Option<EhloResponse>> {
        if self.context.tls_on_connect {
            return Ok(None);
        }
        self.report.starttls_offered = Some(ehlo.has("STARTTLS"));
        if !ehlo.has("STARTTLS") {
            self.report.stage("starttls", None, "not offered");
            self.add(Verdict::warn(
                "starttls",
                "STARTTLS is not offered: mail to this server travels in clear text".into(),
                "configure a certificate and enable STARTTLS on the server",
            ));
            return Ok(None);
        }
        if !self.context.starttls {
            return Ok(None);
        }
        let started = Instant::now();
        let info = match self.client.starttls(tls_name).await {
            Ok(info) => info,
            Err(e) => {
                let usable = self.client.is_connected() && e.connection_usable();
                self.failed("starttls", started, &e, starttls_failed(&e, usable));
                return if usable { Ok(None) } else { Err(Stop) };
            }
        };
        self.report.stage(
            "starttls",
            Some(started.elapsed()),
            format!("{} {}", info.version, info.cipher),
        );
        self.add(Verdict::ok(
            "starttls",
            format!("STARTTLS: {} with {}", info.version, info.cipher),
        ));
        self.certificate(&info, tls_name);
        let started = Instant::now();
        match self.client.ehlo(&self.context.helo).await {
            Ok(again) => {
                self.report
                    .stage("ehlo-tls", Some(started.elapsed()), "EHLO again under TLS");
                self.report.capabilities = super::ehlo::capabilities(&again);
                Ok(Some(again))
            }
            Err(e) => {
                self.failed("ehlo-tls", started, &e, stage_error(&e, exit::HELO, "ehlo"));
                self.quit_and_stop().await
            }
        }
    }

    /// The certificate of a finished handshake: the `tls` part of the report and its verdicts.
    pub(super) fn certificate(&mut self, info: &TlsInfo, name: &str) {
        let seen = CertObservation::of(info, unix_secs(SystemTime::now()));
        let covers = seen.summary.as_ref().map(|s| s.covers(name));
        self.report.peer_chain = info.peer_certificates.clone();
        self.report.tls = Some(json!({
            "version": info.version,
            "cipher": info.cipher,
            "server_name": info.server_name,
            "verified": seen.verified,
            "verification_error": (!seen.verified).then_some(seen.why.clone()),
            "certificate": seen.summary,
            "days_left": seen.days_left,
            "name_matches": covers,
        }));
        for verdict in certificate_verdicts(&seen, name) {
            self.add(verdict);
        }
    }
}

/// A failed STARTTLS; `usable`: the session can go on in clear text.
pub(super) fn starttls_failed(e: &relais_client::ClientError, usable: bool) -> Verdict {
    let advice = if usable {
        "check the server's TLS configuration and certificate files"
    } else {
        "check the server's TLS configuration (protocol versions, ciphers, certificate and key)"
    };
    Verdict::fail(
        exit::TLS,
        "starttls",
        format!("STARTTLS failed: {e}"),
        advice,
    )
}

/// What a handshake showed of the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CertObservation {
    /// The end-entity certificate, when readable.
    pub(super) summary: Option<CertSummary>,
    /// Days until it expires (negative once expired).
    pub(super) days_left: Option<i64>,
    /// Whether the chain verified.
    pub(super) verified: bool,
    /// Why not, in rustls' words (empty when it verified).
    pub(super) why: String,
}

impl CertObservation {
    fn of(info: &TlsInfo, now: i64) -> CertObservation {
        let summary = info
            .peer_certificates
            .first()
            .and_then(|der| cert::summarize(der));
        let (verified, why) = match &info.verification {
            CertVerification::Verified => (true, String::new()),
            CertVerification::Failed(why) => (false, why.clone()),
        };
        CertObservation {
            days_left: summary.as_ref().map(|s| s.days_left(now)),
            summary,
            verified,
            why,
        }
    }
}

/// The verdicts on a certificate that must name `name`.
pub(super) fn certificate_verdicts(seen: &CertObservation, name: &str) -> Vec<Verdict> {
    let summary = seen.summary.as_ref();
    let covers = summary.map(|s| s.covers(name));
    let why = &seen.why;
    let lower = why.to_ascii_lowercase();
    let expired = seen.days_left.is_some_and(|d| d < 0) || lower.contains("expired");
    let not_yet = lower.contains("notvalidyet") || lower.contains("not valid yet");
    let wrong_name =
        covers == Some(false) || lower.contains("notvalidforname") || lower.contains("name");
    let self_signed = summary.is_some_and(|s| s.self_signed);
    let unknown_issuer = lower.contains("unknownissuer") || lower.contains("unknown issuer");
    let described = summary.map_or_else(|| "certificate not readable".to_string(), describe);
    let warn = |reason: String, advice: &str| Verdict::warn("certificate", reason, advice);
    if expired {
        return vec![Verdict::fail(
            exit::TLS,
            "certificate",
            format!("the certificate has EXPIRED ({described})"),
            "renew the certificate; senders that verify refuse to deliver, others warn",
        )];
    }
    if not_yet {
        return vec![Verdict::fail(
            exit::TLS,
            "certificate",
            format!("the certificate is not valid yet ({described})"),
            "check the server's clock and the certificate's dates",
        )];
    }
    let mut out = Vec::new();
    if self_signed {
        out.push(warn(
            format!("the certificate is self-signed ({described})"),
            "use a certificate from a public CA (Let's Encrypt); senders enforcing DANE or MTA-STS refuse self-signed certificates",
        ));
    } else if unknown_issuer {
        out.push(warn(
            format!("the certificate's issuer is not trusted: {why} ({described})"),
            "send the whole chain (intermediate certificates) and use a public CA",
        ));
    }
    if wrong_name {
        out.push(warn(
            format!("the certificate does not name {name} ({described})"),
            "get a certificate whose subjectAltName lists the MX host name",
        ));
    }
    if seen.verified && !wrong_name {
        let soon = seen.days_left.is_some_and(|d| d < 14);
        let reason = format!(
            "the certificate verifies for {name}{} ({described})",
            seen.days_left
                .map_or(String::new(), |d| format!(", {d} days left"))
        );
        out.push(if soon {
            warn(reason, "renew the certificate soon")
        } else {
            Verdict::ok("certificate", reason)
        });
    } else if !seen.verified && !self_signed && !unknown_issuer && !wrong_name {
        out.push(warn(
            format!("the certificate does not verify: {why} ({described})"),
            "check the certificate chain",
        ));
    }
    out
}

/// Subject, issuer, names and dates in one line.
fn describe(s: &CertSummary) -> String {
    format!(
        "subject {}, issuer {}, names [{}], valid {} to {}",
        s.subject.as_deref().unwrap_or("?"),
        s.issuer.as_deref().unwrap_or("?"),
        s.dns_names.join(", "),
        DateTime::from_unix(s.not_before).iso_date(),
        DateTime::from_unix(s.not_after).iso_date()
    )
}

#[cfg(test)]
mod tests {
    use relais_client::{ClientError, Stage};

    use super::super::report::Level;

    use super::*;

    #[test]
    fn starttls_failures() {
        let e = ClientError::TimedOut {
            stage: Stage::StartTls,
            after: std::time::Duration::from_secs(1),
        };
        for usable in [true, false] {
            let v = starttls_failed(&e, usable);
            assert_eq!(
                (v.level, v.check, v.exit),
                (Level::Fail, "starttls", exit::TLS)
            );
        }
    }

    #[test]
    fn certificates() {
        const DAY: i64 = 86_400;
        let cert = |self_signed: bool| CertSummary {
            subject: Some("mx.example.test".into()),
            issuer: Some(
                if self_signed {
                    "mx.example.test"
                } else {
                    "Test CA"
                }
                .into(),
            ),
            dns_names: vec!["mx.example.test".into()],
            not_before: 0,
            not_after: 100 * DAY,
            self_signed,
        };
        let seen = |self_signed: bool, days_left: i64, why: &str| CertObservation {
            summary: Some(cert(self_signed)),
            days_left: Some(days_left),
            verified: why.is_empty(),
            why: why.into(),
        };
        let (ok, warn, fail) = (Level::Ok, Level::Warn, Level::Fail);
        // (observation, name, verdicts as levels, words in the first reason)
        let table: &[(CertObservation, &str, &[Level], &str)] = &[
            (
                seen(false, 90, ""),
                "mx.example.test",
                &[ok],
                "verifies for mx.example.test, 90 days left",
            ),
            (
                seen(false, 13, ""),
                "mx.example.test",
                &[warn],
                "13 days left",
            ),
            (
                seen(false, 14, ""),
                "mx.example.test",
                &[ok],
                "14 days left",
            ),
            (seen(false, -1, ""), "mx.example.test", &[fail], "EXPIRED"),
            (
                seen(false, 5, "Expired"),
                "mx.example.test",
                &[fail],
                "EXPIRED",
            ),
            (
                seen(false, 90, "NotValidYet"),
                "mx.example.test",
                &[fail],
                "not valid yet",
            ),
            (
                seen(true, 90, "UnknownIssuer"),
                "mx.example.test",
                &[warn],
                "self-signed",
            ),
            (
                seen(false, 90, "UnknownIssuer"),
                "mx.example.test",
                &[warn],
                "issuer is not trusted",
            ),
            (
                seen(false, 90, ""),
                "other.test",
                &[warn],
                "does not name other.test",
            ),
            (
                seen(true, 90, "UnknownIssuer"),
                "other.test",
                &[warn, warn],
                "self-signed",
            ),
            (
                seen(false, 90, "BadSignature"),
                "mx.example.test",
                &[warn],
                "does not verify: BadSignature",
            ),
            (
                CertObservation {
                    summary: None,
                    days_left: None,
                    verified: false,
                    why: "BadEncoding".into(),
                },
                "mx.example.test",
                &[warn],
                "certificate not readable",
            ),
        ];
        for (seen, name, levels, words) in table {
            let verdicts = certificate_verdicts(seen, name);
            let got: Vec<Level> = verdicts.iter().map(|v| v.level).collect();
            assert_eq!(&got, levels, "{seen:?} {name}");
            assert!(verdicts.iter().all(|v| v.check == "certificate"));
            assert!(verdicts[0].reason.contains(words), "{}", verdicts[0].reason);
            if got == [fail] {
                assert_eq!(verdicts[0].exit, exit::TLS);
            }
        }
        assert!(
            certificate_verdicts(&seen(false, 90, ""), "mx.example.test")[0]
                .reason
                .contains("valid 1970-01-01 to 1970-04-11")
        );
    }
}
