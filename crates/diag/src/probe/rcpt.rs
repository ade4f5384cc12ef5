//! The RCPT probes: the given recipient, `postmaster@` the domain, a random local part there
//! (are recipients verified?), and an address at a foreign domain (an open relay?), with one
//! retry on a 4xx to detect greylisting.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use relais_client::ClientError;
use relais_proto::Reply;

use super::report::Verdict;
use super::session::{Session, Step, Stop, stage_error};
use super::{FOREIGN_DOMAIN, exit};

impl Session<'_> {
    /// The recipient probes; stops when the connection is gone.
    pub(super) async fn rcpt_probes(&mut self, authenticated: bool) -> Step {
        let context = self.context;
        let probes = probes(
            context.rcpt.as_deref(),
            context.domain.as_deref(),
            random_local,
        );
        let retry = context.greylist_retry;
        let mut greylist_checked = false;
        for (check, address) in probes {
            let started = Instant::now();
            let mut reply = match self.client.command(format!("RCPT TO:<{address}>")).await {
                Ok(reply) => reply,
                Err(e) => {
                    self.failed("rcpt", started, &e, stage_error(&e, exit::RCPT, check));
                    return Err(Stop);
                }
            };
            self.report.stage(
                "rcpt",
                Some(started.elapsed()),
                format!("<{address}>: {reply}"),
            );
            if reply.is_transient() && !greylist_checked && !retry.is_zero() {
                greylist_checked = true;
                let again = match self.retry_rcpt(&address).await {
                    Ok(again) => again,
                    Err(e) => {
                        self.add(stage_error(&e, exit::RCPT, check));
                        return Err(Stop);
                    }
                };
                let seconds = retry.as_secs_f64();
                self.report.stage(
                    "rcpt",
                    None,
                    format!("<{address}> again after {seconds:.1} s: {again}"),
                );
                if again.is_positive() {
                    self.add(Verdict::warn(
                        "greylisting",
                        format!("greylisting: {reply}, then accepted {seconds:.1} s later"),
                        "first mail from a new sender is delayed; make sure legitimate senders retry (they do) and whitelist partners if the delay hurts",
                    ));
                }
                reply = again;
            }
            self.add(rcpt_verdict(check, &address, &reply, authenticated));
        }
        Ok(())
    }

    /// RSET, wait, MAIL and RCPT again.
    async fn retry_rcpt(&mut self, address: &str) -> Result<Reply, ClientError> {
        self.client.command("RSET").await?;
        tokio::time::sleep(self.context.greylist_retry).await;
        let from = &self.context.from;
        self.client.command(format!("MAIL FROM:<{from}>")).await?;
        self.client.command(format!("RCPT TO:<{address}>")).await
    }
}

