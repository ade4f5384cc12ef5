//! Which queued messages an administrator means: `relais queue list|delete|hold|release|requeue
//! --from PAT --to PAT --older-than 2d --state deferred` picks from a listing with
//! [`Selection::matches`]. Pure: the time comes in as an argument.
//!
//! A pattern is matched against the whole address without case; `*` stands for any run of
//! characters and `?` for one (`*@spam.example`, `*viagra*`). The empty pattern is the null
//! sender `<>`. `--to` picks a message when one of its recipients still waiting (not sent nor
//! bounced) matches.

use std::time::Duration;

use crate::admin::QueueEntry;

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Held by the administrator.
    Held,
    /// Not held, tried at least once, a recipient deferred.
    Deferred,
    /// Not held, not tried yet.
    New,
}

impl std::str::FromStr for MessageState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "held" | "hold" => Ok(MessageState::Held),
            "deferred" => Ok(MessageState::Deferred),
            "new" | "incoming" => Ok(MessageState::New),
            _ => Err(format!("{s:?}: the states are held, deferred and new")),
        }
    }
}

/// What to pick; every criterion given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// A pattern for the sender.
    pub from: Option<String>,
    /// A pattern for a waiting recipient.
    pub to: Option<String>,
    /// Arrived at least this long ago.
    pub older_than: Option<Duration>,
    /// In this state.
    pub state: Option<MessageState>,
}

impl Selection {
    /// True when no criterion is given (everything matches).
    pub fn is_empty(&self) -> bool {
        *self == Selection::default()
    }

    /// True if `e` is picked, `now` in Unix seconds.
    pub fn matches(&self, e: &QueueEntry, now: u64) -> bool {
        if let Some(p) = &self.from
            && !glob(p, &e.sender)
        {
            return false;
        }
        if let Some(p) = &self.to
            && !e
                .recipients
                .iter()
                .any(|r| r.status != "sent" && r.status != "bounced" && glob(p, &r.address))
        {
            return false;
        }
        if let Some(age) = self.older_than
            && now.saturating_sub(e.arrival) < age.as_secs()
        {
            return false;
        }
        match self.state {
            None => true,
            Some(s) => state_of(e) == s,
        }
    }
}

/// The state of a listed message.
pub fn state_of(e: &QueueEntry) -> MessageState {
    if e.held {
        MessageState::Held
    } else if e.attempts == 0 {
        MessageState::New
    } else {
        MessageState::Deferred
    }
}

/// `*` and `?` wildcards over the whole text, ASCII case ignored (also `relais sink`'s
/// fault rules).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = text.to_ascii_lowercase().chars().collect();
    // The classic two-pointer match with one backtrack point: linear in practice.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::RecipientStatus;

    #[test]
    fn globs() {
        let table = [
            ("*@spam.example", "x@spam.example", true),
            ("*@spam.example", "x@SPAM.example", true),
            ("*@spam.example", "x@spam.example.org", false),
            ("*viagra*", "buy-viagra-now@x.test", true),
            ("a?c@d", "abc@d", true),
            ("a?c@d", "ac@d", false),
            ("alice@a.example", "alice@a.example", true),
            ("alice", "alice@a.example", false),
            ("", "", true),
            ("", "a@b", false),
            ("*", "", true),
            ("**a*", "bab", true),
        ];
        for (p, t, want) in table {
            assert_eq!(glob(p, t), want, "{p:?} {t:?}");
        }
    }

    fn entry(
        sender: &str,
        rcpts: &[(&str, &str)],
        arrival: u64,
        held: bool,
        tries: u32,
    ) -> QueueEntry {
        QueueEntry {
            id: "X".into(),
            size: 1,
            arrival,
            sender: sender.into(),
            held,
            attempts: tries,
            next_attempt: 0,
            recipients: rcpts
                .iter()
                .map(|(a, s)| RecipientStatus {
                    address: a.to_string(),
                    status: s.to_string(),
                    reason: None,
                })
                .collect(),
        }
    }

    #[test]
    fn selections() {
        let now = 1_000_000;
        let day = 86_400;
        let spam = entry(
            "x@spam.example",
            &[("a@b.test", "deferred")],
            now - 3 * day,
            false,
            4,
        );
        let fresh = entry(
            "me@here.test",
            &[("a@b.test", "pending")],
            now - 60,
            false,
            0,
        );
        let held = entry(
            "",
            &[("c@d.test", "sent"), ("e@f.test", "deferred")],
            now - day,
            true,
            1,
        );
        let sel = |f: Option<&str>, t: Option<&str>, old: Option<u64>, s: Option<&str>| Selection {
            from: f.map(String::from),
            to: t.map(String::from),
            older_than: old.map(Duration::from_secs),
            state: s.map(|s| s.parse().unwrap()),
        };
        // (selection, picks spam, fresh, held)
        let table = [
            (sel(None, None, None, None), [true, true, true]),
            (
                sel(Some("*@spam.example"), None, None, None),
                [true, false, false],
            ),
            (sel(Some(""), None, None, None), [false, false, true]),
            (sel(None, Some("a@b.test"), None, None), [true, true, false]),
            // A recipient already sent is not waiting.
            (sel(None, Some("c@*"), None, None), [false, false, false]),
            (sel(None, Some("e@*"), None, None), [false, false, true]),
            (sel(None, None, Some(2 * day), None), [true, false, false]),
            (sel(None, None, Some(day), None), [true, false, true]),
            (
                sel(None, None, None, Some("deferred")),
                [true, false, false],
            ),
            (sel(None, None, None, Some("new")), [false, true, false]),
            (sel(None, None, None, Some("held")), [false, false, true]),
            (
                sel(None, Some("a@b.test"), Some(day), Some("deferred")),
                [true, false, false],
            ),
        ];
        for (s, want) in table {
            let got = [&spam, &fresh, &held].map(|e| s.matches(e, now));
            assert_eq!(got, want, "{s:?}");
        }
        assert!(sel(None, None, None, None).is_empty());
        assert!("sideways".parse::<MessageState>().is_err());
    }
}
