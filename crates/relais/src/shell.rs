//! `relais shell host [port]`: the seeds' `telnet host 25`, forgiving.
//!
//! Lines are edited (and recalled from history) before they are sent, replies are shown as
//! they arrive, and what is sent is always echoed, marked as in `relais send` (` ->` sent,
//! `<-` received, `~` under TLS, `===` notes, `***` errors). Helpers do the fiddly parts:
//! `:auth login USER` asks for the password and does the base64 exchange, showing both forms;
//! `:data FILE` dot-stuffs a file and ends it with `.`.
//!
//! When standard input is not a terminal the shell reads a script from it, one line at a time,
//! and waits for the server's reply to each line before sending the next (no wait for lines
//! of message content between a `354` and the final `.`), so a script runs the same way every
//! time.
//!
//! Two threads: the input thread owns the terminal (rustyline, password prompts) or reads the
//! script, and hands parsed [`Input`]s over a channel; the session task owns the connection
//! and waits on both the channel and the socket, so replies show up even while nothing is typed.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use relais_client::{ClientConfig, ClientError, Entry, SmtpClient, Stage, TlsPolicy, Transcript};
use tokio::sync::mpsc;

/// Exit codes of `relais shell`.
pub mod exit {
    /// The session ended (whatever the server said).
    pub const OK: u8 = 0;
    /// The options do not make sense.
    pub const USAGE: u8 = 1;
    /// No connection could be made (host not found, refused, timed out, TLS failed).
    pub const CONNECT: u8 = 2;
}

const HELP: &str = "\
Type SMTP commands as in telnet (EHLO, MAIL FROM:<a@b>, RCPT TO:<c@d>, DATA, …, QUIT).
Helpers:
  :auth login USER [PASSWORD]  AUTH LOGIN, base64 done for you (password asked for if missing)
  :auth plain USER [PASSWORD]  AUTH PLAIN, the same
  :starttls                    STARTTLS and the TLS handshake (send EHLO again after it)
  :data FILE                   DATA (unless already in it), FILE dot-stuffed, then '.'
  :b64 TEXT                    show TEXT in base64 (\\0 stands for a NUL byte)
  :unb64 TEXT                  decode base64 TEXT
  :help                        this list
  :quit                        QUIT and leave (Ctrl-D leaves too)
When standard input is not a terminal, lines are read from it and each waits for its reply.
Exit codes: 0 the session ran; 1 bad options; 2 no connection (not found, refused, timed out, TLS).";

/// `relais shell`: what was typed.
#[derive(Args, Debug)]
#[command(after_long_help = HELP)]
pub struct ShellArgs {
    /// The server's name or address.
    host: String,
    /// Its port.
    #[arg(default_value_t = 25)]
    port: u16,
    /// TLS from the first byte (SMTPS, port 465).
    #[arg(long)]
    tls_on_connect: bool,
    /// Refuse a certificate that does not verify (the result is shown either way).
    #[arg(long)]
    tls_verify: bool,
    /// Also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE")]
    tls_ca_path: Option<PathBuf>,
    /// Seconds to wait for the connection and, when reading a script, for each reply.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    timeout: f64,
}

/// SASL mechanisms the helpers know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    Plain,
    Login,
}

/// One thing to do, from a typed or scripted line.
#[derive(Debug, PartialEq, Eq)]
enum Input {
    /// A line to send as is.
    Line(String),
    /// `:auth …`.
    Auth {
        mechanism: Mechanism,
        user: String,
        password: String,
    },
    /// `:starttls`.
    StartTls,
    /// `:data FILE`.
    Data(PathBuf),
    /// `:b64 TEXT`.
    B64(String),
    /// `:unb64 TEXT`.
    Unb64(String),
    /// `:help`.
    Help,
    /// `:quit`.
    Quit,
    /// A helper typed wrong: the message to show.
    Bad(String),
    /// End of input.
    Eof,
}

/// What [`parse`] makes of a line: an input, or a helper that still needs a password.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Ready(Input),
    NeedsPassword { mechanism: Mechanism, user: String },
}

