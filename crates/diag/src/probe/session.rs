//! One address, stage by stage: the order of the stages and what ends the session early.
//! Each stage is a method of [`Session`] in the file of its name; the verdict rules they apply
//! are pure functions next to them.

use std::time::Instant;

use relais_client::{ClientConfig, ClientError, SmtpClient, TlsPolicy};
use relais_dns::reverse::ReverseDns;
use tokio::task::JoinHandle;

use super::report::{HostReport, Verdict};
use super::target::Job;
use super::{Context, exit};

/// A stage that makes going on pointless (the connection is gone, or the server refused the
/// session); it has already said why in the report.
pub(super) struct Stop;

/// What a stage returns: `Err(Stop)` ends the session.
pub(super) type Step<T = ()> = Result<T, Stop>;

/// One address's session: the client, and the report it fills in.
pub(super) struct Session<'a> {
    pub(super) context: &'a Context,
    /// The address's place in the probe, for the live progress.
    pub(super) index: usize,
    pub(super) job: &'a Job,
    pub(super) client: SmtpClient,
    pub(super) report: HostReport,
}

/// The client settings of every probe connection: the context's wait for each step, and TLS
/// that never refuses a certificate (the certificate stage judges it instead).
pub(super) fn client_config(context: &Context) -> ClientConfig {
    let mut config = ClientConfig::with_timeout(context.timeout);
    config.tls = TlsPolicy {
        verify: false,
        server_name: None,
        ca_file: context.ca_file.clone(),
        ca_file_only: false,
        dane: Vec::new(),
    };
    config
}

/// Probes one address, stage by stage.
pub(super) async fn probe_address(context: &Context, job: Job, index: usize) -> HostReport {
    let config = client_config(context);
    // The reverse DNS runs while the connection opens and the banner comes.
    let reverse = {
        let resolver = context.resolver.clone();
        let ip = job.address.ip();
        tokio::spawn(async move { resolver.reverse(ip).await })
    };
    let mut session = Session {
        context,
        index,
        job: &job,
        client: SmtpClient::new(config),
        report: HostReport {
            host: job.host.clone(),
            preference: job.preference,
            address: job.address.to_string(),
            ..HostReport::default()
        },
    };
    let _ = session.stages(reverse).await;
    session.client.close().await;
    let mut report = session.report;
    report.transcript = session
        .client
        .transcript()
        .entries
        .iter()
        .map(crate::show)
        .collect();
    report
}

impl Session<'_> {
    /// The stages in order; returns at the first that makes going on pointless.
    async fn stages(&mut self, reverse: JoinHandle<ReverseDns>) -> Step {
        self.at("connect");
        self.connect().await?;
        if self.context.tls_on_connect {
            self.at("tls");
        }
        let implicit_tls = self.tls_on_connect().await?;
        self.at("banner");
        let banner_name = self.banner().await?;
        // The name the certificate must carry: the MX host, or the banner's name for an address.
        let tls_name = super::connect::tls_name(&self.job.host, &banner_name);
        if let Some(info) = &implicit_tls {
            self.certificate(info, &tls_name);
        }
        self.at("reverse-dns");
        if let Ok(reverse) = reverse.await {
            self.reverse_dns(&reverse, &banner_name);
        }
        self.at("ehlo");
        let mut ehlo = self.ehlo().await?;
        self.at("starttls");
        if let Some(again) = self.starttls(&ehlo, &tls_name).await? {
            ehlo = again;
        }
        let authenticated = match &self.context.auth {
            Some(auth) => {
                self.at("auth");
                self.auth(&ehlo, auth).await?
            }
            None => false,
        };
        self.at("mail");
        self.mail_from().await?;
        self.at("rcpt");
        self.rcpt_probes(authenticated).await?;
        if self.context.data {
            self.at("data");
        }
        self.data().await?;
        self.at("vrfy");
        self.vrfy_expn().await?;
        self.at("quit");
        self.finish().await;
        Ok(())
    }

    /// Tells the live progress (if any) that this address starts `stage`.
    fn at(&self, stage: &'static str) {
        if let Some(progress) = &self.context.progress {
            progress.emit(super::progress::Event::Stage {
                index: self.index,
                stage,
            });
        }
    }

    pub(super) fn add(&mut self, verdict: Verdict) {
        self.report.add(verdict);
    }

    /// A stage that failed with a client error: its row (timed from `started`) and `verdict`.
    pub(super) fn failed(
        &mut self,
        stage: &'static str,
        started: Instant,
        e: &ClientError,
        verdict: Verdict,
    ) {
        self.report
            .stage(stage, Some(started.elapsed()), e.to_string());
        self.add(verdict);
    }

    /// QUIT, whatever the answer, then stop.
    pub(super) async fn quit_and_stop<T>(&mut self) -> Step<T> {
        let _ = self.client.quit().await;
        Err(Stop)
    }
}

