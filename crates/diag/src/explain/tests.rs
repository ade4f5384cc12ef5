use super::*;

fn enhanced(class: u8, subject: u16, detail: u16) -> Query {
    Query::Enhanced {
        class,
        subject,
        detail,
    }
}

fn reply(basic: u16, enhanced: Option<(u8, u16, u16)>, text: &str) -> Query {
    Query::Reply {
        basic,
        enhanced,
        text: text.to_owned(),
    }
}

fn all_text(e: &Explanation) -> String {
    let mut s = format!("{} {} {}", e.code, e.title, e.meaning);
    for line in e.likely_causes.iter().chain(&e.what_to_check) {
        s.push(' ');
        s.push_str(line);
    }
    s
}

#[test]
fn parses_every_accepted_form() {
    let cases: &[(&str, Query)] = &[
        ("550", Query::Basic(550)),
        ("  421 \n", Query::Basic(421)),
        ("550-", Query::Basic(550)),
        ("5.1.1", enhanced(5, 1, 1)),
        ("4.7.1 Greylisted", enhanced(4, 7, 1)),
        ("5.7.30", enhanced(5, 7, 30)),
        ("2.0.0", enhanced(2, 0, 0)),
        (
            "550 5.1.1 User unknown",
            reply(550, Some((5, 1, 1)), "User unknown"),
        ),
        (
            "550-5.1.1 The email account that you tried to reach does not exist",
            reply(
                550,
                Some((5, 1, 1)),
                "The email account that you tried to reach does not exist",
            ),
        ),
        (
            "554 5.7.1 <x@example.org>: Relay access denied",
            reply(554, Some((5, 7, 1)), "<x@example.org>: Relay access denied"),
        ),
        ("550 5.1.1", reply(550, Some((5, 1, 1)), "")),
        (
            "550 No such person at this address",
            reply(550, None, "No such person at this address"),
        ),
        (
            "500 Command not recognized",
            reply(500, None, "Command not recognized"),
        ),
        // Not a valid enhanced code, so it is part of the text.
        ("550 6.1.1 odd", reply(550, None, "6.1.1 odd")),
        ("550 5.1.1.1 odd", reply(550, None, "5.1.1.1 odd")),
        ("0x800CCC0E", Query::Outlook(0x800C_CC0E)),
        ("0X800ccc0e", Query::Outlook(0x800C_CC0E)),
        ("800CCC0E", Query::Outlook(0x800C_CC0E)),
        ("800ccc78", Query::Outlook(0x800C_CC78)),
        ("0x800CCC67: cannot send", Query::Outlook(0x800C_CC67)),
        (
            "Send test e-mail message: Error Number: 0x800CCC0D",
            Query::Outlook(0x800C_CC0D),
        ),
        ("(0x800CCC69)", Query::Outlook(0x800C_CC69)),
        ("0x1234", Query::Outlook(0x1234)),
    ];
    for (input, want) in cases {
        assert_eq!(parse_query(input).as_ref(), Ok(want), "input {input:?}");
    }
}

#[test]
fn joins_the_lines_of_a_multiline_reply() {
    let input = "550-5.1.1 The email account that you tried to reach does not exist.\n\
                 550-5.1.1 Please try double-checking the recipient's email\n\
                 550 5.1.1 address for typos.";
    assert_eq!(
        parse_query(input),
        Ok(reply(
            550,
            Some((5, 1, 1)),
            "The email account that you tried to reach does not exist. Please try \
             double-checking the recipient's email address for typos."
        ))
    );
    // A following line with another code is not part of the reply.
    assert_eq!(
        parse_query("250-mail.example.org\n221 bye"),
        Ok(reply(250, None, "mail.example.org"))
    );
}