/// The probes as (check, address): the recipient, postmaster@ and a random local part at the
/// domain (when there is one), and a random address at a foreign domain.
fn probes(
    rcpt: Option<&str>,
    domain: Option<&str>,
    random_local: fn() -> String,
) -> Vec<(&'static str, String)> {
    let mut probes: Vec<(&'static str, String)> = Vec::new();
    if let Some(rcpt) = rcpt {
        probes.push(("rcpt", rcpt.to_string()));
    }
    if let Some(domain) = domain {
        let postmaster = format!("postmaster@{domain}");
        if !rcpt.is_some_and(|r| r.eq_ignore_ascii_case(&postmaster)) {
            probes.push(("postmaster", postmaster));
        }
        probes.push((
            "recipient-verification",
            format!("{}@{domain}", random_local()),
        ));
    }
    probes.push(("open-relay", format!("{}@{FOREIGN_DOMAIN}", random_local())));
    probes
}

/// The verdict on the (last) answer to one RCPT probe.
pub(super) fn rcpt_verdict(
    check: &'static str,
    address: &str,
    reply: &Reply,
    authenticated: bool,
) -> Verdict {
    let accepted = reply.is_positive();
    match check {
        "rcpt" | "postmaster" => {
            if accepted {
                Verdict::ok(check, format!("<{address}> accepted: {reply}"))
            } else if reply.is_transient() {
                Verdict::warn(
                    if check == "rcpt" {
                        "greylisting"
                    } else {
                        check
                    },
                    format!("<{address}> deferred: {reply}: greylisting or a temporary problem"),
                    "retry later (--greylist-retry SECONDS retries in the same session)",
                )
            } else {
                let advice = if check == "postmaster" {
                    "RFC 5321 4.5.1 requires every domain to accept mail for postmaster: add the alias"
                } else {
                    "check the address, the server's recipient maps and aliases, and its log"
                };
                let outlook = if reply.code == 550 {
                    " (Outlook 0x800CCC69)"
                } else {
                    ""
                };
                Verdict::fail(
                    exit::RCPT,
                    check,
                    format!("<{address}> refused: {reply}{outlook}"),
                    advice,
                )
            }
        }
        "recipient-verification" => {
            if accepted {
                Verdict::warn(
                    check,
                    format!(
                        "a random address <{address}> was accepted: a catch-all, or recipients are not verified at RCPT time"
                    ),
                    "unknown recipients should be refused with 550 5.1.1 during the SMTP dialogue, or the server sends bounces to forged senders (backscatter)",
                )
            } else {
                Verdict::ok(check, format!("unknown recipients are refused: {reply}"))
            }
        }
        _ => {
            if accepted && authenticated {
                Verdict::ok(
                    "open-relay",
                    format!(
                        "relaying allowed for the authenticated user (expected): <{address}>: {reply}"
                    ),
                )
            } else if accepted {
                Verdict::fail(
                    exit::OPEN_RELAY,
                    "open-relay",
                    format!(
                        "OPEN RELAY: <{address}>, at a domain this server does not handle, was accepted from an unauthenticated client: {reply}"
                    ),
                    "restrict relaying to authenticated users and your own networks (Postfix: smtpd_relay_restrictions); spammers find open relays within hours",
                )
            } else {
                Verdict::ok("open-relay", format!("relaying refused: {reply}"))
            }
        }
    }
}

/// A local part nobody has: `relais-probe-` and 12 hexadecimal digits.
fn random_local() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("relais-probe-{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::super::report::Level;
    use super::*;

    #[test]
    fn which_probes() {
        let local = || "x".to_string();
        let checks = |rcpt, domain| -> Vec<(&'static str, String)> { probes(rcpt, domain, local) };
        let relay = ("open-relay", format!("x@{FOREIGN_DOMAIN}"));
        assert_eq!(checks(None, None), vec![relay.clone()]);
        assert_eq!(
            checks(Some("bob@d.test"), Some("d.test")),
            vec![
                ("rcpt", "bob@d.test".to_string()),
                ("postmaster", "postmaster@d.test".to_string()),
                ("recipient-verification", "x@d.test".to_string()),
                relay.clone(),
            ]
        );
        let pm = checks(Some("PostMaster@d.test"), Some("d.test"));
        assert_eq!(pm.iter().filter(|(c, _)| *c == "postmaster").count(), 0);
        let r = random_local();
        assert!(r.starts_with("relais-probe-") && r.len() == 25, "{r}");
    }

    #[test]
    fn rcpt_verdicts() {
        let (ok, warn, fail) = (Level::Ok, Level::Warn, Level::Fail);
        // (check, reply code, authenticated, level, check reported, exit)
        let table: &[(&'static str, u16, bool, Level, &str, u8)] = &[
            ("rcpt", 250, false, ok, "rcpt", exit::OK),
            ("rcpt", 451, false, warn, "greylisting", exit::OK),
            ("rcpt", 550, false, fail, "rcpt", exit::RCPT),
            ("postmaster", 250, false, ok, "postmaster", exit::OK),
            ("postmaster", 450, false, warn, "postmaster", exit::OK),
            ("postmaster", 550, false, fail, "postmaster", exit::RCPT),
            (
                "recipient-verification",
                250,
                false,
                warn,
                "recipient-verification",
                exit::OK,
            ),
            (
                "recipient-verification",
                550,
                false,
                ok,
                "recipient-verification",
                exit::OK,
            ),
            (
                "open-relay",
                250,
                false,
                fail,
                "open-relay",
                exit::OPEN_RELAY,
            ),
            ("open-relay", 250, true, ok, "open-relay", exit::OK),
            ("open-relay", 554, false, ok, "open-relay", exit::OK),
            ("open-relay", 454, true, ok, "open-relay", exit::OK),
        ];
        for &(check, code, authenticated, level, reported, want) in table {
            let reply = Reply::new(code, None, "x");
            let v = rcpt_verdict(check, "a@b.test", &reply, authenticated);
            assert_eq!(
                (v.level, v.check, v.exit),
                (level, reported, want),
                "{check} {code} {authenticated}"
            );
        }
        let v = rcpt_verdict("rcpt", "a@b.test", &Reply::new(550, None, "x"), false);
        assert!(v.reason.contains("0x800CCC69"));
    }
}
