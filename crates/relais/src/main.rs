//! `relais`: the command line. One module per subcommand; `main` maps outcomes to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod args;
mod check;
mod dkim;
mod dns;
mod explain;
mod logbuf;
mod logfmt;
mod probe;
mod progress;
mod queue;
mod send;
mod sendmail;
mod serve;
mod shell;
mod sink;
mod user;
mod whoami;

/// relais: a mail transfer agent and SMTP diagnostics toolkit.
#[derive(Parser, Debug)]
#[command(name = "relais", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the SMTP server (with no --config: 127.0.0.1:2525, mail in ./relais-data).
    Serve {
        /// TOML configuration file; without it the embedded default runs.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Make the running server read its configuration again (like SIGHUP; exit 2 if refused).
    Reload {
        /// The server's configuration file (for its data directory); default: the embedded one.
        #[arg(long, short, env = "RELAIS_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Explain an SMTP reply code, an enhanced status code, an Outlook error number, or the
    /// words of a bounce or a mail client's error (exit 4: not recognised).
    Explain {
        /// `550`, `5.1.1`, a reply line such as `550 5.1.1 User unknown`, `0x800CCC0E`, a bounce
        /// line, or words such as "Relay access denied".
        #[arg(required_unless_present = "file", num_args = 1..)]
        code: Vec<String>,
        /// A whole bounce message (`-`: standard input): each recipient's status in its delivery
        /// report explained, or, without one, every SMTP reply quoted in its text.
        #[arg(long, short, value_name = "BOUNCE", conflicts_with = "code")]
        file: Option<PathBuf>,
    },
    /// Look at and steer the mail queue (list, show, flush, delete, hold, release).
    Queue(queue::QueueArgs),
    /// Submit a message from standard input like sendmail (-t, -i, -f, -F; see --help).
    Sendmail {
        /// sendmail's options and recipients, as sendmail takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Manage SMTP AUTH users (add, passwd, delete, list); a running server picks up the
    /// users file's changes by itself.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Send a test message and show the dialogue, like swaks (exit codes: see --help).
    Send(Box<send::SendArgs>),
    /// An interactive SMTP session (telnet, forgiving), or a script read from standard input.
    Shell(shell::ShellArgs),
    /// Probe a domain's MX hosts or one SMTP server, stage by stage (exit codes: see --help).
    Probe(probe::ProbeArgs),
    /// A domain's whole mail set-up in one report: MX hosts probed, SPF, DMARC, DKIM, MTA-STS,
    /// TLS-RPT, BIMI, block lists (text, --json, --html FILE; exit by worst verdict).
    Check(check::CheckArgs),
    /// A test SMTP server with faults on demand (refusals, 421s, slow banners, greylisting,
    /// drops in DATA, ...): mail is captured, never delivered; JSON API with --http.
    Sink(sink::SinkArgs),
    /// DNS lookups for mail: MX, A/AAAA, PTR, TXT, SPF, DMARC (exit codes: see --help).
    Dns(dns::DnsArgs),
    /// Check an address on DNS block lists (exit codes: see --help).
    Dnsbl(dns::DnsblArgs),
    /// This host's source address toward the internet, its PTR, whether the PTR resolves
    /// back, whether the HELO name matches (exit codes: see --help).
    Whoami(whoami::WhoamiArgs),
    /// DKIM keys: make one for a domain (`relais dkim keygen --domain D --selector S`).
    Dkim {
        #[command(subcommand)]
        action: DkimAction,
    },
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand, Debug)]
enum UserAction {
    /// Hash a password (asked on the terminal, or one line of standard input) and print
    /// `name:hash` for the `[auth] users_file`; with a users file, add the user to it.
    Add {
        /// The login name.
        name: String,
        #[command(flatten)]
        file: user::UsersFile,
    },
    /// Set a new password for a user of the users file.
    Passwd {
        /// The login name.
        name: String,
        #[command(flatten)]
        file: user::UsersFile,
    },
    /// Remove a user from the users file.
    Delete {
        /// The login name.
        name: String,
        #[command(flatten)]
        file: user::UsersFile,
    },
    /// List the users of the users file.
    List {
        #[command(flatten)]
        file: user::UsersFile,
    },
}

#[derive(Subcommand, Debug)]
enum DkimAction {
    /// Make a key pair: the private key is written (mode 0600), the TXT record to publish and
    /// the `[[dkim]]` lines to add are printed.
    Keygen(dkim::KeygenArgs),
}

#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Validate a configuration file and print the effective settings.
    Check {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the embedded default configuration.
    Default,
}

/// Exit codes (also in README.md).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The command line is wrong (unknown option, missing argument): sysexits' EX_USAGE, so
    /// that it never collides with the codes a subcommand gives (swaks' table for `send`,
    /// "negative answer" for `dns`, …).
    pub const COMMAND_LINE: u8 = 64;
    /// A configuration error.
    pub const CONFIG: u8 = 2;
    /// The server could not start or failed while running.
    pub const SERVER: u8 = 3;
    /// The input was not understood (e.g. `relais explain` of something that is no code).
    pub const USAGE: u8 = 4;
    /// A queue operation failed (no such message, no server for `flush`, …).
    pub const QUEUE: u8 = 5;
}