#[test]
fn rejects_bad_input_with_a_clear_error() {
    let cases: &[(&str, ExplainError)] = &[
        ("", ExplainError::Empty),
        ("  \n\t ", ExplainError::Empty),
        ("abc", ExplainError::Unrecognized("abc".into())),
        ("999", ExplainError::BasicOutOfRange(999)),
        ("000", ExplainError::BasicOutOfRange(0)),
        ("099", ExplainError::BasicOutOfRange(99)),
        ("999 Weird", ExplainError::BasicOutOfRange(999)),
        ("6.1.1", ExplainError::EnhancedClass(6)),
        ("3.1.1", ExplainError::EnhancedClass(3)),
        (
            "5.1234.1",
            ExplainError::EnhancedMalformed("5.1234.1".into()),
        ),
        ("55.1.1", ExplainError::EnhancedMalformed("55.1.1".into())),
        ("5.1.1.1", ExplainError::Unrecognized("5.1.1.1".into())),
        ("0x", ExplainError::BadHex("0x".into())),
        ("0xZZ", ExplainError::BadHex("0xZZ".into())),
        ("0x1800CCC0E", ExplainError::BadHex("0x1800CCC0E".into())),
        ("55", ExplainError::Unrecognized("55".into())),
        ("5500", ExplainError::Unrecognized("5500".into())),
    ];
    for (input, want) in cases {
        let got = parse_query(input);
        assert_eq!(got.as_ref(), Err(want), "input {input:?}");
        let message = want.to_string();
        assert!(message.len() > 20, "unhelpful message {message:?}");
    }
}

#[test]
fn never_panics_and_never_explains_nothing() {
    let inputs = [
        "５５０",
        "550 ü",
        "550\u{0}",
        "\u{feff}550",
        "5.1.",
        ".1.1",
        "5..1",
        "550 5.",
        "0x-1",
        "0x80000000000",
        "ffffffff",
        "12345678",
        "550-\n550-\n550 ",
        "é.1.1",
        "0xé",
        "550\t5.1.1\tUser unknown",
        "2.999.999",
    ];
    for input in inputs {
        if let Ok(q) = parse_query(input) {
            let exps = explain(&q);
            assert!(!exps.is_empty(), "input {input:?}");
            assert!(!render_text(&exps).is_empty());
        }
    }
    // Queries built by hand, outside what the parser produces.
    let odd = [
        Query::Basic(0),
        Query::Basic(999),
        Query::Basic(u16::MAX),
        enhanced(9, 1, 1),
        enhanced(0, 0, 0),
        enhanced(5, u16::MAX, u16::MAX),
        Query::Outlook(0),
        Query::Outlook(u32::MAX),
        reply(999, Some((7, 7, 7)), ""),
    ];
    for q in &odd {
        assert!(!explain(q).is_empty(), "{q:?}");
    }
}

/// Every reply code named in RFC 5321 section 4.2.3, plus the AUTH and
/// RFC 7504 ones.
const RFC5321_CODES: &[u16] = &[
    211, 214, 220, 221, 235, 250, 251, 252, 334, 354, 421, 432, 450, 451, 452, 454, 455, 500, 501,
    502, 503, 504, 521, 530, 534, 535, 538, 550, 551, 552, 553, 554, 555, 556,
];

#[test]
fn every_listed_basic_code_has_its_own_explanation() {
    for &code in RFC5321_CODES {
        assert!(basic::lookup(code).is_some(), "{code} missing");
        let exps = explain(&Query::Basic(code));
        assert_eq!(exps.len(), 1);
        let e = &exps[0];
        assert_eq!(e.code, code.to_string());
        assert!(!e.title.starts_with("Unlisted"), "{code}: {}", e.title);
        assert!(
            !e.meaning.is_empty() && !e.likely_causes.is_empty() && !e.what_to_check.is_empty()
        );
        let want = match code / 100 {
            4 => Some(true),
            5 => Some(false),
            _ => None,
        };
        assert_eq!(e.transient, want, "{code}");
    }
}

#[test]
fn other_basic_codes_fall_back_to_their_digits() {
    let cases: &[(u16, &str)] = &[
        (
            559,
            "Unlisted 5yz reply (permanent negative completion, mail system)",
        ),
        (
            420,
            "Unlisted 4yz reply (transient negative completion, connections)",
        ),
        (290, "Unlisted 2yz reply (positive completion, not defined)"),
        (
            130,
            "Unlisted 1yz reply (positive preliminary, unspecified)",
        ),
        (
            571,
            "Unlisted 5yz reply (permanent negative completion, not defined)",
        ),
    ];
    for &(code, title) in cases {
        let e = &explain(&Query::Basic(code))[0];
        assert_eq!(e.title, title);
        assert!(e.meaning.contains("not one of the reply codes"), "{code}");
    }
}

