//! Settling an attempt once every job has reported: shared copies take their first copy's
//! outcome, expiry fails what is still deferred, an alias becomes final once its targets are,
//! and each outcome decided now gets its log line and, when the sender asked, its report.
//! Pure: the time and the rules come in, log lines and reports go out; the queue manager
//! writes them.

use std::time::SystemTime;

use relais_proto::Mailbox;
use relais_proto::date::unix_secs;
use relais_proto::params::xtext_encode;
use relais_queue::{Outcome, QueueState, Target};

use crate::dsn::RecipientReport;
use crate::flight::{Flight, Slot};
use crate::retry::{Retry, expire};

/// What settling an attempt decided.
#[derive(Debug, Default)]
pub struct Settlement {
    /// One log line per outcome decided in this attempt.
    pub log: Vec<LogLine>,
    /// What to report to the sender (nothing is reported to the null sender).
    pub reports: Vec<RecipientReport>,
    /// Every recipient is final: the message leaves the queue.
    pub done: bool,
    /// Otherwise the next attempt, Unix seconds.
    pub next_attempt: u64,
}

/// What happened to one recipient or alias target in an attempt, for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// The recipient (a target: its address, `|command` or a file).
    pub to: String,
    /// The alias a target came from.
    pub orig_to: Option<String>,
    /// Where it went: the remote host, `local`, `lmtp[…]`, `none`.
    pub relay: String,
    /// Seconds since the message arrived.
    pub delay: f64,
    /// What happened.
    pub outcome: Outcome,
    /// The line sums up an alias's targets (each has its own line): no delivery of its own.
    pub aggregate: bool,
}

impl std::fmt::Display for LogLine {
    /// `to=<a@b>, orig_to=<alias@b>, relay=local, delay=0.01, status=sent (…)`, as Postfix.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "to=<{}>, ", self.to)?;
        if let Some(o) = &self.orig_to {
            write!(f, "orig_to=<{o}>, ")?;
        }
        write!(
            f,
            "relay={}, delay={:.2}, {}",
            self.relay, self.delay, self.outcome
        )
    }
}

/// Settles the attempt at `f`, decided at `now`. `f`'s state is updated with the final
/// outcomes and, when some remain pending, the next attempt.
pub fn settle(f: &mut Flight, now: SystemTime, retry: &Retry, hostname: &str) -> Settlement {
    let mut out = Settlement::default();
    let delay = now
        .duration_since(f.arrival)
        .unwrap_or_default()
        .as_secs_f64();
    let expired = retry.expired(f.arrival, now);
    share_duplicates(f);
    settle_targets(f, &mut out, delay, expired, hostname);
    // An alias is final once all its targets are.
    for i in 0..f.env.envelope.recipients.len() {
        if f.touched.contains(&Slot::Rcpt(i)) && f.env.state.is_expanded(i) {
            let o = alias_outcome(&f.env.state, i);
            f.env.state.set(i, o);
        }
    }
    settle_recipients(f, &mut out, delay, expired);
    out.done = (0..f.env.envelope.recipients.len()).all(|i| !f.env.state.is_pending(i));
    if !out.done && !f.env.state.warned && retry.warning_due(f.arrival, now) {
        delay_warnings(f, &mut out);
        f.env.state.warned = true;
    }
    if !out.done {
        let next = unix_secs(now).max(0) as u64 + retry.backoff(f.env.state.attempts).as_secs();
        f.env.state.next_attempt = next;
        out.next_attempt = next;
    }
    out
}

/// A copy shared with another recipient or target has its outcome.
fn share_duplicates(f: &mut Flight) {
    for (dup, first, mailbox) in std::mem::take(&mut f.dups) {
        let o = match f.outcome(first).cloned() {
            Some(Outcome::Delivered(_)) => {
                Outcome::Delivered(format!("duplicate of a copy to mailbox {mailbox}"))
            }
            Some(o) => o,
            None => continue,
        };
        f.set(dup, o);
    }
}