fn main() -> ExitCode {
    // Called through a link named `sendmail` or `mailq`, relais behaves as those commands.
    let argv: Vec<String> = std::env::args().collect();
    let called = argv
        .first()
        .map(|a| {
            std::path::Path::new(a)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    match called.as_str() {
        "sendmail" => return sendmail::run(&argv[1..]),
        "mailq" => {
            return queue::run(queue::QueueArgs {
                config: std::env::var_os("RELAIS_CONFIG").map(Into::into),
                json: false,
                action: queue::QueueAction::List {
                    select: Default::default(),
                },
            });
        }
        _ => {}
    }
    // clap's own exit code for a bad command line is 2, which `relais send` uses for "could not
    // connect" (as swaks does) and `relais serve` for a configuration error: use 64 instead.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::COMMAND_LINE
            } else {
                exit::OK
            });
        }
    };
    match cli.command {
        Command::Serve { config } => serve::run(config.as_deref()),
        Command::Reload { config } => serve::reload(config.as_deref()),
        Command::Explain { code, file } => match file {
            Some(path) => explain::run_file(&path),
            None => explain::run(&code.join(" ")),
        },
        Command::Queue(args) => queue::run(args),
        Command::Sendmail { args } => sendmail::run(&args),
        Command::User { action } => match action {
            UserAction::Add { name, file } => user::add(&name, &file),
            UserAction::Passwd { name, file } => user::passwd(&name, &file),
            UserAction::Delete { name, file } => user::delete(&name, &file),
            UserAction::List { file } => user::list(&file),
        },
        Command::Send(args) => send::run(*args),
        Command::Shell(args) => shell::run(args),
        Command::Probe(args) => probe::run(args),
        Command::Check(args) => check::run(args),
        Command::Dns(args) => dns::run(args),
        Command::Dnsbl(args) => dns::run_dnsbl(args),
        Command::Whoami(args) => whoami::run(args),
        Command::Sink(args) => sink::run(args),
        Command::Dkim { action } => match action {
            DkimAction::Keygen(args) => dkim::keygen(args),
        },
        Command::Config { action } => match action {
            ConfigAction::Check { file } => match relais_config::Config::load(&file) {
                Ok(c) => {
                    println!("# {}: OK. Effective settings:", file.display());
                    print!("{}", c.to_toml());
                    ExitCode::from(exit::OK)
                }
                Err(e) => {
                    eprintln!("relais: {e}");
                    ExitCode::from(exit::CONFIG)
                }
            },
            ConfigAction::Default => {
                print!("{}", relais_config::Config::embedded().to_toml());
                ExitCode::from(exit::OK)
            }
        },
    }
}
