//! `relais queue …` (and `mailq`): look at and steer the queue, through the running server's
//! control socket when there is one, on the spool directly when there is not.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use relais_config::Config;
use relais_proto::date::DateTime;
use relais_queue::admin::{self, QueueDetail, QueueEntry};
use relais_queue::select::{MessageState, Selection};
use relais_server::control;
use relais_spool::{Spool, SpoolOptions};

use crate::exit;

/// `relais queue` arguments.
#[derive(Args, Debug)]
pub struct QueueArgs {
    /// The server's configuration (for its data directory); default: the embedded one.
    #[arg(long, short, env = "RELAIS_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: QueueAction,
}

/// What to do with the queue.
#[derive(Subcommand, Debug)]
pub enum QueueAction {
    /// List queued messages, like mailq: id, size, arrival, sender, recipients, status.
    List {
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Show one message: envelope, headers, per-recipient history.
    Show {
        /// Queue id.
        id: String,
    },
    /// Try delivery now: one message, or all (needs the running server).
    Flush {
        /// Queue id; all messages when absent.
        id: Option<String>,
    },
    /// Remove messages without delivering or bouncing them.
    Delete {
        /// Queue ids.
        ids: Vec<String>,
        /// Every message (with the selection options: every message they pick).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Keep messages in the queue until released.
    Hold {
        /// Queue ids.
        ids: Vec<String>,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Release held messages.
    Release {
        /// Queue ids.
        ids: Vec<String>,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Make messages due now: tried at once by the running server, or when it starts.
    Requeue {
        /// Queue ids.
        ids: Vec<String>,
        #[command(flatten)]
        select: SelectArgs,
    },
}

/// Which messages: every option given must hold (see `relais_queue::select`).
#[derive(Args, Debug, Default)]
pub struct SelectArgs {
    /// The sender matches this pattern (`*` and `?` wildcards, no case; '' is `<>`).
    #[arg(long, value_name = "PATTERN")]
    pub from: Option<String>,
    /// A recipient still waiting matches this pattern.
    #[arg(long, value_name = "PATTERN")]
    pub to: Option<String>,
    /// Arrived at least this long ago (`90m`, `12h`, `2d`).
    #[arg(long, value_name = "AGE", value_parser = age)]
    pub older_than: Option<std::time::Duration>,
    /// `held`, `deferred` (tried, waiting for a retry) or `new` (not tried yet).
    #[arg(long)]
    pub state: Option<MessageState>,
}

fn age(s: &str) -> Result<std::time::Duration, String> {
    relais_config::parse_duration(s)
        .ok_or_else(|| format!("{s:?} is not an age (like 90m, 12h, 2d)"))
}

impl SelectArgs {
    fn selection(&self) -> Selection {
        Selection {
            from: self.from.clone(),
            to: self.to.clone(),
            older_than: self.older_than,
            state: self.state,
        }
    }
}

/// Loads the configuration named on the command line, or the embedded one.
pub fn load_config(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    match path {
        Some(p) => Config::load(p).map_err(|e| {
            eprintln!("relais: {e}");
            ExitCode::from(exit::CONFIG)
        }),
        None => Ok(Config::embedded()),
    }
}

/// Opens the spool directly (no server running).
fn open_spool(config: &Config) -> Result<Spool, String> {
    Spool::open(&config.spool_dir(), SpoolOptions::default()).map_err(|e| e.to_string())
}

/// Runs `relais queue …`.
pub fn run(args: QueueArgs) -> ExitCode {
    let config = match load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let dir = config.data_dir.clone();
    let result = match &args.action {
        QueueAction::List { select } => list(&config).map(|entries| {
            let entries = pick(entries, &select.selection());
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&entries).unwrap_or_default()
                );
            } else {
                print!("{}", render_list(&entries));
            }
        }),
        QueueAction::Show { id } => show(&config, id).map(|d| {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&d).unwrap_or_default());
            } else {
                print!("{}", render_show(&d));
            }
        }),
        QueueAction::Flush { id } => {
            let line = match id {
                Some(i) => format!("FLUSH {i}"),
                None => "FLUSH".to_string(),
            };
            match control::request(&dir, &line, b"") {
                Some(r) => r.and_then(check_ok),
                None => Err("no server is running: queued mail is delivered when it starts".into()),
            }
        }
        QueueAction::Delete { ids, all, select } => {
            act_on(&config, "DELETE", "deleted", ids, *all, select)
        }
        QueueAction::Hold { ids, select } => act_on(&config, "HOLD", "held", ids, false, select),
        QueueAction::Release { ids, select } => {
            act_on(&config, "RELEASE", "released", ids, false, select)
        }
        QueueAction::Requeue { ids, select } => {
            act_on(&config, "FLUSH", "requeued", ids, false, select)
        }
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => fail(&e),
    }
}

/// The entries a selection picks.
fn pick(entries: Vec<QueueEntry>, selection: &Selection) -> Vec<QueueEntry> {
    let now = relais_proto::date::unix_secs(std::time::SystemTime::now()).max(0) as u64;
    entries
        .into_iter()
        .filter(|e| selection.matches(e, now))
        .collect()
}

