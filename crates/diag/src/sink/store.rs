//! The capture store: every message the sink accepted, in memory (the newest
//! [`Store::capacity`]), as JSON for the API. Nothing is ever delivered.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Value, json};

/// One captured message.
#[derive(Debug, Clone, Serialize)]
pub struct Captured {
    /// Its number, from 1, in the order of arrival.
    pub id: u64,
    /// When it came (RFC 5322 date).
    pub date: String,
    /// The client's address.
    pub client: String,
    /// The EHLO/HELO name.
    pub helo: String,
    /// MAIL FROM (empty for `<>`).
    pub from: String,
    /// MAIL FROM's ESMTP parameters as sent (`SIZE=… SMTPUTF8 RET=…`).
    pub mail_params: String,
    /// The accepted recipients.
    pub to: Vec<String>,
    /// Each recipient's ESMTP parameters as sent (`NOTIFY=… ORCPT=…`).
    pub rcpt_params: Vec<String>,
    /// The `Subject:` header, if any.
    pub subject: Option<String>,
    /// Octets of content.
    pub size: usize,
    /// The content as received (after dot-unstuffing), as text.
    #[serde(skip)]
    pub raw: String,
}

/// The messages, newest last.
#[derive(Debug)]
pub struct Store {
    /// How many are kept; older ones are dropped.
    capacity: usize,
    inner: Mutex<(u64, VecDeque<Captured>)>,
}

impl Store {
    /// A store that keeps the newest `capacity` messages (at least one).
    pub fn new(capacity: usize) -> Store {
        Store {
            capacity: capacity.max(1),
            inner: Mutex::new((0, VecDeque::new())),
        }
    }

    /// Keeps a message; returns its id.
    pub fn add(&self, mut message: Captured) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.0 += 1;
        message.id = inner.0;
        message.subject = subject(&message.raw);
        if inner.1.len() == self.capacity {
            inner.1.pop_front();
        }
        inner.1.push_back(message);
        inner.0
    }

    /// Every message, without its content.
    pub fn list(&self) -> Value {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        json!({ "total": inner.1.len(), "messages": inner.1.iter().collect::<Vec<_>>() })
    }

    /// Every message with its content, oldest first.
    pub fn all(&self) -> Vec<Captured> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.1.iter().cloned().collect()
    }

    /// One message with its content.
    pub fn get(&self, id: u64) -> Option<Captured> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.1.iter().find(|m| m.id == id).cloned()
    }

    /// Forgets every message.
    pub fn clear(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clear();
    }
}

/// The `Subject:` of the header section (unfolded), if any.
fn subject(raw: &str) -> Option<String> {
    let header = raw.split("\r\n\r\n").next().unwrap_or_default();
    let mut found: Option<String> = None;
    for line in header.split("\r\n") {
        if let Some(s) = &mut found {
            if line.starts_with([' ', '\t']) {
                s.push_str(line);
                continue;
            }
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("subject")
        {
            found = Some(value.trim().to_string());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(raw: &str) -> Captured {
        Captured {
            id: 0,
            date: String::new(),
            client: "127.0.0.1".into(),
            helo: "h".into(),
            from: "a@b".into(),
            mail_params: String::new(),
            to: vec!["c@d".into()],
            rcpt_params: vec![String::new()],
            subject: None,
            size: raw.len(),
            raw: raw.into(),
        }
    }

    #[test]
    fn subjects() {
        // (content, subject)
        let table: &[(&str, Option<&str>)] = &[
            ("Subject: hi\r\n\r\nbody", Some("hi")),
            (
                "From: a\r\nsubject:  two\r\n words\r\nX: y\r\n\r\n",
                Some("two words"),
            ),
            ("From: a\r\n\r\nSubject: in the body", None),
        ];
        for (raw, want) in table {
            assert_eq!(subject(raw).as_deref(), *want, "{raw:?}");
        }
    }

    #[test]
    fn the_newest_are_kept() {
        let store = Store::new(2);
        for n in 0..3 {
            store.add(message(&format!("Subject: {n}\r\n\r\n")));
        }
        let list = store.list();
        assert_eq!(list["total"], 2);
        assert_eq!(list["messages"][0]["id"], 2);
        assert_eq!(list["messages"][1]["subject"], "2");
        assert!(list["messages"][0].get("raw").is_none());
        assert!(store.get(1).is_none() && store.get(3).is_some());
        store.clear();
        assert_eq!(store.list()["total"], 0);
    }
}
