//! Delivery status notifications as the tests read them: parsed with mail-parser ([`Dsn`]).

/// A delivery status notification, parsed with mail-parser.
#[derive(Debug)]
pub struct Dsn {
    /// `Subject`.
    pub subject: String,
    /// The root content type, `type/subtype`.
    pub content_type: String,
    /// Its `report-type` parameter.
    pub report_type: String,
    /// The per-message fields of `message/delivery-status`.
    pub message_fields: Vec<(String, String)>,
    /// The per-recipient field groups.
    pub recipients: Vec<Vec<(String, String)>>,
    /// The content type of the third part.
    pub returned_type: String,
    /// The third part's content (for `message/rfc822`, the whole returned message).
    pub returned: String,
    /// The human-readable first part.
    pub notification: String,
}

/// The value of `name` among `fields` (case-insensitive name).
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn content_type_of(part: &mail_parser::MessagePart<'_>) -> (String, Option<String>) {
    use mail_parser::MimeHeaders;
    match part.content_type() {
        Some(ct) => (
            format!(
                "{}/{}",
                ct.ctype().to_ascii_lowercase(),
                ct.subtype().unwrap_or("").to_ascii_lowercase()
            ),
            ct.attribute("report-type").map(str::to_string),
        ),
        None => ("text/plain".into(), None),
    }
}

impl Dsn {
    /// Parses a report as delivered to a Maildir (trace headers first); panics with the text
    /// when it is not a `multipart/report` of three parts.
    #[track_caller]
    pub fn parse(raw: &[u8]) -> Dsn {
        let text = String::from_utf8_lossy(raw).into_owned();
        let msg = mail_parser::MessageParser::default()
            .parse(raw)
            .unwrap_or_else(|| panic!("mail-parser cannot read the report:\n{text}"));
        let root = msg.root_part();
        let (content_type, report_type) = content_type_of(root);
        let ids = root
            .sub_parts()
            .unwrap_or_else(|| panic!("the report is not multipart:\n{text}"))
            .to_vec();
        assert_eq!(ids.len(), 3, "a report has three parts:\n{text}");
        let parts: Vec<&mail_parser::MessagePart<'_>> =
            ids.iter().map(|&i| &msg.parts[i as usize]).collect();
        let (status_type, _) = content_type_of(parts[1]);
        assert_eq!(status_type, "message/delivery-status", "{text}");
        let status = String::from_utf8_lossy(parts[1].contents()).into_owned();
        let mut groups = relais_diag::explain::bounce::field_groups(&status);
        assert!(groups.len() >= 2, "no per-recipient fields:\n{status}");
        let message_fields = groups.remove(0);
        let (returned_type, _) = content_type_of(parts[2]);
        let returned = match parts[2].message() {
            Some(m) => String::from_utf8_lossy(m.raw_message()).into_owned(),
            None => String::from_utf8_lossy(parts[2].contents()).into_owned(),
        };
        Dsn {
            subject: msg.subject().unwrap_or_default().to_string(),
            content_type,
            report_type: report_type.unwrap_or_default(),
            message_fields,
            recipients: groups,
            returned_type,
            returned,
            notification: parts[0].text_contents().unwrap_or_default().to_string(),
        }
    }

    /// The original message's queue id (`X-Relais-Queue-ID`).
    pub fn queue_id(&self) -> &str {
        field(&self.message_fields, "X-Relais-Queue-ID").unwrap_or("")
    }

    /// The per-recipient fields of `rcpt` (by `Final-Recipient`).
    #[track_caller]
    pub fn recipient(&self, rcpt: &str) -> &[(String, String)] {
        self.recipients
            .iter()
            .find(|g| {
                field(g, "Final-Recipient")
                    .is_some_and(|v| v.eq_ignore_ascii_case(&format!("rfc822; {rcpt}")))
            })
            .unwrap_or_else(|| panic!("no Final-Recipient {rcpt} in {:?}", self.recipients))
    }
}