/// One verb on the messages named, or on those the selection picks (`--all` alone: every
/// message); says which, one line each.
fn act_on(
    config: &Config,
    verb: &str,
    done: &str,
    ids: &[String],
    all: bool,
    select: &SelectArgs,
) -> Result<(), String> {
    let selection = select.selection();
    let ids: Vec<String> = if all || !selection.is_empty() {
        if !ids.is_empty() {
            return Err("name messages, or select them with options: not both".into());
        }
        pick(list(config)?, &selection)
            .into_iter()
            .map(|e| e.id)
            .collect()
    } else {
        ids.to_vec()
    };
    if ids.is_empty() {
        return if all || !selection.is_empty() {
            eprintln!("no message selected");
            Ok(())
        } else {
            Err(
                "name the messages, or select them (--from, --to, --older-than, --state, --all)"
                    .into(),
            )
        };
    }
    let mut failed = None;
    for id in &ids {
        match act(config, verb, id) {
            Ok(()) => eprintln!("{id}: {done}"),
            Err(e) => failed = Some(format!("{id}: {e}")),
        }
    }
    failed.map_or(Ok(()), Err)
}

fn fail(e: &str) -> ExitCode {
    eprintln!("relais queue: {e}");
    ExitCode::from(exit::QUEUE)
}

fn check_ok(answer: String) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_str(&answer).map_err(|e| e.to_string())?;
    match v.get("error").and_then(|e| e.as_str()) {
        Some(e) => Err(e.to_string()),
        None => Ok(()),
    }
}

/// Reads the server's answer: `{"error": …}`, or the value asked for.
fn answer<T: serde::de::DeserializeOwned>(a: &str) -> Result<T, String> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(a)
        && let Some(e) = v.get("error").and_then(|e| e.as_str())
    {
        return Err(e.to_string());
    }
    serde_json::from_str(a).map_err(|e| e.to_string())
}

fn list(config: &Config) -> Result<Vec<QueueEntry>, String> {
    match control::request(&config.data_dir, "LIST", b"") {
        Some(r) => r.and_then(|a| answer(&a)),
        None => Ok(admin::list(&open_spool(config)?)),
    }
}

fn show(config: &Config, id: &str) -> Result<QueueDetail, String> {
    match control::request(&config.data_dir, &format!("SHOW {id}"), b"") {
        Some(r) => r.and_then(|a| answer(&a)),
        None => admin::show(&open_spool(config)?, id),
    }
}

/// HOLD, RELEASE, DELETE or FLUSH (requeue): through the server, or on the spool.
fn act(config: &Config, verb: &str, id: &str) -> Result<(), String> {
    if let Some(r) = control::request(&config.data_dir, &format!("{verb} {id}"), b"") {
        return r.and_then(check_ok);
    }
    let spool = open_spool(config)?;
    let qid = admin::parse_id(id)?;
    if verb == "DELETE" {
        return admin::delete(&spool, qid);
    }
    let rt = relais_client::current_thread_runtime().map_err(|e| e.to_string())?;
    match verb {
        "FLUSH" => rt.block_on(admin::requeue(&spool, qid)),
        _ => rt.block_on(admin::set_held(&spool, qid, verb == "HOLD")),
    }
}

/// An arrival time as mailq shows it: `Sun 22 Nov 14:16:45`.
fn when(secs: u64) -> String {
    DateTime::from_unix(i64::try_from(secs).unwrap_or(i64::MAX)).mailq()
}

/// The mailq-style listing.
pub fn render_list(entries: &[QueueEntry]) -> String {
    if entries.is_empty() {
        return "Mail queue is empty\n".into();
    }
    let mut out = String::from(
        "-Queue ID-          --Size-- ----Arrival Time---- -Sender/Recipient-------\n",
    );
    let mut total = 0u64;
    for e in entries {
        total += e.size;
        let mark = if e.held { "!" } else { " " };
        let sender = if e.sender.is_empty() {
            "MAILER-DAEMON".to_string()
        } else {
            e.sender.clone()
        };
        out.push_str(&format!(
            "{}{mark} {:>8} {:<20} {sender}\n",
            e.id,
            e.size,
            when(e.arrival)
        ));
        for r in &e.recipients {
            if r.status == "sent" || r.status == "bounced" {
                continue;
            }
            if let Some(reason) = &r.reason {
                out.push_str(&format!("{:50}({reason})\n", ""));
            }
            out.push_str(&format!("{:50}{}\n", "", r.address));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "-- {} Kbytes in {} Request{}.\n",
        total.div_ceil(1024),
        entries.len(),
        if entries.len() == 1 { "" } else { "s" }
    ));
    out
}

fn render_show(d: &QueueDetail) -> String {
    let e = &d.entry;
    let mut out = format!(
        "Queue ID:  {}{}\nArrival:   {}\nSize:      {}\nClient:    {}\nSender:    <{}>\nAttempts:  {}\n",
        e.id,
        if e.held { " (held)" } else { "" },
        when(e.arrival),
        e.size,
        d.client,
        e.sender,
        e.attempts
    );
    if e.next_attempt > 0 {
        out.push_str(&format!("Next try:  {}\n", when(e.next_attempt)));
    }
    out.push_str("Recipients:\n");
    for r in &e.recipients {
        out.push_str(&format!("  <{}>: {}", r.address, r.status));
        if let Some(reason) = &r.reason {
            out.push_str(&format!(" ({reason})"));
        }
        out.push('\n');
    }
    out.push_str("\nEnvelope:\n");
    for l in d.envelope.lines() {
        out.push_str(&format!("  {l}\n"));
    }
    out.push_str("\nHeaders:\n");
    out.push_str(&d.headers.replace("\r\n", "\n"));
    out
}
