//! Delivery status notifications: a report about a message is built (see [`crate::dsn`]) and
//! queued like any other message, from the null sender to the original sender.

use std::net::{IpAddr, Ipv4Addr};
use std::time::SystemTime;

use relais_proto::{Envelope, MailParams, Notify, RcptParams, Recipient, ReversePath};
use relais_queue::{Enqueue, headers};
use relais_spool::{QueueId, Spool};
use tracing::{info, warn};

use crate::dsn::{self, RecipientReport};
use crate::flight::Flight;

/// Queues a report about message `id` to its sender; returns the report's queue id. Nothing
/// goes to the null sender.
pub async fn enqueue(
    spool: &Spool,
    hostname: &str,
    id: QueueId,
    f: &Flight,
    reports: Vec<RecipientReport>,
    now: SystemTime,
) -> Option<QueueId> {
    let ReversePath::Mailbox(sender) = &f.env.envelope.from else {
        return None;
    };
    let actions: Vec<&str> = reports.iter().map(|r| r.action).collect();
    // Read only when small enough to go back whole; a message the spool cannot give any more
    // is returned as its header section.
    let full = match f.content.to_vec_upto(dsn::RETURN_LIMIT) {
        Ok(full) => full,
        Err(e) => {
            warn!("{id}: cannot read the message for its report: {e}; returning its headers");
            None
        }
    };
    let body = dsn::build(&dsn::Report {
        hostname,
        queue_id: &id.to_string(),
        envelope: &f.env.envelope,
        arrival: f.arrival,
        recipients: reports,
        original_header: f.content.header(),
        original_full: full.as_deref(),
        now,
    });
    let report_id = spool.new_id();
    let envelope = Envelope {
        helo: hostname.to_string(),
        esmtp: true,
        from: ReversePath::Null,
        mail_params: MailParams {
            smtputf8: !sender.is_ascii(),
            ..Default::default()
        },
        recipients: vec![Recipient {
            to: sender.clone(),
            params: RcptParams {
                notify: Some(Notify::NEVER),
                orcpt: None,
            },
        }],
        size: body.len() as u64,
        chunked: false,
        bare_lf: false,
    };
    let received = headers::received(&headers::ReceivedInfo {
        envelope: &envelope,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        client_name: Some("localhost"),
        hostname,
        id: &report_id.to_string(),
        when: now,
        tls: None,
        authenticated: false,
    });
    let mut report = Enqueue::begin(spool, report_id);
    report.write(received.as_bytes());
    report.write(&body);
    match report.commit("local", envelope, "").await {
        Ok(rid) => {
            let actions = actions.join(", ");
            info!(
                event = "dsn",
                queue_id = %id,
                dsn_id = %rid,
                actions,
                "{id}: sender delivery status notification: {rid} ({actions})"
            );
            Some(rid)
        }
        Err(_) => {
            warn!("{id}: cannot queue the delivery report");
            None
        }
    }
}
