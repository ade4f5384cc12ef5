//! `relais user add NAME`: makes an argon2 password hash for SMTP AUTH.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use crate::exit;

/// Asks for a password (twice on a terminal; one line from standard input otherwise), prints
/// `name:hash`, and appends it to `file` when one is given.
pub fn add(name: &str, file: Option<&Path>) -> ExitCode {
    if name.is_empty() || name.contains([':', '\n']) {
        eprintln!("relais user add: a user name may not be empty nor contain ':'");
        return ExitCode::from(exit::USAGE);
    }
    let password = match read_password() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("relais user add: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let hash = match relais_smtpd::hash_password(&password) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("relais user add: cannot hash: {e}");
            return ExitCode::from(exit::SERVER);
        }
    };
    let line = format!("{name}:{hash}");
    if let Some(path) = file {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            eprintln!("relais user add: {}: {e}", path.display());
            return ExitCode::from(exit::CONFIG);
        }
        eprintln!("added {name} to {}", path.display());
    }
    println!("{line}");
    ExitCode::from(exit::OK)
}

fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let p1 = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let p2 = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if p1 != p2 {
            return Err("the passwords differ".into());
        }
        if p1.is_empty() {
            return Err("empty password".into());
        }
        Ok(p1)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let p = line.trim_end_matches(['\r', '\n']).to_string();
        if p.is_empty() {
            return Err("empty password on standard input".into());
        }
        Ok(p)
    }
}