/// The verdict on an error at a stage whose exit code is `code`: closed or reset (exit 6),
/// timed out, refused by a reply, or anything else.
pub(super) fn stage_error(e: &ClientError, code: u8, check: &'static str) -> Verdict {
    match e {
        ClientError::Closed { stage } | ClientError::Reset { stage } => Verdict::fail(
            exit::CLOSED,
            check,
            format!("the server dropped the connection during {stage} (Outlook 0x800CCC0F)"),
            "read the server's log at that time: a crash, a policy that disconnects, or a connection limit",
        ),
        ClientError::TimedOut { stage, after } => {
            let reason = if check == "banner" {
                format!(
                    "no greeting within {}s: the server accepts the connection but says nothing (a tarpit, a stuck server, or a middlebox) (Outlook 0x800CCC19)",
                    after.as_secs_f64()
                )
            } else {
                format!(
                    "no reply within {}s during {stage} (Outlook 0x800CCC19)",
                    after.as_secs_f64()
                )
            };
            Verdict::fail(
                code,
                check,
                reason,
                "check the server's load and logs; try a longer --timeout",
            )
        }
        ClientError::UnexpectedReply { stage, reply } => Verdict::fail(
            code,
            check,
            format!("{stage} refused: {reply}"),
            "read the reply text; `relais explain` explains the code",
        ),
        other => Verdict::fail(code, check, other.to_string(), "read the transcript (-v)"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use relais_client::Stage;
    use relais_proto::Reply;

    use super::*;

    #[test]
    fn stage_errors() {
        let timed_out = |stage| ClientError::TimedOut {
            stage,
            after: Duration::from_secs(3),
        };
        let refused = ClientError::UnexpectedReply {
            stage: Stage::Mail,
            reply: Reply::new(550, None, "no"),
        };
        // (error, stage's code, check, exit, words in the reason)
        let table: &[(ClientError, u8, &str, u8, &str)] = &[
            (
                ClientError::Closed { stage: Stage::Mail },
                exit::MAIL,
                "mail",
                exit::CLOSED,
                "dropped the connection",
            ),
            (
                ClientError::Reset { stage: Stage::Rcpt },
                exit::RCPT,
                "rcpt",
                exit::CLOSED,
                "dropped the connection",
            ),
            (
                timed_out(Stage::Banner),
                exit::BANNER,
                "banner",
                exit::BANNER,
                "no greeting within 3s",
            ),
            (
                timed_out(Stage::Ehlo),
                exit::HELO,
                "ehlo",
                exit::HELO,
                "no reply within 3s",
            ),
            (refused, exit::MAIL, "mail", exit::MAIL, "refused: 550 no"),
        ];
        for (e, code, check, want_exit, words) in table {
            let v = stage_error(e, *code, check);
            assert_eq!(
                (v.level, v.check, v.exit),
                (super::super::report::Level::Fail, *check, *want_exit),
                "{e:?}"
            );
            assert!(v.reason.contains(words), "{e:?}: {}", v.reason);
        }
    }
}
