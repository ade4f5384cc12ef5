//! A large message for the tests that a message of any size goes through each delivery agent
//! byte for byte: megabytes of lines, many starting with one or two dots (DATA must stuff them,
//! the receiver unstuff them), none starting with `From ` (an mbox quotes those).

/// A message of at least `octets` octets with LF line ends (the test clients send CRLF): a
/// header section with `subject`, then numbered lines of 78 octets; every 7th starts with a
/// dot, every 49th with two.
pub fn message(subject: &str, octets: usize) -> String {
    let mut m = format!(
        "From: sender@local.test\nTo: someone@local.test\nSubject: {subject}\n\
         Message-ID: <{subject}@client.test>\n\n"
    );
    let mut n = 0usize;
    while m.len() < octets {
        let lead = match n {
            n if n % 49 == 0 => "..",
            n if n % 7 == 0 => ".",
            _ => "x",
        };
        m.push_str(&format!(
            "{lead}{n:010}{}\n",
            "y".repeat(76 - lead.len() - 10)
        ));
        n += 1;
    }
    m
}

/// `message` as it goes over the wire and into a Maildir: CRLF line ends.
pub fn crlf(message: &str) -> Vec<u8> {
    message.replace('\n', "\r\n").into_bytes()
}

/// Asserts that `copy` is `want` with only trace header fields (at most 2,000 octets) in
/// front, naming `what` and showing where they differ when not.
#[track_caller]
pub fn assert_tail(what: &str, copy: &[u8], want: &[u8]) {
    let extra = copy.len().saturating_sub(want.len());
    let at = copy
        .iter()
        .rev()
        .zip(want.iter().rev())
        .position(|(a, b)| a != b);
    assert!(
        copy.len() >= want.len() && at.is_none() && extra < 2000,
        "{what}: {} octets for a message of {}, different {:?} octets before the end; it starts \
         {:?}",
        copy.len(),
        want.len(),
        at,
        String::from_utf8_lossy(&copy[..copy.len().min(300)])
    );
}
