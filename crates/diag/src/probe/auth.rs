//! The AUTH test (with `auth`): the mechanism among those offered, then the credentials.

use std::time::Instant;

use relais_client::ClientError;
use relais_proto::{EhloResponse, Reply};

use super::report::Verdict;
use super::session::{Session, Step, Stop, stage_error};
use super::{AuthTest, exit};
use crate::Mechanism;
use crate::mechanism::NotOffered;

impl Session<'_> {
    /// The AUTH test on the last EHLO's mechanisms: true when authenticated, false when not
    /// (the session goes on unauthenticated); stops when the connection is gone.
    pub(super) async fn auth(&mut self, ehlo: &EhloResponse, auth: &AuthTest) -> Step<bool> {
        let offered = ehlo.auth_mechanisms();
        let clear = !self.client.is_tls();
        let mechanism = match Mechanism::choose(auth.mechanism, &offered) {
            Ok(m) => m,
            Err(why) => {
                let (stage, verdict) = not_offered(why, &offered, clear);
                self.report.stage("auth", None, stage);
                self.add(verdict);
                return Ok(false);
            }
        };
        let started = Instant::now();
        let result = mechanism
            .authenticate(&mut self.client, &auth.user, &auth.password)
            .await;
        let took = Some(started.elapsed());
        let (name, user) = (mechanism.name(), &auth.user);
        match result.as_ref() {
            Ok(reply) | Err(ClientError::UnexpectedReply { reply, .. }) => {
                self.report
                    .stage("auth", took, format!("AUTH {name} as {user}: {reply}"));
                let accepted = result.is_ok();
                self.add(auth_verdict(mechanism, user, reply, accepted, clear));
                Ok(accepted)
            }
            Err(e) => {
                self.failed("auth", started, e, stage_error(e, exit::AUTH, "auth"));
                Err(Stop)
            }
        }
    }
}

/// No mechanism to test: the stage row's text and the failing verdict.
pub(super) fn not_offered(why: NotOffered, offered: &[String], clear: bool) -> (String, Verdict) {
    let offers = offered.join(" ");
    let (stage, reason, advice) = match why {
        _ if offered.is_empty() => (
            "not offered".to_string(),
            if clear {
                "AUTH not offered (on this clear-text connection; servers often offer it only after STARTTLS)".to_string()
            } else {
                "AUTH not offered".to_string()
            },
            "enable AUTH on this listener (relais: users in [auth]; Postfix: smtpd_sasl_auth_enable), or probe the submission port (587, 465)",
        ),
        NotOffered::Wanted(m) => (
            format!("{} not offered", m.name()),
            format!("AUTH {} not offered (offers {offers})", m.name()),
            "choose one of the offered mechanisms with --auth-mech",
        ),
        NotOffered::Neither => (
            "neither PLAIN nor LOGIN offered".to_string(),
            format!("the server offers neither PLAIN nor LOGIN (offers {offers})"),
            "relais probe tests PLAIN and LOGIN only",
        ),
    };
    (stage, Verdict::fail(exit::AUTH, "auth", reason, advice))
}

/// The server's answer to the credentials: `accepted` (235), refused (535), or another refusal.
pub(super) fn auth_verdict(
    mechanism: Mechanism,
    user: &str,
    reply: &Reply,
    accepted: bool,
    clear: bool,
) -> Verdict {
    let name = mechanism.name();
    if accepted {
        return Verdict::ok(
            "auth",
            format!(
                "AUTH {name} as {user} accepted{}: {reply}",
                if clear { " in clear text" } else { "" }
            ),
        );
    }
    let (reason, advice) = if reply.code == 535 {
        (
            format!("AUTH {name}: the credentials of {user} were refused: {reply}"),
            "check the user name and password; the server's log says whether the user exists",
        )
    } else {
        (
            format!("AUTH {name} as {user} refused: {reply}"),
            "read the reply text (538: TLS needed first; 454: too many failures, or a temporary problem); `relais explain` explains the code",
        )
    };
    Verdict::fail(exit::AUTH, "auth", reason, advice)
}

#[cfg(test)]
mod tests {
    use super::super::report::Level;
    use super::*;

    #[test]
    fn mechanisms_not_offered() {
        let offered = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // (why, offered, clear text, stage text, words in the reason)
        let table: &[(NotOffered, Vec<String>, bool, &str, &str)] = &[
            (
                NotOffered::Neither,
                offered(&[]),
                true,
                "not offered",
                "only after STARTTLS",
            ),
            (
                NotOffered::Neither,
                offered(&[]),
                false,
                "not offered",
                "AUTH not offered",
            ),
            (
                NotOffered::Wanted(Mechanism::Plain),
                offered(&[]),
                false,
                "not offered",
                "AUTH not offered",
            ),
            (
                NotOffered::Wanted(Mechanism::Login),
                offered(&["PLAIN"]),
                false,
                "LOGIN not offered",
                "AUTH LOGIN not offered (offers PLAIN)",
            ),
            (
                NotOffered::Neither,
                offered(&["CRAM-MD5"]),
                false,
                "neither PLAIN nor LOGIN offered",
                "(offers CRAM-MD5)",
            ),
        ];
        for (why, list, clear, stage, words) in table {
            let (got, v) = not_offered(*why, list, *clear);
            assert_eq!(got, *stage);
            assert_eq!(
                (v.level, v.check, v.exit),
                (Level::Fail, "auth", exit::AUTH)
            );
            assert!(v.reason.contains(words), "{}", v.reason);
        }
    }

    #[test]
    fn credentials() {
        // (reply code, clear text, level, words in the reason)
        let table: &[(u16, bool, Level, &str)] = &[
            (235, false, Level::Ok, "AUTH PLAIN as alice accepted: 235"),
            (235, true, Level::Ok, "accepted in clear text"),
            (
                535,
                false,
                Level::Fail,
                "the credentials of alice were refused",
            ),
            (538, false, Level::Fail, "AUTH PLAIN as alice refused: 538"),
            (454, true, Level::Fail, "refused: 454"),
        ];
        for &(code, clear, level, words) in table {
            let reply = Reply::new(code, None, "x");
            let v = auth_verdict(Mechanism::Plain, "alice", &reply, code == 235, clear);
            assert_eq!((v.level, v.check), (level, "auth"), "{code}");
            assert!(v.reason.contains(words), "{}", v.reason);
        }
    }
}
