//! `relais user add | passwd | delete | list`: SMTP AUTH users and their argon2 password
//! hashes, in the `[auth] users_file` (named with `--file`, or found in the configuration). A
//! running server reads the file again when it changes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use relais_smtpd::users_file;

use crate::exit;

/// Which users file: `--file`, else the `[auth] users_file` of the configuration.
#[derive(Args, Debug)]
pub struct UsersFile {
    /// The users file (`name:hash` lines).
    #[arg(long)]
    file: Option<PathBuf>,
    /// The server's configuration, for its `[auth] users_file`; default: the embedded one.
    #[arg(long, short, env = "RELAIS_CONFIG")]
    config: Option<PathBuf>,
}

impl UsersFile {
    /// The file, if one is named or configured.
    fn path(&self) -> Result<Option<PathBuf>, ExitCode> {
        if let Some(f) = &self.file {
            return Ok(Some(f.clone()));
        }
        let config = crate::queue::load_config(self.config.as_deref())?;
        Ok(config.auth.users_file)
    }

    /// The file, which the command needs.
    fn required(&self, verb: &str) -> Result<PathBuf, ExitCode> {
        self.path()?.ok_or_else(|| {
            eprintln!(
                "relais user {verb}: no users file: name one with --file, or set [auth] users_file"
            );
            ExitCode::from(exit::USAGE)
        })
    }
}

/// Asks for a password, prints `name:hash`, and adds the user to the users file when there is
/// one (a user already there is refused: `passwd` changes a password).
pub fn add(name: &str, file: &UsersFile) -> ExitCode {
    if let Err(code) = check_name("add", name) {
        return code;
    }
    let path = match file.path() {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Some(p) = &path {
        match users_file::list(p) {
            Ok(users) if users.iter().any(|u| u.name.eq_ignore_ascii_case(name)) => {
                eprintln!(
                    "relais user add: {name} is already in {}: use `relais user passwd`",
                    p.display()
                );
                return ExitCode::from(exit::USAGE);
            }
            Ok(_) => {}
            Err(e) => return fail("add", &e.to_string()),
        }
    }
    let hash = match new_hash("add") {
        Ok(h) => h,
        Err(code) => return code,
    };
    if let Some(p) = &path {
        if let Err(e) = users_file::set(p, name, &hash) {
            return fail("add", &e.to_string());
        }
        eprintln!("added {name} to {}", p.display());
    }
    println!("{name}:{hash}");
    ExitCode::from(exit::OK)
}

/// Asks for a new password for a user of the file.
pub fn passwd(name: &str, file: &UsersFile) -> ExitCode {
    let path = match file.required("passwd") {
        Ok(p) => p,
        Err(code) => return code,
    };
    match users_file::list(&path) {
        Ok(users) if !users.iter().any(|u| u.name.eq_ignore_ascii_case(name)) => {
            eprintln!("relais user passwd: no user {name} in {}", path.display());
            return ExitCode::from(exit::USAGE);
        }
        Ok(_) => {}
        Err(e) => return fail("passwd", &e.to_string()),
    }
    let hash = match new_hash("passwd") {
        Ok(h) => h,
        Err(code) => return code,
    };
    match users_file::set(&path, name, &hash) {
        Ok(_) => {
            eprintln!("new password for {name} in {}", path.display());
            ExitCode::from(exit::OK)
        }
        Err(e) => fail("passwd", &e.to_string()),
    }
}

/// Removes a user from the file.
pub fn delete(name: &str, file: &UsersFile) -> ExitCode {
    let path = match file.required("delete") {
        Ok(p) => p,
        Err(code) => return code,
    };
    match users_file::remove(&path, name) {
        Ok(true) => {
            eprintln!("removed {name} from {}", path.display());
            ExitCode::from(exit::OK)
        }
        Ok(false) => {
            eprintln!("relais user delete: no user {name} in {}", path.display());
            ExitCode::from(exit::USAGE)
        }
        Err(e) => fail("delete", &e.to_string()),
    }
}

/// Prints the users of the file, one per line.
pub fn list(file: &UsersFile) -> ExitCode {
    let path = match file.required("list") {
        Ok(p) => p,
        Err(code) => return code,
    };
    match users_file::list(&path) {
        Ok(users) => {
            for u in users {
                println!("{}", u.name);
            }
            ExitCode::from(exit::OK)
        }
        Err(e) => fail("list", &e.to_string()),
    }
}

fn fail(verb: &str, e: &str) -> ExitCode {
    eprintln!("relais user {verb}: {e}");
    ExitCode::from(exit::CONFIG)
}

fn check_name(verb: &str, name: &str) -> Result<(), ExitCode> {
    if name.is_empty() || name.contains([':', '\n', '#']) || name.trim() != name {
        eprintln!("relais user {verb}: a user name may not be empty nor contain ':' or '#'");
        return Err(ExitCode::from(exit::USAGE));
    }
    Ok(())
}

/// A password asked for and hashed.
fn new_hash(verb: &str) -> Result<String, ExitCode> {
    let password = read_password().map_err(|e| {
        eprintln!("relais user {verb}: {e}");
        ExitCode::from(exit::USAGE)
    })?;
    relais_smtpd::hash_password(&password).map_err(|e| {
        eprintln!("relais user {verb}: cannot hash: {e}");
        ExitCode::from(exit::SERVER)
    })
}

/// Twice on a terminal; one line of standard input otherwise.
fn read_password() -> Result<String, String> {
    let missing = "empty password on standard input";
    let password = crate::args::ask("Password: ", true, missing)?;
    if std::io::stdin().is_terminal() && crate::args::ask("Again: ", true, missing)? != password {
        return Err("the passwords differ".into());
    }
    if password.is_empty() {
        return Err("empty password".into());
    }
    Ok(password)
}
