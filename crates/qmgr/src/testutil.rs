//! Messages in flight for the table tests of planning and settling.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use relais_proto::{Envelope, MailParams, Mailbox, Notify, RcptParams, Recipient, ReversePath};
use relais_queue::{Content, QueueState, SpooledEnvelope};

use crate::flight::Flight;

/// When the test messages arrived.
pub fn arrival() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// A recipient, with `NOTIFY=` when `notify` is given (`"SUCCESS,DELAY"`, …).
pub fn rcpt(address: &str, notify: Option<&str>) -> Recipient {
    Recipient {
        to: relais_proto::address::parse_forward_path(address).unwrap(),
        params: RcptParams {
            notify: notify.map(|n| Notify {
                success: n.contains("SUCCESS"),
                failure: n.contains("FAILURE"),
                delay: n.contains("DELAY"),
            }),
            orcpt: None,
        },
    }
}

/// A message from `sender@example.org` to `recipients`, all pending.
pub fn flight(recipients: Vec<Recipient>, content: &str) -> Flight {
    let state = QueueState {
        recipients: vec![None; recipients.len()],
        ..Default::default()
    };
    let envelope = Envelope {
        helo: "client.example.org".into(),
        esmtp: true,
        from: ReversePath::Mailbox(Mailbox::parse("sender@example.org").unwrap()),
        mail_params: MailParams::default(),
        recipients,
        size: content.len() as u64,
        chunked: false,
        bare_lf: false,
    };
    let env = SpooledEnvelope {
        client: "unknown[127.0.0.1]:1".into(),
        envelope,
        arrival: Default::default(),
        state,
    };
    Flight::new(
        env,
        arrival(),
        Content::from_bytes(content.as_bytes().to_vec()),
    )
}
