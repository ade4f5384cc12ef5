//! Reading the configuration again while the server runs: on SIGHUP, on `relais reload`
//! (the control socket's `RELOAD`), and when the TLS certificate or key files or the users
//! file change.
//!
//! A configuration that does not load is refused with the error (naming key and line) and
//! the one in force stays. One that loads goes to the queue manager and to the SMTP door,
//! which applies it to the sessions that start after it.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use relais_config::Config;

/// Where the configuration comes from, and what the certificate files looked like when it
/// was last read.
pub(crate) struct Source {
    /// The file given to `relais serve --config`; `None` for the embedded default.
    pub path: Option<PathBuf>,
    /// Modification times of the certificate and key files at the last (re)load.
    tls_stamp: Option<Vec<SystemTime>>,
    /// Modification time of the users file at the last (re)load.
    users_stamp: Option<SystemTime>,
}

impl Source {
    /// The source of `config`, read from `path`.
    pub fn new(path: Option<PathBuf>, config: &Config) -> Source {
        Source {
            path,
            tls_stamp: tls_stamp(config),
            users_stamp: users_stamp(config),
        }
    }

    /// Reads the configuration again.
    pub fn load(&self) -> Result<Config, String> {
        match &self.path {
            Some(p) => Config::load(p).map_err(|e| e.to_string()),
            None => Ok(Config::embedded()),
        }
    }

    /// Notes the certificate files of the configuration now in force.
    pub fn loaded(&mut self, config: &Config) {
        self.tls_stamp = tls_stamp(config);
        self.users_stamp = users_stamp(config);
    }

    /// What changed since the last (re)load among the files the configuration names: the
    /// certificate or key, the users file. A change is reported once.
    pub fn files_changed(&mut self, config: &Config) -> Option<&'static str> {
        let tls = tls_stamp(config);
        if tls.is_some() && tls != self.tls_stamp {
            self.tls_stamp = tls;
            return Some("a new TLS certificate");
        }
        let users = users_stamp(config);
        if users.is_some() && users != self.users_stamp {
            self.users_stamp = users;
            return Some("the users file changed");
        }
        None
    }

    /// The file, as logged.
    pub fn name(&self) -> String {
        self.path.as_deref().map_or_else(
            || "the embedded default".into(),
            |p| p.display().to_string(),
        )
    }
}

/// The certificate and key files a configuration serves (configured, or the self-signed pair
/// made at first start; then those chosen by SNI).
fn tls_files(config: &Config) -> Vec<PathBuf> {
    if !config.tls.enabled {
        return Vec::new();
    }
    let mut files = match (&config.tls.cert, &config.tls.key) {
        (Some(c), Some(k)) => vec![c.clone(), k.clone()],
        _ => {
            let dir = config.data_dir.join("tls");
            vec![dir.join("cert.pem"), dir.join("key.pem")]
        }
    };
    for pair in &config.tls.sni {
        files.push(pair.cert.clone());
        files.push(pair.key.clone());
    }
    files
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn tls_stamp(config: &Config) -> Option<Vec<SystemTime>> {
    let files = tls_files(config);
    if files.is_empty() {
        return None;
    }
    files.iter().map(|f| modified(f)).collect()
}

fn users_stamp(config: &Config) -> Option<SystemTime> {
    modified(config.auth.users_file.as_deref()?)
}