/// Targets of aliases: logged one by one; a failure is reported on its own.
fn settle_targets(f: &mut Flight, out: &mut Settlement, delay: f64, expired: bool, host: &str) {
    for n in 0..f.env.state.expansions.len() {
        let slot = Slot::Exp(n);
        if !f.touched.contains(&slot) {
            continue;
        }
        let x = &f.env.state.expansions[n];
        let Some(o) = x.outcome.clone() else {
            continue;
        };
        let o = expire(o, expired);
        let parent = &f.env.envelope.recipients[x.parent];
        let (shown, final_recipient) = target_addresses(&x.target, &parent.to, host);
        let relay = f.relay_of(slot);
        out.log.push(LogLine {
            to: shown,
            orig_to: Some(parent.to.to_string()),
            relay,
            delay,
            outcome: o.clone(),
            aggregate: false,
        });
        if let Outcome::Failed { status, reason } = &o
            && parent.params.notify.is_none_or(|n| n.failure)
        {
            let original = parent
                .params
                .orcpt
                .clone()
                .unwrap_or_else(|| ("rfc822".into(), xtext_encode(&parent.to.to_string())));
            out.reports.push(RecipientReport {
                recipient: final_recipient,
                original: Some(original),
                action: "failed",
                status: status.clone(),
                diagnostic: Some(reason.clone()),
                remote_mta: f.remote.get(&slot).map(|(h, _)| h.clone()),
            });
        }
        f.env.state.expansions[n].outcome = Some(o);
    }
}

/// The recipients of the envelope: logged, and reported when the sender asked.
fn settle_recipients(f: &mut Flight, out: &mut Settlement, delay: f64, expired: bool) {
    let recipients = f.env.envelope.recipients.clone();
    for (i, r) in recipients.iter().enumerate() {
        let slot = Slot::Rcpt(i);
        if !f.touched.contains(&slot) {
            continue;
        }
        let Some(o) = f.env.state.outcome(i).cloned() else {
            continue;
        };
        let notify = r.params.notify;
        let report = |action: &'static str, status: &str, diag: Option<String>| RecipientReport {
            recipient: r.to.to_string(),
            original: r.params.orcpt.clone(),
            action,
            status: status.to_string(),
            diagnostic: diag,
            remote_mta: f.remote.get(&slot).map(|(h, _)| h.clone()),
        };
        if f.env.state.is_expanded(i) {
            // Its targets were logged and reported; the alias is told of once final.
            if !o.is_final() {
                continue;
            }
            out.log.push(LogLine {
                to: r.to.to_string(),
                orig_to: None,
                relay: "local".into(),
                delay,
                outcome: o.clone(),
                aggregate: true,
            });
            if matches!(o, Outcome::Delivered(_)) && notify.is_some_and(|n| n.success) {
                let mut rr = report("expanded", "2.0.0", None);
                rr.remote_mta = None;
                out.reports.push(rr);
            }
            continue;
        }
        let relay = f.relay_of(slot);
        // Expiry turns what is still deferred into a failure.
        let o = expire(o, expired);
        f.env.state.set(i, o.clone());
        out.log.push(LogLine {
            to: r.to.to_string(),
            orig_to: None,
            relay,
            delay,
            outcome: o.clone(),
            aggregate: false,
        });
        match &o {
            Outcome::Failed { status, reason } if notify.is_none_or(|n| n.failure) => {
                out.reports
                    .push(report("failed", status, Some(reason.clone())));
            }
            Outcome::Delivered(_) if notify.is_some_and(|n| n.success) => {
                // A next hop that does DSN reports success itself.
                let (remote_host, remote_dsn) = f.remote.get(&slot).cloned().unwrap_or_default();
                if !remote_dsn {
                    let action = if remote_host.is_empty() {
                        "delivered"
                    } else {
                        "relayed"
                    };
                    out.reports.push(report(action, "2.0.0", None));
                }
            }
            _ => {}
        }
    }
}

/// Delay warnings, once, to senders who asked for them (NOTIFY=DELAY).
fn delay_warnings(f: &Flight, out: &mut Settlement) {
    for (i, r) in f.env.envelope.recipients.iter().enumerate() {
        if let (true, Some(Outcome::Deferred { status, reason })) = (
            r.params.notify.is_some_and(|n| n.delay),
            f.env.state.outcome(i),
        ) {
            out.reports.push(RecipientReport {
                recipient: r.to.to_string(),
                original: r.params.orcpt.clone(),
                action: "delayed",
                status: status.clone(),
                diagnostic: Some(reason.clone()),
                remote_mta: f.remote.get(&Slot::Rcpt(i)).map(|(h, _)| h.clone()),
            });
        }
    }
}