/// Reads one line: a raw SMTP line, or a `:helper`.
fn parse(line: &str) -> Parsed {
    let Some(helper) = line.strip_prefix(':') else {
        return Parsed::Ready(Input::Line(line.to_string()));
    };
    let (name, rest) = match helper.split_once(' ') {
        Some((n, r)) => (n, r.trim_start()),
        None => (helper, ""),
    };
    let input = match name.to_ascii_lowercase().as_str() {
        "auth" => {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let mechanism = match words.first().map(|w| w.to_ascii_lowercase()).as_deref() {
                Some("login") => Mechanism::Login,
                Some("plain") => Mechanism::Plain,
                _ => return Parsed::Ready(Input::Bad(":auth login|plain USER [PASSWORD]".into())),
            };
            match words.as_slice() {
                [_, user] => {
                    return Parsed::NeedsPassword {
                        mechanism,
                        user: user.to_string(),
                    };
                }
                [_, user, password] => Input::Auth {
                    mechanism,
                    user: user.to_string(),
                    password: password.to_string(),
                },
                _ => Input::Bad(":auth login|plain USER [PASSWORD]".into()),
            }
        }
        "starttls" => Input::StartTls,
        "data" if !rest.is_empty() => Input::Data(PathBuf::from(rest)),
        "data" => Input::Bad(":data FILE".into()),
        "b64" => Input::B64(rest.to_string()),
        "unb64" => Input::Unb64(rest.to_string()),
        "help" | "h" | "?" => Input::Help,
        "quit" | "q" | "exit" => Input::Quit,
        other => Input::Bad(format!(":{other} is no helper; :help lists them")),
    };
    Parsed::Ready(input)
}

/// `\0` → NUL, `\\` → `\`, for `:b64`.
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'\\' {
            match bytes.next() {
                Some(b'0') => out.push(0),
                Some(b'\\') => out.push(b'\\'),
                Some(other) => out.extend_from_slice(&[b'\\', other]),
                None => out.push(b'\\'),
            }
        } else {
            out.push(b);
        }
    }
    out
}

/// Decoded bytes shown as text, NUL as `\0`.
fn show_decoded(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', "\\0")
}

/// Where output goes: stdout, or rustyline's printer so the prompt is redrawn below it.
type Printer = Arc<Mutex<Option<Box<dyn rustyline::ExternalPrinter + Send>>>>;

fn print_line(printer: &Printer, line: String) {
    if let Ok(mut p) = printer.lock()
        && let Some(p) = p.as_mut()
        && p.print(format!("{line}\n")).is_ok()
    {
        return;
    }
    println!("{line}");
}

/// Runs `relais shell`.
pub fn run(args: ShellArgs) -> ExitCode {
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        eprintln!("relais shell: --timeout must be a positive number of seconds");
        return ExitCode::from(exit::USAGE);
    }
    let interactive = std::io::stdin().is_terminal();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relais shell: cannot start the runtime: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let printer: Printer = Arc::new(Mutex::new(None));
    let sink_printer = Arc::clone(&printer);
    let transcript = Transcript::with_sink(Box::new(move |e: &Entry| {
        print_line(&sink_printer, crate::send::show(e))
    }));
    let mut cfg = ClientConfig::with_timeout(Duration::from_secs_f64(args.timeout));
    cfg.tls = TlsPolicy {
        verify: args.tls_verify,
        server_name: None,
        ca_file: args.tls_ca_path.clone(),
        ca_file_only: false,
    };
    let mut client = SmtpClient::with_transcript(cfg, transcript);
    let code = runtime.block_on(async {
        if connect(&args, &mut client, interactive).await.is_err() {
            return exit::CONNECT;
        }
        let (tx, rx) = mpsc::channel(1);
        if interactive {
            match rustyline::DefaultEditor::new() {
                Ok(mut editor) => {
                    if let Ok(p) = editor.create_external_printer()
                        && let Ok(mut slot) = printer.lock()
                    {
                        *slot = Some(Box::new(p));
                    }
                    client
                        .transcript_mut()
                        .info("Type SMTP commands; :help lists the helpers, :quit leaves.");
                    std::thread::spawn(move || read_terminal(editor, tx));
                }
                Err(e) => {
                    eprintln!("relais shell: no line editing ({e}); reading lines as they come");
                    std::thread::spawn(move || read_script(tx));
                }
            }
        } else {
            std::thread::spawn(move || read_script(tx));
        }
        let mut session = Session {
            client,
            host: args.host.clone(),
            scripted: !interactive,
            in_data: false,
        };
        session.run(rx).await;
        exit::OK
    });
    ExitCode::from(code)
}

