//! The test message (mail-builder): From, To, Subject, Date, Message-ID, MIME-Version,
//! X-Mailer, the extra headers, a text body and attachments.

use std::path::Path;

use mail_builder::MessageBuilder;
use mail_builder::headers::HeaderType;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use relais_proto::Mailbox;

use super::MessageSpec;
use super::plan::read_source;

/// Header names whose generated value a `--header` replaces, in their canonical spelling.
const GENERATED: &[&str] = &[
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
];

/// Builds the message from `spec`, for the sender as given (`<>` or "": MAILER-DAEMON) and the
/// recipients.
pub(super) fn build(spec: &MessageSpec, from: &str, to: &[Mailbox]) -> Result<Vec<u8>, String> {
    let extra = extra_headers(&spec.headers)?;
    let overridden = |name: &str| extra.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));

    let mut b = MessageBuilder::new();
    if !overridden("From") {
        let from = from.trim();
        let shown = if matches!(from, "" | "<>") {
            "MAILER-DAEMON".to_string()
        } else {
            from.trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        };
        b = b.from(Address::from(shown));
    }
    if !overridden("To") {
        let list: Vec<Address> = to.iter().map(|m| Address::from(m.to_string())).collect();
        b = b.to(list);
    }
    if !overridden("Subject") {
        let subject = match &spec.subject {
            Some(s) => s.clone(),
            None => format!(
                "test {}",
                mail_builder::headers::date::Date::now().to_rfc822()
            ),
        };
        b = b.subject(subject);
    }
    b = b.header("X-Mailer", Raw::new("relais send"));
    for (name, value) in extra {
        let value: HeaderType = if value.is_ascii() {
            Raw::new(value).into()
        } else {
            Text::new(value).into()
        };
        b = b.header(name, value);
    }
    let body = match &spec.body {
        Some(v) => String::from_utf8_lossy(&read_source("--body", v)?).into_owned(),
        None => "This is a test message sent by relais send.\n".to_string(),
    };
    b = b.text_body(body);
    for path in &spec.attach {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("--attach {}: cannot read: {e}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "attachment".to_string());
        b = b.attachment(content_type(path), name, bytes);
    }
    b.write_to_vec()
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// `Name: value` pairs, a generated header's name in its canonical spelling.
fn extra_headers(headers: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut extra = Vec::new();
    for h in headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("--header {h:?}: expected \"Name: value\""))?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(format!("--header {h:?}: bad header name"));
        }
        let canonical = GENERATED
            .iter()
            .find(|g| g.eq_ignore_ascii_case(name))
            .map_or(name, |g| *g);
        extra.push((canonical.to_string(), value.trim().to_string()));
    }
    Ok(extra)
}

/// A MIME type from the file name's extension.
fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" | "conf" => "text/plain",
        "csv" => "text/csv",
        "htm" | "html" => "text/html",
        "eml" => "message/rfc822",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_given() {
        let given =
            |list: &[&str]| extra_headers(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            given(&["subject: Hi ", "X-Test:1"]).unwrap(),
            vec![
                ("Subject".to_string(), "Hi".to_string()),
                ("X-Test".to_string(), "1".to_string())
            ]
        );
        for bad in ["no colon", ": empty name", "bad name: x"] {
            assert!(given(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn built_message() {
        let spec = MessageSpec {
            headers: vec!["Subject: chosen".into(), "X-Note: é".into()],
            body: Some("hello".into()),
            ..MessageSpec::default()
        };
        let to = [Mailbox::parse("bob@example.test").unwrap()];
        let text = String::from_utf8(build(&spec, "<>", &to).unwrap()).unwrap();
        for want in [
            "From: <MAILER-DAEMON>",
            "To: <bob@example.test>",
            "Subject: chosen",
            "X-Mailer: relais send",
            "X-Note: =?utf-8?",
            "hello",
        ] {
            assert!(text.contains(want), "{want} in:\n{text}");
        }
        assert_eq!(text.matches("Subject:").count(), 1, "{text}");
    }

    #[test]
    fn content_types() {
        let table = [
            ("a.TXT", "text/plain"),
            ("a.pdf", "application/pdf"),
            ("a.jpeg", "image/jpeg"),
            ("noext", "application/octet-stream"),
        ];
        for (name, want) in table {
            assert_eq!(content_type(Path::new(name)), want, "{name}");
        }
    }
}
