//! The steps of a session, each one command with the check of its reply: EHLO, LHLO, HELO,
//! STARTTLS, AUTH, MAIL, RCPT, QUIT (DATA and BDAT with the content: `content.rs`).

use super::*;

impl SmtpClient {
    /// `EHLO name`; the answer is kept ([`capabilities`](SmtpClient::capabilities)).
    pub async fn ehlo(&mut self, name: &str) -> Result<EhloResponse, ClientError> {
        self.greet(Command::Ehlo(name.to_string()).to_string())
            .await
    }

    /// `LHLO name` (LMTP, RFC 2033): EHLO's counterpart; the answer is kept the same way.
    pub async fn lhlo(&mut self, name: &str) -> Result<EhloResponse, ClientError> {
        self.greet(format!("LHLO {name}")).await
    }

    /// EHLO or LHLO: the capabilities of a positive answer are kept.
    async fn greet(&mut self, line: String) -> Result<EhloResponse, ClientError> {
        let reply = self.command(line).await?;
        match EhloResponse::parse(&reply) {
            Some(e) => {
                self.ehlo = Some(e.clone());
                Ok(e)
            }
            None => Err(ClientError::UnexpectedReply {
                stage: Stage::Ehlo,
                reply,
            }),
        }
    }

    /// `HELO name`.
    pub async fn helo(&mut self, name: &str) -> Result<Reply, ClientError> {
        let reply = self.command(Command::Helo(name.to_string())).await?;
        expect(Stage::Helo, reply, Reply::is_positive)
    }

    /// EHLO, and HELO when the server refuses EHLO with a 5xx (an old server). After HELO the
    /// answer has no capabilities.
    pub async fn ehlo_or_helo(&mut self, name: &str) -> Result<EhloResponse, ClientError> {
        match self.ehlo(name).await {
            Err(ClientError::UnexpectedReply { reply, .. }) if reply.is_permanent() => {
                self.transcript
                    .info(format!("EHLO refused ({}); trying HELO", reply.code));
                let reply = self.helo(name).await?;
                let first = reply.lines.first().cloned().unwrap_or_default();
                let (domain, text) = match first.split_once(' ') {
                    Some((d, t)) => (d.to_string(), t.to_string()),
                    None => (first, String::new()),
                };
                let e = EhloResponse {
                    domain,
                    text,
                    capabilities: Vec::new(),
                };
                self.ehlo = Some(e.clone());
                Ok(e)
            }
            other => other,
        }
    }

    /// STARTTLS, then the TLS handshake. Bytes the server sent in clear after its `220` are
    /// thrown away (and noted as an error: a server must not do that). Send EHLO again after it.
    pub async fn starttls(&mut self, server_name: &str) -> Result<TlsInfo, ClientError> {
        if self.stream.is_tls() {
            return Err(self.fail(ClientError::Tls {
                stage: Stage::StartTls,
                message: "already under TLS".into(),
            }));
        }
        let reply = self.command(Command::StartTls).await?;
        expect(Stage::StartTls, reply, |r| r.code == 220)?;
        let extra = self.parser.discard_buffered();
        if !extra.is_empty() {
            self.transcript.error(format!(
                "the server sent {} bytes in clear after its 220 to STARTTLS; discarded",
                extra.len()
            ));
        }
        self.tls_handshake(server_name).await
    }

    /// `AUTH PLAIN` with the credentials as initial response (RFC 4954, RFC 4616). The
    /// transcript shows them base64-encoded, as swaks does.
    pub async fn auth_plain(&mut self, user: &str, password: &str) -> Result<Reply, ClientError> {
        let token = sasl_plain(user, password);
        let mut reply = self.command(format!("AUTH PLAIN {token}")).await?;
        if reply.code == 334 {
            // A server that wants the response after an empty challenge.
            reply = self.sasl_response(&token).await?;
        }
        expect(Stage::Auth, reply, |r| r.code == 235)
    }