/// The outcome of an expanded alias from those of its targets: deferred while one is
/// pending, then delivered if any was, else failed.
pub fn alias_outcome(state: &QueueState, i: usize) -> Outcome {
    let (mut total, mut delivered, mut failed) = (0, 0, 0);
    let mut pending: Option<(String, String)> = None;
    let mut failure: Option<String> = None;
    for (_, x) in state.expansions_of(i) {
        total += 1;
        match &x.outcome {
            Some(Outcome::Delivered(_)) => delivered += 1,
            Some(Outcome::Failed { status, .. }) => {
                failed += 1;
                failure.get_or_insert_with(|| status.clone());
            }
            Some(Outcome::Deferred { status, reason }) => {
                pending.get_or_insert_with(|| (status.clone(), reason.clone()));
            }
            None => {
                pending.get_or_insert_with(|| ("4.0.0".into(), "not tried yet".into()));
            }
        }
    }
    if let Some((status, reason)) = pending {
        let waiting = total - delivered - failed;
        return Outcome::deferred(
            &status,
            format!("{waiting} of {total} alias targets pending; {reason}"),
        );
    }
    if delivered > 0 {
        let failed = if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        };
        Outcome::Delivered(format!(
            "expanded to {total} alias targets: {delivered} delivered{failed}"
        ))
    } else {
        Outcome::failed(
            failure.as_deref().unwrap_or("5.0.0"),
            format!("expanded to {total} alias targets, all failed"),
        )
    }
}

