//! The sink's fault rules: `STAGE[:PATTERN]=ACTION`, from the command line (`--fault`) or a
//! TOML file (`[[fault]]` tables with `stage`, `match` and `action`), and the pure decision of
//! which rule applies at a stage. The first rule whose stage and pattern match wins.

use std::time::Duration;

use relais_proto::{EnhancedStatus, Reply};
use relais_queue::select::glob;
use serde::Deserialize;

/// Where in the session a rule applies, and what its pattern is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The connection and the greeting (the client's address).
    Connect,
    /// EHLO or HELO (the name given).
    Helo,
    /// STARTTLS (the HELO name).
    StartTls,
    /// AUTH (the user name).
    Auth,
    /// MAIL FROM (the sender).
    Mail,
    /// RCPT TO (the recipient).
    Rcpt,
    /// The DATA command (the sender and each recipient).
    Data,
    /// While the content comes (the sender and each recipient).
    Content,
    /// The end of the content, the final dot (the sender and each recipient).
    Dot,
}

impl Stage {
    fn parse(word: &str) -> Option<Stage> {
        Some(match word.to_ascii_lowercase().as_str() {
            "connect" | "banner" => Stage::Connect,
            "helo" | "ehlo" => Stage::Helo,
            "starttls" | "tls" => Stage::StartTls,
            "auth" => Stage::Auth,
            "mail" => Stage::Mail,
            "rcpt" => Stage::Rcpt,
            "data" => Stage::Data,
            "content" => Stage::Content,
            "dot" | "eod" => Stage::Dot,
            _ => return None,
        })
    }
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Answer with this reply instead (`421` also closes the connection).
    Reply(Reply),
    /// Close the connection without a word.
    Close,
    /// Wait this long, then answer as usual (a slow banner, a slow reply).
    Delay(Duration),
    /// Never answer: the connection stays open until the client gives up.
    Silent,
    /// `rcpt` only: `450 4.2.0` for a new (client, sender, recipient) until this long has
    /// passed since its first try (zero: the second try passes).
    Greylist(Duration),
    /// `starttls` only: `220`, then bytes that are no TLS, and the connection closed.
    TlsFail,
    /// `content` only: close the connection after this many octets of content.
    Disconnect(u64),
    /// `connect` only: more than `count` connections from one address within `per` get
    /// `421 4.7.0 Error: too many connections`.
    Rate {
        /// Connections allowed in the window.
        count: u32,
        /// The window.
        per: Duration,
    },
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The stage it applies at.
    pub stage: Stage,
    /// A `*`/`?` pattern (ASCII case ignored); `*` when none was given.
    pub pattern: String,
    /// What it does.
    pub action: Action,
}

/// `[[fault]]` in a rules file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    stage: String,
    #[serde(rename = "match", default)]
    pattern: Option<String>,
    action: String,
}

/// A rules file: `[[fault]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    fault: Vec<FileRule>,
}

/// Parses the `[[fault]]` tables of a TOML rules file.
pub fn parse_file(text: &str) -> Result<Vec<Rule>, String> {
    let file: RulesFile = toml::from_str(text).map_err(|e| e.to_string())?;
    file.fault
        .into_iter()
        .map(|r| {
            let stage = Stage::parse(&r.stage).ok_or_else(|| format!("stage {:?}", r.stage))?;
            let pattern = r.pattern.unwrap_or_else(|| "*".into());
            rule(stage, pattern, &r.action)
        })
        .collect()
}

impl std::str::FromStr for Rule {
    type Err = String;

    /// `STAGE[:PATTERN]=ACTION`, e.g. `rcpt:*@full.test=452 4.2.2 Mailbox full`.
    fn from_str(text: &str) -> Result<Rule, String> {
        let (head, action) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?}: STAGE[:PATTERN]=ACTION"))?;
        let (stage, pattern) = match head.split_once(':') {
            Some((s, p)) => (s, p.trim().to_string()),
            None => (head, "*".to_string()),
        };
        let stage = Stage::parse(stage.trim()).ok_or_else(|| {
            format!(
                "{text:?}: the stage is one of connect, helo, starttls, auth, mail, rcpt, data, content, dot"
            )
        })?;
        rule(stage, pattern, action).map_err(|e| format!("{text:?}: {e}"))
    }
}

