//! Who relais runs as. Started as root, it binds its listeners first (ports below 1024 need
//! root), then gives its data directory to `user` and becomes that user for good: setgroups
//! (none), setgid, setuid, for every thread of the process. Started as root without `user`, it
//! refuses a listener on anything but loopback unless `allow_root` says otherwise.

use std::io;
use std::path::Path;

use relais_config::Config;
use relais_local::rules::lookup_user;
use tracing::{info, warn};

fn is_root() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Refuses to stay root with a listener on anything but loopback, unless `allow_root` or a
/// `user` to become. Call before binding anything.
pub(crate) fn check(config: &Config) -> Result<(), String> {
    if !is_root() || config.user.is_some() || config.allow_root {
        return Ok(());
    }
    match config
        .listener
        .iter()
        .find(|l| !l.address.ip().is_loopback())
    {
        Some(l) => Err(format!(
            "refusing to run as root with a listener on {}: set user = \"relais\" (an \
             unprivileged account) or allow_root = true",
            l.address
        )),
        None => Ok(()),
    }
}

/// Becomes `config.user` when started as root. Call after binding the listeners and opening
/// the spool, before anything else is written in the data directory.
pub(crate) fn settle(config: &Config) -> Result<(), String> {
    let Some(name) = &config.user else {
        return Ok(());
    };
    if !is_root() {
        warn!("user = {name:?}: not started as root, so running as the user that started relais");
        return Ok(());
    }
    let (uid, gid) = lookup_user(name).map_err(|e| format!("user = {name:?}: {e}"))?;
    if uid == 0 {
        return Err(format!(
            "user = {name:?} is root: name an unprivileged account"
        ));
    }
    give(&config.data_dir, uid, gid)
        .map_err(|e| format!("cannot give {} to {name}: {e}", config.data_dir.display()))?;
    become_user(uid, gid).map_err(|e| format!("cannot become {name}: {e}"))?;
    info!("running as {name} (uid {uid}, gid {gid})");
    Ok(())
}

/// Makes `uid:gid` the owner of `dir` and everything below it (links themselves, not what they
/// point to).
fn give(dir: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    if !std::fs::symlink_metadata(dir)?.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        give(&entry?.path(), uid, gid)?;
    }
    Ok(())
}

/// setgroups(none), setgid, setuid; glibc applies them to every thread. Checked afterwards:
/// going back to root must fail.
fn become_user(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: these calls take plain integers (and a null list of length 0) and write no memory.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(gid) != 0
            || libc::setuid(uid) != 0
        {
            return Err(io::Error::last_os_error());
        }
        if libc::getuid() != uid || libc::geteuid() != uid || libc::setuid(0) == 0 {
            return Err(io::Error::other("the user did not change for good"));
        }
    }
    Ok(())
}
