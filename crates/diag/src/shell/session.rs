//! The session task: the connection, and what each [`Input`] does to it.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use relais_client::{ClientConfig, ClientError, Sink, SmtpClient, Stage, Transcript};
use relais_proto::Reply;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use super::{HELP, Input, ShellOptions, show_decoded, unescape};
use crate::Mechanism;

/// A connected shell session, ready to [`run`](Shell::run).
pub struct Shell {
    runtime: Runtime,
    session: Session,
}

/// Why a shell could not start.
#[derive(Debug)]
pub enum StartError {
    /// No runtime: the message (exit code 1).
    Runtime(String),
    /// No connection (exit code 2); the transcript has said why.
    Connect,
}

impl Shell {
    /// Connects (TLS first with `tls_on_connect`); every transcript entry goes to `sink` as it
    /// happens. A script (`scripted`) also waits for the greeting here; at a terminal it shows
    /// up when it comes.
    pub fn connect(
        options: &ShellOptions,
        sink: Sink,
        scripted: bool,
    ) -> Result<Shell, StartError> {
        let runtime = relais_client::current_thread_runtime()
            .map_err(|e| StartError::Runtime(format!("cannot start the runtime: {e}")))?;
        let mut config = ClientConfig::with_timeout(options.timeout);
        config.tls = options.tls_policy.clone();
        let mut client = SmtpClient::with_transcript(config, Transcript::with_sink(sink));
        runtime
            .block_on(open(options, &mut client, scripted))
            .map_err(|_| StartError::Connect)?;
        Ok(Shell {
            runtime,
            session: Session {
                client,
                host: options.host.clone(),
                scripted,
                in_data: false,
            },
        })
    }

    /// A note in the transcript (`===`).
    pub fn note(&mut self, text: &str) {
        self.session.note(text);
    }

    /// Runs the session until the input ends or says `:quit`.
    pub fn run(mut self, rx: mpsc::Receiver<Input>) {
        self.runtime.block_on(self.session.run(rx));
    }
}

/// Opens the connection; a script also waits for the greeting.
async fn open(
    options: &ShellOptions,
    client: &mut SmtpClient,
    scripted: bool,
) -> Result<(), ClientError> {
    let addrs = match relais_client::resolve(&options.host, options.port).await {
        Ok(a) => a,
        Err(e) => {
            client.transcript_mut().error(e.to_string());
            return Err(e);
        }
    };
    let mut result = Ok(());
    for addr in addrs {
        result = client.open(addr).await;
        if result.is_ok() {
            break;
        }
    }
    result?;
    if options.tls_on_connect {
        client.tls_handshake(&options.host).await?;
    }
    if scripted {
        // Errors are in the transcript; the script goes on and finds out.
        let _ = client.read_reply(Stage::Banner).await;
    }
    Ok(())
}

/// The session task's state.
struct Session {
    client: SmtpClient,
    /// The name given on the command line: the TLS server name.
    host: String,
    /// Reading a script: wait for each reply before the next line.
    scripted: bool,
    /// Between a `354` and the final `.`: lines are message content and get no reply.
    in_data: bool,
}

/// What woke the session up.
enum Event {
    Input(Option<Input>),
    Reply(Result<Reply, ClientError>),
}

impl Session {
    async fn run(&mut self, mut rx: mpsc::Receiver<Input>) {
        loop {
            let connected = self.client.is_connected();
            let event = tokio::select! {
                input = rx.recv() => Event::Input(input),
                reply = self.client.receive(), if connected => Event::Reply(reply),
            };
            match event {
                Event::Reply(Ok(reply)) => self.saw(&reply),
                Event::Reply(Err(e)) => self.lost(e).await,
                Event::Input(None | Some(Input::Eof)) => {
                    if self.client.is_connected() && !self.scripted {
                        let _ = self.client.quit().await;
                    }
                    self.client.close().await;
                    return;
                }
                Event::Input(Some(Input::Quit)) => {
                    if self.client.is_connected() {
                        let _ = self.client.quit().await;
                    }
                    return;
                }
                Event::Input(Some(input)) => self.handle(input).await,
            }
        }
    }

    /// Notes what a reply changes.
    fn saw(&mut self, reply: &Reply) {
        if reply.code == 354 {
            self.in_data = true;
        }
    }

    /// An error from the connection: a stray line is skipped, anything else ends it.
    async fn lost(&mut self, e: ClientError) {
        if matches!(e, ClientError::Protocol { .. }) {
            return;
        }
        self.client.close().await;
        self.in_data = false;
        self.note("Not connected any more; :quit leaves.");
    }

    fn note(&mut self, text: impl Into<String>) {
        self.client.transcript_mut().info(text);
    }

    fn complain(&mut self, text: impl Into<String>) {
        self.client.transcript_mut().error(text);
    }

