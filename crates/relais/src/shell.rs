//! `relais shell host [port]`: its arguments, the terminal (line editing with history,
//! passwords asked for without echo, output printed above the prompt) and the exit code. The
//! session, the helpers and script mode are [`relais_diag::shell`]'s.
//!
//! Two threads: the input thread owns the terminal (rustyline, password prompts) or reads the
//! script, and hands parsed inputs over a channel; the session runs on this one.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use relais_client::Entry;
use relais_diag::shell::{
    self, HELP, Input, InputSender, Parsed, Shell, ShellOptions, StartError, exit,
};

use crate::args::TlsArgs;

/// `relais shell`: what was typed.
#[derive(Args, Debug)]
#[command(after_long_help = HELP)]
pub struct ShellArgs {
    /// The server's name or address.
    host: String,
    /// Its port.
    #[arg(default_value_t = 25)]
    port: u16,
    #[command(flatten)]
    tls: TlsArgs,
    /// Seconds to wait for the connection and, when reading a script, for each reply.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    timeout: f64,
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
    let options = ShellOptions {
        host: args.host.clone(),
        port: args.port,
        tls_on_connect: args.tls.on_connect(),
        tls_policy: args.tls.policy(),
        timeout: Duration::from_secs_f64(args.timeout),
    };
    let printer: Printer = Arc::new(Mutex::new(None));
    let sink_printer = Arc::clone(&printer);
    let sink = Box::new(move |e: &Entry| print_line(&sink_printer, relais_diag::show(e)));
    let mut shell = match Shell::connect(&options, sink, !interactive) {
        Ok(shell) => shell,
        Err(StartError::Runtime(e)) => {
            eprintln!("relais shell: {e}");
            return ExitCode::from(exit::USAGE);
        }
        Err(StartError::Connect) => return ExitCode::from(exit::CONNECT),
    };
    let (tx, rx) = shell::channel();
    let editor = if interactive {
        match rustyline::DefaultEditor::new() {
            Ok(editor) => Some(editor),
            Err(e) => {
                eprintln!("relais shell: no line editing ({e}); reading lines as they come");
                None
            }
        }
    } else {
        None
    };
    match editor {
        Some(mut editor) => {
            if let Ok(p) = editor.create_external_printer()
                && let Ok(mut slot) = printer.lock()
            {
                *slot = Some(Box::new(p));
            }
            shell.note("Type SMTP commands; :help lists the helpers, :quit leaves.");
            std::thread::spawn(move || read_terminal(editor, tx));
        }
        None => {
            std::thread::spawn(move || shell::read_script(std::io::stdin().lock(), tx));
        }
    }
    shell.run(rx);
    ExitCode::from(exit::OK)
}

/// The input thread at a terminal: rustyline with history, passwords without echo.
fn read_terminal(mut editor: rustyline::DefaultEditor, tx: InputSender) {
    use rustyline::error::ReadlineError;
    loop {
        match editor.readline("smtp> ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                let input = match shell::parse(&line) {
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
