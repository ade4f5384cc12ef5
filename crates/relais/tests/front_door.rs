//! The front door (issue 5), end to end against a real `relais serve` on 127.0.0.1 with free
//! ports: STARTTLS and implicit TLS, AUTH, listener roles, relay control, limits.
//!
//! - [`real_clients`]: swaks and Python's smtplib;
//! - [`starttls`]: the STARTTLS injection (CVE-2011-0411), session reset, TLS versions,
//!   certificates;
//! - [`relay`]: 30+ address tricks, refused or accepted depending on who asks;
//! - [`limits`]: every limit reached, with its code, while others are served;
//! - [`disk_pressure`]: a small tmpfs filled until MAIL is refused, then freed: nothing
//!   accepted is lost, nothing refused appears;
//! - [`slow_clients`]: 1,000 slowloris closed by the deadlines, 5,000 connections at once
//!   beyond `max_connections`, with the server's memory measured;
//! - [`logs`]: JSON lines in a log file, reopened on SIGUSR1, a message's story by queue id;
//! - [`metrics`]: the HTTP listener, `/metrics` checked by `promtool` and against what the
//!   test did, health checks, tokens, bad requests;
//! - [`privileges`]: root given up for `user` after binding; root refused on public
//!   listeners;
//! - [`reload`]: SIGHUP and `relais reload` under load, a refused configuration, a renewed
//!   certificate;
//! - [`submission`]: the submission rules, `sender_must_match`, SASL, passwords kept out of
//!   the log;
//! - [`status_page`]: the status page's API (queue, actions, CSRF, events, token cookie, bad
//!   requests) and the page in headless Chromium ([`webdriver`]);
//! - [`wild_addresses`]: envelope addresses with RFC 822 comments and phrases, answered as a
//!   private Postfix answers them, and kept in the form Postfix keeps.
//!
//! External tools: `swaks` (with Net::SSLeay for TLS), `python3`, `chromium` and
//! `chromedriver`; scripts/test.sh installs them.

#[path = "common/mod.rs"]
mod common;

#[path = "front_door/disk_pressure.rs"]
mod disk_pressure;
#[path = "front_door/limits.rs"]
mod limits;
#[path = "front_door/logs.rs"]
mod logs;
#[path = "front_door/metrics.rs"]
mod metrics;
#[path = "front_door/privileges.rs"]
mod privileges;
#[path = "front_door/real_clients.rs"]
mod real_clients;
#[path = "front_door/relay.rs"]
mod relay;
#[path = "front_door/reload.rs"]
mod reload;
#[path = "front_door/slow_clients.rs"]
mod slow_clients;
#[path = "front_door/starttls.rs"]
mod starttls;
#[path = "front_door/status_page.rs"]
mod status_page;
#[path = "front_door/submission.rs"]
mod submission;
#[path = "front_door/support.rs"]
mod support;
#[path = "front_door/webdriver.rs"]
mod webdriver;
#[path = "front_door/wild_addresses.rs"]
mod wild_addresses;