    /// `AUTH LOGIN`: user name and password each sent base64-encoded after a `334`.
    pub async fn auth_login(&mut self, user: &str, password: &str) -> Result<Reply, ClientError> {
        let reply = self.command("AUTH LOGIN").await?;
        expect(Stage::Auth, reply, |r| r.code == 334)?;
        let reply = self.sasl_response(&B64.encode(user)).await?;
        expect(Stage::Auth, reply, |r| r.code == 334)?;
        let reply = self.sasl_response(&B64.encode(password)).await?;
        expect(Stage::Auth, reply, |r| r.code == 235)
    }

    /// `AUTH CRAM-MD5` (RFC 2195): the user name and the HMAC-MD5 of the server's challenge
    /// keyed with the password, in hex, base64-encoded. The password never travels.
    pub async fn auth_cram_md5(
        &mut self,
        user: &str,
        password: &str,
    ) -> Result<Reply, ClientError> {
        let reply = self.command("AUTH CRAM-MD5").await?;
        let reply = expect(Stage::Auth, reply, |r| r.code == 334)?;
        let challenge = B64
            .decode(reply.lines.first().map(|l| l.trim()).unwrap_or_default())
            .map_err(|_| ClientError::UnexpectedReply {
                stage: Stage::Auth,
                reply: reply.clone(),
            })?;
        self.transcript.info(format!(
            "challenge: {}",
            String::from_utf8_lossy(&challenge)
        ));
        let response = cram_md5(user, password, &challenge);
        let reply = self.sasl_response(&B64.encode(response)).await?;
        expect(Stage::Auth, reply, |r| r.code == 235)
    }

    /// `AUTH XOAUTH2` (Gmail, Office 365): the user and an OAuth 2.0 bearer token as initial
    /// response. A refusal comes as a `334` with a JSON error (shown in the transcript); an
    /// empty line then asks for the final reply.
    pub async fn auth_xoauth2(&mut self, user: &str, token: &str) -> Result<Reply, ClientError> {
        let blob = B64.encode(format!("user={user}\x01auth=Bearer {token}\x01\x01"));
        let mut reply = self.command(format!("AUTH XOAUTH2 {blob}")).await?;
        if reply.code == 334 {
            let text = reply.lines.first().map(|l| l.trim()).unwrap_or_default();
            if let Ok(error) = B64.decode(text) {
                self.transcript
                    .info(format!("error: {}", String::from_utf8_lossy(&error)));
            }
            reply = self.sasl_response("").await?;
        }
        expect(Stage::Auth, reply, |r| r.code == 235)
    }

    /// Sends one SASL response line and reads the next reply.
    pub async fn sasl_response(&mut self, response: &str) -> Result<Reply, ClientError> {
        let started = Instant::now();
        self.record_sent(response);
        self.write(Stage::Auth, format!("{response}\r\n").as_bytes())
            .await?;
        let reply = self.read_reply(Stage::Auth).await?;
        self.timings.push(Timing {
            stage: Stage::Auth,
            took: started.elapsed(),
        });
        Ok(reply)
    }

    /// `MAIL FROM:<from> params`.
    pub async fn mail(
        &mut self,
        from: &ReversePath,
        params: &MailParams,
    ) -> Result<Reply, ClientError> {
        let reply = self
            .command(Command::Mail {
                from: from.clone(),
                params: params.clone(),
            })
            .await?;
        expect(Stage::Mail, reply, Reply::is_positive)
    }

    /// `RCPT TO:<to> params`.
    pub async fn rcpt(&mut self, to: &Mailbox, params: &RcptParams) -> Result<Reply, ClientError> {
        let reply = self
            .command(Command::Rcpt {
                to: to.clone(),
                params: params.clone(),
            })
            .await?;
        expect(Stage::Rcpt, reply, Reply::is_positive)
    }

    /// `QUIT`, its reply, and the connection closed. A server that closes without answering
    /// counts as a clean end (`Ok(None)`).
    pub async fn quit(&mut self) -> Result<Option<Reply>, ClientError> {
        let result = match self.command(Command::Quit).await {
            Ok(reply) => Ok(Some(reply)),
            Err(ClientError::Closed { .. }) => Ok(None),
            Err(e) => Err(e),
        };
        self.close().await;
        result
    }
}