/// Opens the connection (TLS first with `--tls-on-connect`). A script also waits for the
/// greeting here; at a terminal it shows up when it comes.
async fn connect(
    args: &ShellArgs,
    client: &mut SmtpClient,
    interactive: bool,
) -> Result<(), ClientError> {
    let addrs = match relais_client::resolve(&args.host, args.port).await {
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
    if args.tls_on_connect {
        client.tls_handshake(&args.host).await?;
    }
    if !interactive {
        // Errors are in the transcript; the script goes on and finds out.
        let _ = client.read_reply(Stage::Banner).await;
    }
    Ok(())
}

/// The input thread at a terminal: rustyline with history, passwords without echo.
fn read_terminal(mut editor: rustyline::DefaultEditor, tx: mpsc::Sender<Input>) {
    use rustyline::error::ReadlineError;
    loop {
        match editor.readline("smtp> ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                let input = match parse(&line) {
                    Parsed::Ready(i) => i,
                    Parsed::NeedsPassword { mechanism, user } => {
                        match rpassword::prompt_password(format!("Password for {user}: ")) {
                            Ok(password) => Input::Auth {
                                mechanism,
                                user,
                                password,
                            },
                            Err(e) => Input::Bad(format!("cannot read the password: {e}")),
                        }
                    }
                };
                let last = input == Input::Quit;
                if tx.blocking_send(input).is_err() || last {
                    return;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(_) => {
                let _ = tx.blocking_send(Input::Eof);
                return;
            }
        }
    }
}

/// The input thread on a script: one line at a time; a password a helper needs is the next line.
fn read_script(tx: mpsc::Sender<Input>) {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut next = || match lines.next() {
        Some(Ok(l)) => Some(l.trim_end_matches('\r').to_string()),
        _ => None,
    };
    while let Some(line) = next() {
        let input = match parse(&line) {
            Parsed::Ready(i) => i,
            Parsed::NeedsPassword { mechanism, user } => match next() {
                Some(password) => Input::Auth {
                    mechanism,
                    user,
                    password,
                },
                None => Input::Bad(format!("no password for {user} on standard input")),
            },
        };
        let last = input == Input::Quit;
        if tx.blocking_send(input).is_err() || last {
            return;
        }
    }
    let _ = tx.blocking_send(Input::Eof);
}

/// The session task.
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
    Reply(Result<relais_proto::Reply, ClientError>),
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
    fn saw(&mut self, reply: &relais_proto::Reply) {
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
        }
        Ok(())
    }

    /// Shows a `334` challenge decoded; false when the reply is no challenge.
    fn challenge(&mut self, reply: &relais_proto::Reply) -> bool {
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

    fn auth_result(&mut self, reply: &relais_proto::Reply) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_parse() {
        let ready = |l: &str| match parse(l) {
            Parsed::Ready(i) => i,
            p => panic!("{l}: {p:?}"),
        };
        assert_eq!(ready("EHLO x"), Input::Line("EHLO x".into()));
        assert_eq!(ready(""), Input::Line(String::new()));
        assert_eq!(ready(":b64 \\0u\\0p"), Input::B64("\\0u\\0p".into()));
        assert_eq!(ready(":unb64 dXNlcg=="), Input::Unb64("dXNlcg==".into()));
        assert_eq!(ready(":starttls"), Input::StartTls);
        assert_eq!(ready(":data /tmp/m.eml"), Input::Data("/tmp/m.eml".into()));
        assert_eq!(ready(":quit"), Input::Quit);
        assert_eq!(ready(":help"), Input::Help);
        assert!(matches!(ready(":data"), Input::Bad(_)));
        assert!(matches!(ready(":auth cram-md5 u"), Input::Bad(_)));
        assert!(matches!(ready(":nope"), Input::Bad(_)));
        assert_eq!(
            ready(":auth LOGIN alice secret"),
            Input::Auth {
                mechanism: Mechanism::Login,
                user: "alice".into(),
                password: "secret".into()
            }
        );
        assert_eq!(
            parse(":auth plain alice"),
            Parsed::NeedsPassword {
                mechanism: Mechanism::Plain,
                user: "alice".into()
            }
        );
    }

    #[test]
    fn b64_escapes() {
        assert_eq!(unescape("\\0u\\0p"), b"\0u\0p");
        assert_eq!(unescape("a\\\\b\\n"), b"a\\b\\n");
        assert_eq!(show_decoded(b"\0u\0p"), "\\0u\\0p");
    }
}