/// How a target is shown in the log, and its Final-Recipient in a report (an address: the
/// alias itself for a command, a file or a failure).
pub fn target_addresses(t: &Target, alias: &Mailbox, hostname: &str) -> (String, String) {
    let alias_address = alias.to_string();
    match t {
        Target::Mailbox(m) => {
            let a = crate::plan::mailbox_address(m, alias, hostname);
            (a.clone(), a)
        }
        Target::Forward(a) => (a.clone(), a.clone()),
        Target::Pipe(c) | Target::UserPipe(_, c) => (format!("|{c}"), alias_address),
        Target::File(p) | Target::UserFile(_, p) => (p.display().to_string(), alias_address),
        Target::Fail(_) => (alias_address.clone(), alias_address),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{arrival, flight, rcpt};
    use std::time::Duration;

    /// How an attempt ended for one recipient, in the table.
    struct Case {
        /// NOTIFY= of the recipient.
        notify: Option<&'static str>,
        /// Its outcome in this attempt.
        outcome: Outcome,
        /// The remote host that gave it, and whether that host does DSN.
        remote: Option<(&'static str, bool)>,
        /// Seconds since arrival.
        age: u64,
        /// Want: the log line, the report's action, done.
        log: &'static str,
        report: Option<&'static str>,
        done: bool,
    }

    #[test]
    fn attempts_are_settled() {
        let rules = Retry {
            first: Duration::from_secs(300),
            max: Duration::from_secs(4000),
            lifetime: Duration::from_secs(86400),
            delay_warning: Some(Duration::from_secs(3600)),
        };
        let sent = || Outcome::Delivered("delivered to maildir /m".into());
        let table = [
            Case {
                notify: None,
                outcome: sent(),
                remote: None,
                age: 10,
                log: "to=<a@example.com>, relay=local, delay=10.00, status=sent (delivered to maildir /m)",
                report: None,
                done: true,
            },
            Case {
                notify: Some("SUCCESS"),
                outcome: sent(),
                remote: None,
                age: 10,
                log: "to=<a@example.com>, relay=local, delay=10.00, status=sent (delivered to maildir /m)",
                report: Some("delivered"),
                done: true,
            },
            Case {
                notify: Some("SUCCESS"),
                outcome: sent(),
                remote: Some(("mx.example.com[192.0.2.1]:25", false)),
                age: 10,
                log: "to=<a@example.com>, relay=mx.example.com[192.0.2.1]:25, delay=10.00, status=sent (delivered to maildir /m)",
                report: Some("relayed"),
                done: true,
            },
            Case {
                // A next hop that does DSN reports success itself.
                notify: Some("SUCCESS"),
                outcome: sent(),
                remote: Some(("mx.example.com[192.0.2.1]:25", true)),
                age: 10,
                log: "to=<a@example.com>, relay=mx.example.com[192.0.2.1]:25, delay=10.00, status=sent (delivered to maildir /m)",
                report: None,
                done: true,
            },
            Case {
                notify: None,
                outcome: Outcome::failed("5.1.1", "gone"),
                remote: None,
                age: 10,
                log: "to=<a@example.com>, relay=local, delay=10.00, status=bounced (5.1.1 gone)",
                report: Some("failed"),
                done: true,
            },
            Case {
                notify: Some("NEVER"),
                outcome: Outcome::failed("5.1.1", "gone"),
                remote: None,
                age: 10,
                log: "to=<a@example.com>, relay=local, delay=10.00, status=bounced (5.1.1 gone)",
                report: None,
                done: true,
            },
            Case {
                notify: Some("DELAY"),
                outcome: Outcome::deferred("4.4.1", "no route"),
                remote: None,
                age: 10,
                log: "to=<a@example.com>, relay=local, delay=10.00, status=deferred (4.4.1 no route)",
                report: None,
                done: false,
            },
            Case {
                notify: Some("DELAY"),
                outcome: Outcome::deferred("4.4.1", "no route"),
                remote: None,
                age: 3600,
                log: "to=<a@example.com>, relay=local, delay=3600.00, status=deferred (4.4.1 no route)",
                report: Some("delayed"),
                done: false,
            },
            Case {
                notify: None,
                outcome: Outcome::deferred("4.4.1", "no route"),
                remote: None,
                age: 86400,
                log: "to=<a@example.com>, relay=local, delay=86400.00, status=bounced (5.4.7 delivery time expired; last error: 4.4.1 no route)",
                report: Some("failed"),
                done: true,
            },
        ];
        for (k, c) in table.iter().enumerate() {
            let mut f = flight(vec![rcpt("a@example.com", c.notify)], "\r\n");
            f.touched.insert(Slot::Rcpt(0));
            f.env.state.attempts = 1;
            f.set(Slot::Rcpt(0), c.outcome.clone());
            if let Some((host, dsn)) = c.remote {
                f.remote.insert(Slot::Rcpt(0), (host.to_string(), dsn));
            }
            let now = arrival() + Duration::from_secs(c.age);
            let s = settle(&mut f, now, &rules, "mx.example.com");
            let log: Vec<String> = s.log.iter().map(ToString::to_string).collect();
            assert_eq!(log, [c.log], "case {k}");
            let actions: Vec<&str> = s.reports.iter().map(|r| r.action).collect();
            assert_eq!(
                actions,
                c.report.into_iter().collect::<Vec<_>>(),
                "case {k}"
            );
            assert_eq!(s.done, c.done, "case {k}");
            if !c.done {
                let due = unix_secs(now) as u64 + 300;
                assert_eq!((s.next_attempt, f.env.state.next_attempt), (due, due));
                assert_eq!(f.env.state.warned, c.report == Some("delayed"), "case {k}");
            }
        }
    }

    #[test]
    fn shared_copies_and_alias_targets() {
        let rules = Retry {
            first: Duration::from_secs(300),
            max: Duration::from_secs(4000),
            lifetime: Duration::from_secs(86400),
            delay_warning: None,
        };
        let mut f = flight(
            vec![
                rcpt("alice@example.com", None),
                rcpt("al@example.com", None),
                rcpt("staff@example.com", Some("SUCCESS,FAILURE")),
            ],
            "\r\n",
        );
        for i in 0..3 {
            f.touched.insert(Slot::Rcpt(i));
        }
        f.set(
            Slot::Rcpt(0),
            Outcome::Delivered("delivered to maildir /m".into()),
        );
        f.dups.push((Slot::Rcpt(1), Slot::Rcpt(0), "alice".into()));
        let n = f.env.state.expand(
            2,
            vec![Target::Pipe("cat".into()), Target::Fail("gone".into())],
        );
        for n in n.clone() {
            f.touched.insert(Slot::Exp(n));
        }
        f.set(Slot::Exp(n.start), Outcome::Delivered("command ok".into()));
        f.set(Slot::Exp(n.start + 1), Outcome::failed("5.1.1", "gone"));
        let s = settle(&mut f, arrival(), &rules, "mx.example.com");
        let log: Vec<String> = s.log.iter().map(ToString::to_string).collect();
        assert_eq!(
            log,
            [
                "to=<|cat>, orig_to=<staff@example.com>, relay=local, delay=0.00, status=sent (command ok)",
                "to=<staff@example.com>, orig_to=<staff@example.com>, relay=local, delay=0.00, status=bounced (5.1.1 gone)",
                "to=<alice@example.com>, relay=local, delay=0.00, status=sent (delivered to maildir /m)",
                "to=<al@example.com>, relay=local, delay=0.00, status=sent (duplicate of a copy to mailbox alice)",
                "to=<staff@example.com>, relay=local, delay=0.00, status=sent (expanded to 2 alias targets: 1 delivered, 1 failed)",
            ]
        );
        let reports: Vec<(&str, &str)> = s
            .reports
            .iter()
            .map(|r| (r.action, r.recipient.as_str()))
            .collect();
        assert_eq!(
            reports,
            [
                ("failed", "staff@example.com"),
                ("expanded", "staff@example.com")
            ]
        );
        assert!(s.done);
    }

    #[test]
    fn an_alias_is_final_when_its_targets_are() {
        let mut st = QueueState {
            recipients: vec![None, None],
            ..Default::default()
        };
        st.expand(
            1,
            vec![
                Target::Mailbox("a".into()),
                Target::Pipe("x".into()),
                Target::Fail("gone".into()),
            ],
        );
        st.expand(0, vec![Target::Mailbox("z".into())]);
        let word = |o: Outcome| match o {
            Outcome::Delivered(d) => format!("sent {d}"),
            Outcome::Deferred { status, reason } => format!("deferred {status} {reason}"),
            Outcome::Failed { status, reason } => format!("bounced {status} {reason}"),
        };
        assert_eq!(
            word(alias_outcome(&st, 1)),
            "deferred 4.0.0 3 of 3 alias targets pending; not tried yet"
        );
        st.set_expansion(0, Outcome::Delivered("ok".into()));
        st.set_expansion(1, Outcome::deferred("4.3.0", "busy"));
        st.set_expansion(2, Outcome::failed("5.1.1", "gone"));
        assert_eq!(
            word(alias_outcome(&st, 1)),
            "deferred 4.3.0 1 of 3 alias targets pending; busy"
        );
        st.set_expansion(1, Outcome::Delivered("ok".into()));
        assert_eq!(
            word(alias_outcome(&st, 1)),
            "sent expanded to 3 alias targets: 2 delivered, 1 failed"
        );
        st.set_expansion(3, Outcome::failed("5.2.0", "no"));
        assert_eq!(
            word(alias_outcome(&st, 0)),
            "bounced 5.2.0 expanded to 1 alias targets, all failed"
        );
    }

    #[test]
    fn how_targets_are_named() {
        let alias = Mailbox::parse("staff@example.com").unwrap();
        let t = |t: Target| target_addresses(&t, &alias, "mx.example.com");
        assert_eq!(
            t(Target::Mailbox("bob".into())),
            ("bob@example.com".into(), "bob@example.com".into())
        );
        assert_eq!(
            t(Target::Forward("x@y.org".into())),
            ("x@y.org".into(), "x@y.org".into())
        );
        assert_eq!(
            t(Target::Pipe("/bin/x -y".into())),
            ("|/bin/x -y".into(), "staff@example.com".into())
        );
        assert_eq!(
            t(Target::File("/m/box".into())),
            ("/m/box".into(), "staff@example.com".into())
        );
        let postmaster = relais_proto::address::parse_forward_path("postmaster").unwrap();
        assert_eq!(
            target_addresses(
                &Target::Mailbox("root".into()),
                &postmaster,
                "mx.example.com"
            )
            .0,
            "root@mx.example.com"
        );
    }
}
