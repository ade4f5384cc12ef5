//! Helpers: temporary directories, a private Dovecot, an mbox reader (all in
//! [`crate::common::dovecot`], shared with the alias tests).

pub use crate::common::dovecot::{Dovecot, read_mbox, script, tempdir};
