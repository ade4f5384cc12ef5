//! The envelope and the end of the session: MAIL FROM, DATA (only when asked), VRFY and EXPN
//! exposure, RSET and QUIT. The RCPT probes between MAIL and DATA are in `rcpt`.

use std::time::{Instant, SystemTime};

use relais_proto::Reply;
use relais_proto::date::DateTime;

use super::exit;
use super::report::Verdict;
use super::session::{Session, Step, Stop, stage_error};

impl Session<'_> {
    /// MAIL FROM.
    pub(super) async fn mail_from(&mut self) -> Step {
        let started = Instant::now();
        let from = &self.context.from;
        let reply = match self.client.command(format!("MAIL FROM:<{from}>")).await {
            Ok(reply) => reply,
            Err(e) => {
                self.failed("mail", started, &e, stage_error(&e, exit::MAIL, "mail"));
                return Err(Stop);
            }
        };
        self.report
            .stage("mail", Some(started.elapsed()), reply.to_string());
        let verdict = mail_verdict(from, &reply);
        let refused = verdict.exit != exit::OK;
        self.add(verdict);
        if refused {
            return self.quit_and_stop().await;
        }
        Ok(())
    }

    /// DATA with a short test message, only when asked and nothing failed so far.
    pub(super) async fn data(&mut self) -> Step {
        let context = self.context;
        let Some(rcpt) = context.rcpt.as_ref().filter(|_| context.data) else {
            return Ok(());
        };
        if self.report.exit != exit::OK {
            return Ok(());
        }
        let message = test_message(&context.from, rcpt, SystemTime::now());
        let started = Instant::now();
        match self.client.data(message.as_bytes()).await {
            Ok(reply) => {
                self.report
                    .stage("data", Some(started.elapsed()), reply.to_string());
                self.add(Verdict::ok("data", format!("message accepted: {reply}")));
                Ok(())
            }
            Err(e) => {
                self.failed("data", started, &e, stage_error(&e, exit::DATA, "data"));
                if e.connection_usable() {
                    Ok(())
                } else {
                    Err(Stop)
                }
            }
        }
    }

    /// VRFY and EXPN of postmaster: do they give addresses away?
    pub(super) async fn vrfy_expn(&mut self) -> Step {
        for (verb, check) in [("VRFY", "vrfy"), ("EXPN", "expn")] {
            let started = Instant::now();
            match self.client.command(format!("{verb} postmaster")).await {
                Ok(reply) => {
                    self.report
                        .stage(check, Some(started.elapsed()), reply.to_string());
                    self.add(exposure_verdict(verb, check, &reply));
                }
                Err(e) => {
                    self.add(stage_error(&e, exit::CLOSED, check));
                    return Err(Stop);
                }
            }
        }
        Ok(())
    }

    /// RSET and QUIT.
    pub(super) async fn finish(&mut self) {
        let started = Instant::now();
        if let Ok(reply) = self.client.command("RSET").await {
            self.report
                .stage("rset", Some(started.elapsed()), reply.to_string());
        }
        let started = Instant::now();
        let result = match self.client.quit().await {
            Ok(reply) => reply.map_or("closed".to_string(), |r| r.to_string()),
            Err(e) => e.to_string(),
        };
        self.report.stage("quit", Some(started.elapsed()), result);
    }
}

/// The answer to MAIL FROM.
pub(super) fn mail_verdict(from: &str, reply: &Reply) -> Verdict {
    if reply.is_positive() {
        Verdict::ok("mail", format!("MAIL FROM accepted: {reply}"))
    } else {
        Verdict::fail(
            exit::MAIL,
            "mail",
            format!("MAIL FROM:<{from}> refused: {reply} (Outlook 0x800CCC78)"),
            "the server refuses this sender: SPF, sender verification, or a policy; try --from with an address of a domain you control",
        )
    }
}

/// VRFY or EXPN answering with an address (250, 251) exposes the server's users.
pub(super) fn exposure_verdict(verb: &str, check: &'static str, reply: &Reply) -> Verdict {
    if reply.code == 250 || reply.code == 251 {
        Verdict::warn(
            check,
            format!("{verb} answers with addresses: {reply}"),
            "spammers harvest valid addresses this way: disable it (Postfix: disable_vrfy_command = yes)",
        )
    } else {
        Verdict::ok(check, format!("{verb} not exposed: {reply}"))
    }
}

/// The message `data` sends.
fn test_message(from: &str, rcpt: &str, now: SystemTime) -> String {
    format!(
        "From: <{from}>\r\nTo: <{rcpt}>\r\nSubject: relais probe test\r\nDate: {date}\r\n\r\nA test message sent by relais probe.\r\n",
        date = DateTime::from_system(now).rfc5322(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::super::report::Level;
    use super::*;

    #[test]
    fn mail_from() {
        // (reply code, level, exit)
        let table: &[(u16, Level, u8)] = &[
            (250, Level::Ok, exit::OK),
            (451, Level::Fail, exit::MAIL),
            (550, Level::Fail, exit::MAIL),
            (553, Level::Fail, exit::MAIL),
        ];
        for &(code, level, want) in table {
            let v = mail_verdict("probe@x.test", &Reply::new(code, None, "x"));
            assert_eq!((v.level, v.check, v.exit), (level, "mail", want), "{code}");
        }
    }

    #[test]
    fn vrfy_and_expn_exposure() {
        // (verb, check, reply code, level)
        let table: &[(&str, &'static str, u16, Level)] = &[
            ("VRFY", "vrfy", 250, Level::Warn),
            ("VRFY", "vrfy", 251, Level::Warn),
            ("VRFY", "vrfy", 252, Level::Ok),
            ("VRFY", "vrfy", 502, Level::Ok),
            ("EXPN", "expn", 250, Level::Warn),
            ("EXPN", "expn", 550, Level::Ok),
        ];
        for &(verb, check, code, level) in table {
            let v = exposure_verdict(verb, check, &Reply::new(code, None, "x"));
            assert_eq!((v.level, v.check), (level, check), "{verb} {code}");
        }
    }

    #[test]
    fn the_test_message() {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_873_552);
        assert_eq!(
            test_message("p@a.test", "r@b.test", at),
            "From: <p@a.test>\r\nTo: <r@b.test>\r\nSubject: relais probe test\r\nDate: Sat, 28 Nov 2026 13:45:52 +0000\r\n\r\nA test message sent by relais probe.\r\n"
        );
    }
}