#[test]
fn known_enhanced_codes_have_specific_titles() {
    let cases: &[(u8, u16, u16, &str)] = &[
        (5, 1, 1, "Bad destination mailbox address"),
        (5, 1, 10, "Recipient address has null MX"),
        (5, 3, 4, "Message too big for system"),
        (4, 4, 2, "Bad connection"),
        (4, 7, 0, "Other or undefined security status"),
        (4, 7, 1, "Delivery not authorized, message refused"),
        (5, 5, 2, "Syntax error"),
        (
            5,
            6,
            7,
            "Non-ASCII addresses not permitted for that sender/recipient",
        ),
        (5, 7, 1, "Delivery not authorized, message refused"),
        (5, 7, 8, "Authentication credentials invalid"),
        (
            5,
            7,
            11,
            "Encryption required for requested authentication mechanism",
        ),
        (5, 7, 23, "SPF validation failed"),
        (5, 7, 25, "Reverse DNS validation failed"),
        (5, 7, 26, "Multiple authentication checks failed"),
        (5, 7, 27, "Sender address has null MX"),
        (5, 7, 30, "REQUIRETLS support required"),
        (2, 1, 5, "Destination address valid"),
    ];
    for &(class, subject, detail, title) in cases {
        let exps = explain(&enhanced(class, subject, detail));
        assert_eq!(exps.len(), 1);
        assert_eq!(exps[0].code, format!("{class}.{subject}.{detail}"));
        assert_eq!(exps[0].title, title);
    }
}

#[test]
fn the_whole_registry_is_in_the_table() {
    // Highest registered detail for each subject 0..=7.
    let last_detail = [0, 10, 4, 6, 7, 6, 10, 30];
    for (subject, &last) in (0u16..).zip(&last_detail) {
        for detail in 0..=last {
            assert!(
                enhanced::lookup(subject, detail).is_some(),
                "X.{subject}.{detail} missing"
            );
            for class in [2, 4, 5] {
                let e = &explain(&enhanced(class, subject, detail))[0];
                assert!(!e.title.contains("unregistered"), "{}", e.code);
                assert!(!e.likely_causes.is_empty() && !e.what_to_check.is_empty());
            }
        }
        assert!(
            enhanced::lookup(subject, last + 1).is_none(),
            "X.{subject}.{} unexpectedly present",
            last + 1
        );
    }
}

#[test]
fn unknown_details_fall_back_to_class_and_subject() {
    let cases: &[(u8, u16, u16, &str)] = &[
        (5, 1, 99, "Addressing status (unregistered detail 99)"),
        (
            4,
            7,
            31,
            "Security or policy status (unregistered detail 31)",
        ),
        (5, 3, 7, "Mail system status (unregistered detail 7)"),
        (2, 0, 1, "Other or undefined status (unregistered detail 1)"),
        (5, 9, 1, "Unregistered subject 9"),
    ];
    for &(class, subject, detail, title) in cases {
        let e = &explain(&enhanced(class, subject, detail))[0];
        assert_eq!(e.title, title);
        assert!(e.meaning.contains("not"), "{}", e.meaning);
        assert!(
            e.meaning.contains("registry") || e.meaning.contains("registered"),
            "{}",
            e.meaning
        );
        assert_eq!(e.transient, transient_for_class(u16::from(class)));
    }
    let e = &explain(&enhanced(4, 7, 31))[0];
    assert!(e.meaning.contains("Class 4"));
    assert!(e.meaning.contains("Subject 7"));
}

#[test]
fn enhanced_transience_follows_the_class() {
    for (class, want) in [(2, None), (4, Some(true)), (5, Some(false))] {
        assert_eq!(explain(&enhanced(class, 7, 1))[0].transient, want);
    }
}

