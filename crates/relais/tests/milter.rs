//! Content filters through the milter protocol (issue 12), end to end against a real `relais
//! serve` on 127.0.0.1:
//!
//! - [`filters`]: a filter built on Sendmail's own libmilter (Debian's `python3-milter`,
//!   `milter/py/test_filter.py`): refusals at MAIL, RCPT and the end of the message with the
//!   filter's own text, tempfail, discard, quarantine (held in the queue), header changes,
//!   body replacement, what the filter was told; a filter that is down or too slow gets the
//!   default action;
//! - [`rspamd`]: Debian's rspamd in milter mode (its proxy worker, self-scanning, DNS pointed
//!   at a dead loopback port so that it asks nothing of the internet): the GTUBE test string
//!   is refused, a clean message gets rspamd's headers;
//! - [`clamav`]: Debian's clamd and clamav-milter, with a one-signature database of the test's
//!   own: the EICAR test string is refused, a clean message is marked scanned.

#[path = "common/mod.rs"]
mod common;

#[path = "milter/clamav.rs"]
mod clamav;
#[path = "milter/filters.rs"]
mod filters;
#[path = "milter/support.rs"]
mod milter_support;
#[path = "milter/rspamd.rs"]
mod rspamd;
// The front door's server and client, of which these tests use a part.
#[allow(dead_code)]
#[path = "front_door/support.rs"]
mod support;