    async fn handle(&mut self, input: Input) {
        match input {
            Input::B64(text) => {
                let encoded = B64.encode(unescape(&text));
                self.note(format!("base64: {encoded}"));
            }
            Input::Unb64(text) => match B64.decode(text.trim()) {
                Ok(bytes) => self.note(format!("decoded: {}", show_decoded(&bytes))),
                Err(e) => self.complain(format!("not base64: {e}")),
            },
            Input::Help => {
                for line in HELP.lines() {
                    self.note(line);
                }
            }
            Input::Bad(message) => self.complain(message),
            Input::Line(_) | Input::Auth { .. } | Input::StartTls | Input::Data(_)
                if !self.client.is_connected() =>
            {
                self.complain("not connected; :quit leaves");
            }
            Input::Line(line) => self.line(&line).await,
            Input::Auth {
                mechanism,
                user,
                password,
            } => {
                let result = self.auth(mechanism, &user, &password).await;
                self.after(result).await;
            }
            Input::StartTls => {
                let host = self.host.clone();
                let result = self.client.starttls(&host).await.map(|_| ());
                if result.is_ok() {
                    self.note("TLS is up: send EHLO again.");
                }
                self.after(result).await;
            }
            Input::Data(path) => {
                let result = self.data(path).await;
                self.after(result).await;
            }
            Input::Eof | Input::Quit => {}
        }
    }

    /// Sends a raw line; a script then waits for its reply.
    async fn line(&mut self, line: &str) {
        let ends_data = self.in_data && line == ".";
        if let Err(e) = self.client.send_line(line).await {
            self.after(Err(e)).await;
            return;
        }
        if self.in_data && !ends_data {
            return;
        }
        self.in_data = false;
        if self.scripted {
            let stage = if ends_data {
                Stage::Message
            } else {
                Stage::of_line(line)
            };
            match self.client.read_reply(stage).await {
                Ok(reply) => self.saw(&reply),
                // A late reply is not fatal: it will show up before the next one.
                Err(ClientError::TimedOut { .. }) => {}
                Err(e) => self.lost(e).await,
            }
        }
    }

    /// After a helper: keep going if the server refused, drop the connection if it broke.
    async fn after(&mut self, result: Result<(), ClientError>) {
        if let Err(e) = result
            && !e.connection_usable()
        {
            self.lost(e).await;
        }
    }

    /// `:auth`: the SASL exchange with both forms shown. The password is never shown decoded.
    async fn auth(
        &mut self,
        mechanism: Mechanism,
        user: &str,
        password: &str,
    ) -> Result<(), ClientError> {
        match mechanism {
            Mechanism::Plain => {
                self.note(format!(
                    "AUTH PLAIN response: base64 of \"\\0{user}\\0<password>\""
                ));
                let token = relais_client::sasl_plain(user, password);
                let reply = self.client.command(format!("AUTH PLAIN {token}")).await?;
                self.auth_result(&reply);
            }
            Mechanism::Login => {
                let reply = self.client.command("AUTH LOGIN").await?;
                if !self.challenge(&reply) {
                    self.auth_result(&reply);
                    return Ok(());
                }
                self.note(format!("user name {user:?} in base64:"));
                let reply = self.client.sasl_response(&B64.encode(user)).await?;
                if !self.challenge(&reply) {
                    self.auth_result(&reply);
                    return Ok(());
                }
                self.note("password (not shown) in base64:");
                let reply = self.client.sasl_response(&B64.encode(password)).await?;
                self.auth_result(&reply);
            }
            other => match other.authenticate(&mut self.client, user, password).await {
                Ok(reply) | Err(ClientError::UnexpectedReply { reply, .. }) => {
                    self.auth_result(&reply)
                }
                Err(e) => return Err(e),
            },
        }
        Ok(())
    }

    /// Shows a `334` challenge decoded; false when the reply is no challenge.
    fn challenge(&mut self, reply: &Reply) -> bool {
        if reply.code != 334 {
            return false;
        }
        let text = reply.lines.first().map(String::as_str).unwrap_or("");
        match B64.decode(text.trim()) {
            Ok(bytes) => self.note(format!(
                "the server asks (base64-decoded): {}",
                show_decoded(&bytes)
            )),
            Err(_) => self.note(format!("the server asks: {text}")),
        }
        true
    }

    fn auth_result(&mut self, reply: &Reply) {
        if reply.code == 235 {
            self.note("authenticated");
        } else {
            self.complain(format!("authentication failed: {reply}"));
        }
    }

    /// `:data FILE`: DATA unless already in it, then the file dot-stuffed and `.`.
    async fn data(&mut self, path: PathBuf) -> Result<(), ClientError> {
        let content = match std::fs::read(&path) {
            Ok(c) => c,
            Err(e) => {
                self.complain(format!("cannot read {}: {e}", path.display()));
                return Ok(());
            }
        };
        if !self.in_data {
            let reply = self.client.command("DATA").await?;
            if reply.code != 354 {
                return Ok(());
            }
        }
        self.in_data = false;
        match self.client.data_content(&content).await {
            Ok(_) => Ok(()),
            Err(e) if e.connection_usable() => Ok(()),
            Err(e) => Err(e),
        }
    }
}
