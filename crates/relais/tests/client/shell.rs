//! `relais shell` driven through a pipe: standard input is not a terminal, so it reads a script
//! and waits for each reply before sending the next line.

use std::fs;

use crate::support::{
    Certs, PyOptions, PyServer, Relais, Run, closed_port, relais_bin, run, tempdir,
};

fn shell(port: u16, script: &str) -> Run {
    let port = port.to_string();
    run(
        relais_bin(),
        &["shell", "127.0.0.1", &port, "--timeout", "10"],
        script.as_bytes(),
    )
}

/// The index of the first output line containing `needle`, after line `from`.
#[track_caller]
fn line_after(run: &Run, from: usize, needle: &str) -> usize {
    run.stdout
        .lines()
        .enumerate()
        .skip(from)
        .find(|(_, l)| l.contains(needle))
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("{needle:?} not after line {from}:\n{}", run.stdout))
}

#[test]
fn the_seed_dialogue_delivers_a_message() {
    let server = Relais::start(&["utilisateur"]);
    // As typed in the seeds: HELO, MAIL FROM without brackets, a header, a blank line, a body.
    let script = "helo x\n\
                  MAIL FROM:Admin@test.com\n\
                  RCPT TO: Utilisateur@test.example\n\
                  data\n\
                  Subject: test telnet\n\
                  \n\
                  Ceci est un test.\n\
                  .\n\
                  quit\n";
    let run = shell(server.daemon.port, script);
    run.expect_code(0);
    // Each command is followed by its own reply, in order: the script waited for each one.
    let mut at = line_after(&run, 0, "<-  220 mx.test.example");
    for (sent, reply) in [
        (" -> helo x", "<-  250 "),
        (" -> MAIL FROM:Admin@test.com", "<-  250 2.1.0"),
        (" -> RCPT TO: Utilisateur@test.example", "<-  250 2.1.5"),
        (" -> data", "<-  354 "),
        (" -> .", "<-  250 2.0.0 Ok: queued as"),
        (" -> quit", "<-  221 "),
    ] {
        let s = line_after(&run, at, sent);
        let r = line_after(&run, s, reply);
        let next_sent = run
            .stdout
            .lines()
            .skip(s + 1)
            .position(|l| l.contains(" -> "));
        if sent != " -> data" {
            // No other line was sent between a command and its reply.
            assert!(
                next_sent.is_none_or(|n| s + 1 + n > r),
                "{sent}: something was sent before its reply\n{}",
                run.stdout
            );
        }
        at = r;
    }
    let m = &server.mailbox("utilisateur", 1)[0];
    assert!(m.contains("Subject: test telnet"), "{m}");
    assert!(m.contains("Ceci est un test."), "{m}");
}

#[test]
fn helpers_b64_and_data() {
    let server = Relais::start(&[]);
    let dir = tempdir();
    let file = dir.path().join("message.txt");
    fs::write(
        &file,
        "Subject: from a file\n\n.hidden line that starts with a dot\nlast line\n",
    )
    .unwrap();
    let script = format!(
        ":b64 \\0alice\\0s3cret\n\
         :unb64 VXNlcm5hbWU6\n\
         :unb64 !!!\n\
         :nonsense\n\
         EHLO client.example\n\
         MAIL FROM:<a@client.example>\n\
         RCPT TO:<bob@test.example>\n\
         :data {}\n\
         QUIT\n",
        file.display()
    );
    let run = shell(server.daemon.port, &script);
    run.expect_code(0)
        .expect_out("=== base64: AGFsaWNlAHMzY3JldA==")
        .expect_out("=== decoded: Username:")
        .expect_out("*** not base64")
        .expect_out("*** :nonsense is no helper")
        .expect_out(" -> DATA")
        .expect_out(" -> ..hidden line that starts with a dot")
        .expect_out("<-  250 2.0.0 Ok: queued as")
        .expect_out("<-  221 ");
    let m = &server.mailbox("bob", 1)[0];
    assert!(
        m.contains("\n.hidden line that starts with a dot\r\nlast line"),
        "{m}"
    );
}

#[test]
fn starttls_and_auth_login_helpers() {
    let certs = Certs::new();
    let server = PyServer::start(PyOptions {
        tls: Some(&certs),
        auth: Some("alice:s3cret"),
        ..PyOptions::default()
    });
    // The password of `:auth plain alice` is the next line of the script.
    let script = "EHLO client.example\n\
                  :starttls\n\
                  EHLO client.example\n\
                  :auth login alice wrong\n\
                  :auth login alice s3cret\n\
                  RSET\n\
                  :auth plain alice\n\
                  s3cret\n\
                  QUIT\n";
    let run = shell(server.daemon.port, script);
    run.expect_code(0)
        .expect_out(" -> STARTTLS")
        .expect_out("=== TLS started with TLSv1.")
        .expect_out(" ~> AUTH LOGIN")
        // aiosmtpd asks "User Name\0" and "Password\0", NUL included.
        .expect_out("=== the server asks (base64-decoded): User Name")
        .expect_out(" ~> YWxpY2U=")
        .expect_out("=== the server asks (base64-decoded): Password")
        .expect_out(" ~> czNjcmV0")
        .expect_out("*** authentication failed: 535")
        .expect_out("=== authenticated")
        .expect_out("<~  221 ");
    // The password never appears decoded.
    assert!(!run.stdout.contains("s3cret"), "{}", run.stdout);
    // AUTH PLAIN on a session already authenticated is refused (503), and the script goes on.
    run.expect_out(" ~> AUTH PLAIN AGFsaWNlAHMzY3JldA==")
        .expect_out("<~  503 ");
}

#[test]
fn nothing_listening_is_exit_2() {
    let run = shell(closed_port(), "QUIT\n");
    run.expect_code(2).expect_out("refused");
}
