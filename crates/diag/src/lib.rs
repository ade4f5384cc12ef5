//! relais diagnostics: the pieces behind `relais explain`, `probe`, `send`,
//! `shell` and `dns`, kept free of terminal and argument handling so the CLI
//! only parses arguments and prints.
//!
//! - [`explain`]: plain-words explanations of SMTP reply codes, enhanced
//!   status codes and Outlook error numbers.

pub mod explain;