#[test]
fn outlook_codes_from_the_seeds_and_their_neighbours_are_present() {
    let codes: &[(u32, &str)] = &[
        (0x800C_CC0D, "Cannot find the server"),
        (0x800C_CC0E, "Cannot connect to the server"),
        (0x800C_CC0F, "interrupted"),
        (0x800C_CC10, "Invalid address"),
        (0x800C_CC13, "Cannot connect to the network"),
        (0x800C_CC18, "Secure Password Authentication"),
        (0x800C_CC19, "Time-out"),
        (0x800C_CC1A, "SSL/TLS mismatch"),
        (0x800C_CC67, "421"),
        (0x800C_CC69, "550"),
        (0x800C_CC6A, "451"),
        (0x800C_CC78, "sender rejected"),
        (0x800C_CC79, "relaying denied"),
        (0x800C_CC7D, "STARTTLS"),
        (0x800C_CC80, "authentication method"),
        (0x800C_CC90, "POP3"),
        (0x800C_CC92, "POP3"),
    ];
    for &(code, in_title) in codes {
        assert!(outlook::is_listed(code), "0x{code:08X} missing");
        let exps = explain(&Query::Outlook(code));
        let e = &exps[0];
        assert_eq!(e.code, format!("0x{code:08X}"));
        assert!(e.title.contains(in_title), "0x{code:08X}: {}", e.title);
        assert!(!e.likely_causes.is_empty() && !e.what_to_check.is_empty());
    }
}

#[test]
fn outlook_codes_tie_back_to_the_smtp_side() {
    // Codes that stand for a reply code come with that code's explanation.
    for (code, smtp) in [
        (0x800C_CC67, "421"),
        (0x800C_CC69, "550"),
        (0x800C_CC6A, "451"),
    ] {
        let exps = explain(&Query::Outlook(code));
        assert_eq!(exps.len(), 2, "0x{code:08X}");
        assert_eq!(exps[1].code, smtp);
    }
    // The seeds' advice is there: authenticate for 0x800CCC78, ports for 0x800CCC0E.
    let e = &explain(&Query::Outlook(0x800C_CC78))[0];
    assert!(all_text(e).contains("HELO") && all_text(e).contains("authentication"));
    let e = &explain(&Query::Outlook(0x800C_CC0E))[0];
    for port in ["25", "26", "465", "587", "`relais probe`"] {
        assert!(all_text(e).contains(port), "0x800CCC0E lacks {port}");
    }
    let e = &explain(&Query::Outlook(0x800C_CC67))[0];
    let text = all_text(e).to_lowercase();
    assert!(text.contains("port 25") && text.contains("firewall"));
}

#[test]
fn unknown_outlook_codes_say_they_are_not_in_the_table() {
    for (code, title) in [
        (0x800C_CC55, "Outlook mail transport error not in the table"),
        (0x8004_0115, "Windows error code not in the table"),
        (0x1234, "Not a known error number"),
    ] {
        let exps = explain(&Query::Outlook(code));
        assert_eq!(exps.len(), 1);
        assert_eq!(exps[0].title, title);
        assert!(exps[0].meaning.contains("not"));
    }
}

#[test]
fn a_whole_reply_gives_the_enhanced_then_the_basic_explanation() {
    let cases: &[(&str, &str, &str)] = &[
        ("550 5.1.1 User unknown", "5.1.1", "550"),
        ("451 4.7.1 Greylisted, try again later", "4.7.1", "451"),
        ("554 5.7.1 Relay access denied", "5.7.1", "554"),
        (
            "535 5.7.8 Authentication credentials invalid",
            "5.7.8",
            "535",
        ),
        ("552 5.3.4 Message size exceeds fixed limit", "5.3.4", "552"),
    ];
    for &(input, first, second) in cases {
        let exps = explain(&parse_query(input).unwrap());
        let codes: Vec<&str> = exps.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, [first, second], "input {input:?}");
    }
    // Without an enhanced code there is one explanation, carrying the server's words.
    let exps = explain(&parse_query("550 No such person at this address").unwrap());
    assert_eq!(exps.len(), 1);
    assert!(exps[0].meaning.contains("No such person at this address"));
}