fn rule(stage: Stage, pattern: String, action: &str) -> Result<Rule, String> {
    let action = parse_action(action.trim())?;
    let fits = match &action {
        Action::Greylist(_) => stage == Stage::Rcpt,
        Action::TlsFail => stage == Stage::StartTls,
        Action::Disconnect(_) => stage == Stage::Content,
        Action::Rate { .. } => stage == Stage::Connect,
        Action::Reply(_) | Action::Delay(_) => stage != Stage::Content,
        Action::Close | Action::Silent => true,
    };
    if !fits {
        return Err(format!("{action:?} does not apply at {stage:?}"));
    }
    let pattern = if pattern.is_empty() {
        "*".into()
    } else {
        pattern
    };
    Ok(Rule {
        stage,
        pattern,
        action,
    })
}

/// `close`, `silent`, `tls-fail`, `delay SECS`, `greylist [SECS]`, `disconnect [OCTETS]`,
/// `rate N/SECS`, or a reply: `CODE [X.Y.Z] text`.
fn parse_action(text: &str) -> Result<Action, String> {
    let (word, arg) = match text.split_once(char::is_whitespace) {
        Some((w, a)) => (w, a.trim()),
        None => (text, ""),
    };
    let seconds = |a: &str| {
        a.trim_end_matches('s')
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("{a:?}: a number of seconds"))
    };
    Ok(match word.to_ascii_lowercase().as_str() {
        "close" | "drop" | "refuse" => Action::Close,
        "silent" => Action::Silent,
        "tls-fail" => Action::TlsFail,
        "delay" => Action::Delay(seconds(arg)?),
        "greylist" if arg.is_empty() => Action::Greylist(Duration::ZERO),
        "greylist" => Action::Greylist(seconds(arg)?),
        "disconnect" if arg.is_empty() => Action::Disconnect(0),
        "disconnect" => Action::Disconnect(
            arg.parse()
                .map_err(|_| format!("{arg:?}: a number of octets"))?,
        ),
        "rate" => {
            let (count, per) = arg
                .split_once('/')
                .ok_or_else(|| format!("{arg:?}: COUNT/SECONDS"))?;
            Action::Rate {
                count: count
                    .trim()
                    .parse()
                    .map_err(|_| format!("{count:?}: a count"))?,
                per: seconds(per.trim())?,
            }
        }
        code if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) => {
            let code: u16 = code.parse().unwrap_or(0);
            if !(400..600).contains(&code) {
                return Err(format!("{code}: a reply is 4xx or 5xx"));
            }
            let (status, rest) = match arg.split_once(char::is_whitespace) {
                Some((s, rest)) if EnhancedStatus::parse(s).is_some() => {
                    (EnhancedStatus::parse(s), rest.trim())
                }
                _ => match EnhancedStatus::parse(arg) {
                    Some(s) => (Some(s), ""),
                    None => (None, arg),
                },
            };
            let rest = if rest.is_empty() { "Error" } else { rest };
            Action::Reply(Reply::new(code, status, rest))
        }
        _ => return Err(format!("{text:?}: not an action")),
    })
}

/// The first rule for `stage` whose pattern matches one of `subjects`.
pub fn find<'a>(rules: &'a [Rule], stage: Stage, subjects: &[&str]) -> Option<&'a Action> {
    rules
        .iter()
        .find(|r| r.stage == stage && subjects.iter().any(|s| glob(&r.pattern, s)))
        .map(|r| &r.action)
}

/// Greylisting: may a try first seen at `first` (None: now is the first) pass at `now`
/// after `delay`? The first try never does.
pub fn greylist_passes(first: Option<Duration>, now: Duration, delay: Duration) -> bool {
    first.is_some_and(|first| now.saturating_sub(first) >= delay)
}

