//! The sink's pages for a browser: the captured messages as a table (`GET /`), and one
//! message with its envelope and content (`GET /messages/ID`). Self-contained (styles inline,
//! no script); everything a client sent is escaped.

use std::fmt::Write as _;

use super::store::Captured;
use crate::html::esc;

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}pre{background:#f6f6f6;\
padding:1em;white-space:pre-wrap}";

fn page(title: &str, body: &str) -> Vec<u8> {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{STYLE}</style></head><body>\n{body}</body></html>\n",
        esc(title)
    )
    .into_bytes()
}

/// The list of captured messages, newest first.
pub(super) fn list(messages: &[Captured]) -> Vec<u8> {
    let mut body = format!(
        "<h1>relais sink: {} captured message{}</h1>\n",
        messages.len(),
        if messages.len() == 1 { "" } else { "s" }
    );
    if messages.is_empty() {
        body.push_str("<p>Nothing captured yet.</p>\n");
        return page("relais sink", &body);
    }
    body.push_str(
        "<table><tr><th>#</th><th>date</th><th>client</th><th>from</th><th>to</th>\
         <th>subject</th><th>size</th></tr>\n",
    );
    for m in messages.iter().rev() {
        let _ = writeln!(
            body,
            "<tr><td><a href=\"/messages/{id}\">{id}</a></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&m.date),
            esc(&m.client),
            esc(&m.from),
            esc(&m.to.join(", ")),
            esc(m.subject.as_deref().unwrap_or("")),
            m.size,
            id = m.id,
        );
    }
    body.push_str("</table>\n");
    page("relais sink", &body)
}

/// One message: its envelope, then its content as received.
pub(super) fn one(m: &Captured) -> Vec<u8> {
    let mut body = format!(
        "<p><a href=\"/\">all messages</a></p>\n<h1>message {}</h1>\n<table>\n",
        m.id
    );
    let rows = [
        ("date", m.date.clone()),
        ("client", m.client.clone()),
        ("HELO", m.helo.clone()),
        ("MAIL FROM", format!("<{}> {}", m.from, m.mail_params)),
        ("RCPT TO", m.to.join(", ")),
        ("size", m.size.to_string()),
    ];
    for (name, value) in rows {
        let _ = writeln!(body, "<tr><th>{name}</th><td>{}</td></tr>", esc(&value));
    }
    let _ = write!(
        body,
        "</table>\n<p><a href=\"/api/messages/{}/raw\">raw</a></p>\n<pre>{}</pre>\n",
        m.id,
        esc(&m.raw)
    );
    page(&format!("relais sink: message {}", m.id), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_client_sent_is_escaped() {
        let m = Captured {
            id: 7,
            date: "Sat, 5 Dec 2026 10:00:00 +0000".into(),
            client: "127.0.0.1".into(),
            helo: "<b>helo</b>".into(),
            from: "a&b@x.test".into(),
            mail_params: String::new(),
            to: vec!["\"q\"@y.test".into()],
            rcpt_params: vec![String::new()],
            subject: Some("<script>alert(1)</script>".into()),
            size: 3,
            raw: "Subject: <script>alert(1)</script>\r\n\r\n</pre>".into(),
        };
        let table = String::from_utf8(list(std::slice::from_ref(&m))).unwrap();
        assert!(!table.contains("<script>"), "{table}");
        assert!(
            table.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{table}"
        );
        assert!(table.contains("a&amp;b@x.test"), "{table}");
        assert!(table.contains("&quot;q&quot;@y.test"), "{table}");
        let single = String::from_utf8(one(&m)).unwrap();
        assert!(
            !single.contains("<script>") && !single.contains("<b>"),
            "{single}"
        );
        assert_eq!(single.matches("</pre>").count(), 1, "{single}");
        let empty = String::from_utf8(list(&[])).unwrap();
        assert!(empty.contains("Nothing captured yet"), "{empty}");
    }
}
