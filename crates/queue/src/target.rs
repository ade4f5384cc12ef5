//! Where a message for an alias goes, once the alias is fully expanded: recorded in the queued
//! message's progress so that a retry goes to the same targets.

use std::path::PathBuf;

/// One final target of an alias.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A local mailbox: the local part in lower case.
    Mailbox(String),
    /// Another address, local or remote, to be routed again (the domain in lower case).
    Forward(String),
    /// `|command`: the command line, given to `/bin/sh -c` (relais-local's pipe agent).
    Pipe(String),
    /// `/path/file`: appended to in mbox format (relais-local's mbox agent).
    File(PathBuf),
    /// `:fail: text`: refuse the recipient with this text.
    Fail(String),
    /// `|command` of a user's `~/.forward`: run as that user (user name, command line).
    UserPipe(String, String),
    /// `/path/file` of a user's `~/.forward`: appended to as that user (user name, file).
    UserFile(String, PathBuf),
}