/// The rate limit: with `recent` earlier connections from the address inside the window,
/// may one more come in?
pub fn rate_allows(recent: usize, count: u32) -> bool {
    recent < count as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, status: Option<(u8, u16, u16)>, text: &str) -> Action {
        Action::Reply(Reply::new(
            code,
            status.map(|(a, b, c)| EnhancedStatus::new(a, b, c)),
            text,
        ))
    }

    #[test]
    fn rules_from_the_command_line() {
        let s = Duration::from_secs;
        // (text, stage, pattern, action)
        let table: Vec<(&str, Stage, &str, Action)> = vec![
            (
                "rcpt:*@full.test=452 4.2.2 Mailbox full",
                Stage::Rcpt,
                "*@full.test",
                reply(452, Some((4, 2, 2)), "Mailbox full"),
            ),
            (
                "connect=421 4.3.2 Service shutting down",
                Stage::Connect,
                "*",
                reply(421, Some((4, 3, 2)), "Service shutting down"),
            ),
            ("banner=delay 12", Stage::Connect, "*", Action::Delay(s(12))),
            ("connect=silent", Stage::Connect, "*", Action::Silent),
            ("connect=close", Stage::Connect, "*", Action::Close),
            (
                "mail:spam@*=554 5.7.1 Go away",
                Stage::Mail,
                "spam@*",
                reply(554, Some((5, 7, 1)), "Go away"),
            ),
            ("rcpt=greylist", Stage::Rcpt, "*", Action::Greylist(s(0))),
            (
                "rcpt=greylist 60",
                Stage::Rcpt,
                "*",
                Action::Greylist(s(60)),
            ),
            ("starttls=tls-fail", Stage::StartTls, "*", Action::TlsFail),
            (
                "content=disconnect 100",
                Stage::Content,
                "*",
                Action::Disconnect(100),
            ),
            (
                "connect=rate 2/60",
                Stage::Connect,
                "*",
                Action::Rate {
                    count: 2,
                    per: s(60),
                },
            ),
            ("dot=550", Stage::Dot, "*", reply(550, None, "Error")),
            (
                "helo:bad.*=550 no",
                Stage::Helo,
                "bad.*",
                reply(550, None, "no"),
            ),
        ];
        for (text, stage, pattern, action) in table {
            let rule: Rule = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                rule,
                Rule {
                    stage,
                    pattern: pattern.into(),
                    action
                },
                "{text}"
            );
        }
        for bad in [
            "rcpt",
            "nowhere=550 x",
            "rcpt=250 fine",
            "rcpt=tls-fail",
            "mail=greylist",
            "content=550 x",
            "connect=rate 2",
            "rcpt=delay soon",
            "rcpt=frobnicate",
        ] {
            assert!(bad.parse::<Rule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rules_from_a_file() {
        let rules = parse_file(
            r#"
[[fault]]
stage = "rcpt"
match = "*@full.test"
action = "452 4.2.2 Mailbox full"

[[fault]]
stage = "connect"
action = "delay 2"
"#,
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].pattern, "*");
        assert!(parse_file("[[fault]]\nstage = \"x\"\naction = \"close\"\n").is_err());
        assert!(parse_file("[[fault]]\nstage = \"rcpt\"\n").is_err());
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let rules: Vec<Rule> = [
            "rcpt:*@full.test=452 4.2.2 Mailbox full",
            "rcpt:*@*.test=550 5.1.1 No such user",
            "mail=close",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        // (stage, subjects, code of the reply or 0 for close, None: no rule)
        let table: &[(Stage, &[&str], Option<u16>)] = &[
            (Stage::Rcpt, &["a@FULL.test"], Some(452)),
            (Stage::Rcpt, &["a@other.test"], Some(550)),
            (Stage::Rcpt, &["a@example.org"], None),
            (Stage::Data, &["a@full.test"], None),
            (Stage::Mail, &[""], Some(0)),
        ];
        for (stage, subjects, want) in table {
            let got = find(&rules, *stage, subjects).map(|a| match a {
                Action::Reply(r) => r.code,
                _ => 0,
            });
            assert_eq!(got, *want, "{stage:?} {subjects:?}");
        }
    }

    #[test]
    fn greylisting_and_rates() {
        let s = Duration::from_secs;
        // (first seen, now, delay, passes)
        let table = [
            (None, s(0), s(0), false),
            (Some(s(0)), s(0), s(0), true),
            (Some(s(10)), s(40), s(60), false),
            (Some(s(10)), s(70), s(60), true),
        ];
        for (first, now, delay, want) in table {
            assert_eq!(
                greylist_passes(first, now, delay),
                want,
                "{first:?} {now:?}"
            );
        }
        assert!(rate_allows(1, 2));
        assert!(!rate_allows(2, 2));
    }
}