#[test]
fn admin_tie_ins_are_given() {
    // (input, which explanation, fragment that must appear)
    let cases: &[(&str, usize, &str)] = &[
        ("550 5.1.1 User unknown", 0, "aliases"),
        ("550 5.1.1 User unknown", 0, "user table"),
        ("550 No such person at this address", 0, "aliases"),
        ("554 5.7.1 Relay access denied", 0, "authenticate"),
        ("554 5.7.1 Relay access denied", 0, "relay networks"),
        ("421 4.7.0 Try again later", 0, "greylisting"),
        ("450 4.7.1 Greylisted", 0, "retry"),
        ("451 4.7.1 Please try again later", 0, "Greylisting"),
        ("535 5.7.8 Authentication failed", 0, "base64"),
        ("552 5.3.4 Message too big", 0, "SIZE"),
        ("552 5.3.4 Message too big", 1, "SIZE"),
        ("550 5.7.23 SPF validation failed", 0, "SPF record"),
        (
            "550 5.7.1 Message rejected due to SPF fail",
            0,
            "SPF record of the sender's domain",
        ),
        (
            "554 5.7.1 Client host blocked using zen.spamhaus.org",
            0,
            "block list",
        ),
        ("500 Command not recognized", 0, "typ"),
    ];
    for &(input, index, fragment) in cases {
        let exps = explain(&parse_query(input).unwrap());
        let text = all_text(&exps[index]);
        assert!(
            text.contains(fragment),
            "{input:?} explanation {index} lacks {fragment:?}:\n{text}"
        );
    }
    // Hints from the text come first, ahead of the general causes.
    let exps = explain(&parse_query("550 5.7.1 Message rejected due to SPF fail").unwrap());
    assert!(exps[0].likely_causes[0].contains("SPF"));
    // Greylisting text does not trigger the block list hint.
    let exps = explain(&parse_query("450 4.7.1 Greylisted, try again later").unwrap());
    assert!(!all_text(&exps[0]).contains("DNS block list: the sending"));
}

#[test]
fn a_class_that_disagrees_with_the_reply_code_is_pointed_out() {
    let exps = explain(&parse_query("550 4.1.1 odd").unwrap());
    assert!(
        exps[1]
            .likely_causes
            .iter()
            .any(|c| c.contains("disagrees"))
    );
    let exps = explain(&parse_query("550 5.1.1 fine").unwrap());
    assert!(
        !exps[1]
            .likely_causes
            .iter()
            .any(|c| c.contains("disagrees"))
    );
}

#[test]
fn render_text_shows_code_title_and_sections() {
    let exps = explain(&parse_query("550 5.1.1 User unknown").unwrap());
    let text = render_text(&exps);
    for e in &exps {
        assert!(text.contains(&format!("{}  {}", e.code, e.title)), "{text}");
    }
    assert!(text.contains("Likely causes:"));
    assert!(text.contains("What to check:"));
    assert!(text.contains("Permanent failure"));
    assert!(render_text(&explain(&Query::Basic(451))).contains("Temporary failure"));
    assert_eq!(render_text(&[]), "");
}

#[test]
fn render_text_wraps_at_the_width() {
    let mut all = Vec::new();
    for &code in RFC5321_CODES {
        all.extend(explain(&Query::Basic(code)));
    }
    for detail in 0..=30 {
        all.extend(explain(&enhanced(5, 7, detail)));
    }
    all.extend(explain(&Query::Outlook(0x800C_CC0E)));
    for line in render_text(&all).lines() {
        let longest_word = line.split_whitespace().map(str::len).max().unwrap_or(0);
        assert!(
            line.chars().count() <= WIDTH || longest_word + 6 > WIDTH,
            "too long: {line:?}"
        );
    }
}

#[test]
fn explain_str_combines_parse_and_explain() {
    assert_eq!(explain_str("5.7.8").unwrap()[0].code, "5.7.8");
    assert_eq!(explain_str("999"), Err(ExplainError::BasicOutOfRange(999)));
}
