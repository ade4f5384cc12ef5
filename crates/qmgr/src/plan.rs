//! Planning an attempt: for each recipient still pending, where its copy goes. Pure: the
//! routing decision comes in as a function, and nothing is written or sent here; the queue
//! manager carries the plan out.
//!
//! A recipient that is an alias is expanded at its first attempt and its targets recorded in
//! the message's state; a later attempt plans only the targets still pending. The same mailbox
//! twice in one message gets one copy. Loop signs in the header fail a local copy at once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use relais_local::rules::LoopCheck;
use relais_proto::params::{xtext_decode, xtext_encode};
use relais_proto::{Mailbox, Notify, RcptParams, Recipient};
use relais_queue::{Outcome, Target};
use relais_route::Destination;
use relais_spool::QueueId;

use crate::flight::{Flight, Slot};

/// What the plan needs to know besides the message.
pub struct PlanContext<'a> {
    /// The message's queue id (Maildir file names carry it).
    pub id: QueueId,
    /// Our host name: the domain of the bare `postmaster`.
    pub hostname: &'a str,
    /// Mailboxes go over LMTP to this server (its name for the log), not to Maildirs.
    pub lmtp: Option<String>,
    /// The message's arrival, Unix seconds (Maildir file names carry it).
    pub arrival: u64,
}

/// A copy for a local mailbox, written to its Maildir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaildirCopy {
    /// Whose copy it is.
    pub slot: Slot,
    /// The mailbox (a local part).
    pub mailbox: String,
    /// The address it was reached by, for `Delivered-To`.
    pub address: String,
    /// The file name's base: queue id and slot, so that a copy made before a crash is known.
    pub base: String,
}

/// A copy for a local mailbox, given to the LMTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmtpCopy {
    /// Whose copy it is.
    pub slot: Slot,
    /// The address, as the LMTP server gets it in `RCPT TO`.
    pub address: String,
}

/// One remote transaction: recipients at one domain, reached directly or through one alias
/// (a forwarded copy carries a `Delivered-To` header of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBatch {
    /// The destination domain.
    pub domain: String,
    /// The recipient index of the alias the copies are forwarded from.
    pub alias: Option<usize>,
    /// The recipients and their slots.
    pub recipients: Vec<(Slot, Recipient)>,
}

/// An alias command to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeJob {
    /// Whose copy it is.
    pub slot: Slot,
    /// The command line.
    pub command: String,
    /// The alias's address (`RECIPIENT`).
    pub recipient: String,
    /// The alias's original address (`ORIGINAL_RECIPIENT`).
    pub original: String,
    /// The system user it runs as (a `~/.forward`'s); `None`: `[local] run_as`.
    pub user: Option<String>,
}

/// An alias file to append to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileJob {
    /// Whose copy it is.
    pub slot: Slot,
    /// The mbox file.
    pub path: PathBuf,
    /// The alias's address, for `Delivered-To`.
    pub recipient: String,
    /// The system user it is written as (a `~/.forward`'s); `None`: `[local] run_as`.
    pub user: Option<String>,
}

/// One remote transaction per destination domain, and per alias for forwarded copies:
/// (domain, the alias's recipient index).
type RemoteKey = (String, Option<usize>);

/// What one attempt at one message has to do.
#[derive(Debug, Default)]
pub struct Plan {
    /// Mailboxes given a copy in this attempt, with the slot that has it.
    seen: BTreeMap<String, Slot>,
    /// Maildir copies.
    pub maildir: Vec<MaildirCopy>,
    /// LMTP copies (one transaction for all).
    pub lmtp: Vec<LmtpCopy>,
    /// Remote recipients by (domain, alias).
    remote: BTreeMap<RemoteKey, Vec<(Slot, Recipient)>>,
    /// Alias commands.
    pub pipes: Vec<PipeJob>,
    /// Alias files.
    pub files: Vec<FileJob>,
}

impl Plan {
    /// The remote transactions, one per (domain, alias).
    pub fn remote(&mut self) -> Vec<RemoteBatch> {
        std::mem::take(&mut self.remote)
            .into_iter()
            .map(|((domain, alias), recipients)| RemoteBatch {
                domain,
                alias,
                recipients,
            })
            .collect()
    }
}

/// Plans the attempt at `f`: counts it, decides each pending recipient's (and alias target's)
/// copy, and records in `f` what is known at once (loops, unknown users, `:fail:`).
pub fn plan(
    f: &mut Flight,
    cx: &PlanContext<'_>,
    loops: &LoopCheck,
    mut destination: impl FnMut(&Mailbox) -> Destination,
) -> Plan {
    f.env.state.attempts += 1;
    let mut plan = Plan::default();
    let recipients = f.env.envelope.recipients.clone();
    for (i, r) in recipients.iter().enumerate() {
        if !f.env.state.is_pending(i) {
            continue;
        }
        f.touched.insert(Slot::Rcpt(i));
        if f.env.state.is_expanded(i) {
            // Expanded at an earlier attempt: the same targets, those still pending.
            let pending: Vec<usize> = f
                .env
                .state
                .expansions_of(i)
                .filter(|(_, x)| x.is_pending())
                .map(|(n, _)| n)
                .collect();
            for n in pending {
                target(f, cx, &mut plan, n, loops);
            }
            continue;
        }
        let dest = destination(&r.to);
        if matches!(dest, Destination::Mailbox(_) | Destination::Alias(_))
            && let Some(o) = loops.check(&r.to.to_string())
        {
            f.env.state.set(i, o);
            continue;
        }
        match dest {
            Destination::Mailbox(mailbox) => {
                // As the client wrote it; the bare `postmaster` gets our host name.
                let address = if r.to.domain.is_empty() {
                    mailbox_address(&mailbox, &r.to, cx.hostname)
                } else {
                    r.to.to_string()
                };
                let base = format!("{}.Q{}R{i}", cx.arrival, cx.id);
                mailbox_copy(f, cx, &mut plan, Slot::Rcpt(i), mailbox, address, base);
            }
            Destination::Alias(targets) => {
                for n in f.env.state.expand(i, targets) {
                    target(f, cx, &mut plan, n, loops);
                }
            }
            Destination::Relay(domain) => {
                f.via.insert(Slot::Rcpt(i), "none".into());
                plan.remote
                    .entry((domain, None))
                    .or_default()
                    .push((Slot::Rcpt(i), r.clone()));
            }
            Destination::Nowhere(o) => f.env.state.set(i, o),
        }
    }
    plan
}

/// The address of a local mailbox reached through `to` (its domain, or our host name for
/// the bare `postmaster`); a virtual domain's mailbox (`a.example/alice`) has its own.
pub fn mailbox_address(mailbox: &str, to: &Mailbox, hostname: &str) -> String {
    // A system user's home mailbox (`~alice`) is named by the user.
    let mailbox = mailbox.strip_prefix('~').unwrap_or(mailbox);
    if let Some((domain, local)) = mailbox.split_once('/') {
        return format!("{local}@{domain}");
    }
    let domain = if to.domain.is_empty() {
        hostname
    } else {
        &to.domain
    };
    format!("{mailbox}@{domain}")
}

/// Plans target `n` of an expanded alias.
fn target(f: &mut Flight, cx: &PlanContext<'_>, plan: &mut Plan, n: usize, loops: &LoopCheck) {
    let slot = Slot::Exp(n);
    f.touched.insert(slot);
    let x = f.env.state.expansions[n].clone();
    let parent = f.env.envelope.recipients[x.parent].clone();
    let parent_address = parent.to.to_string();
    match x.target {
        Target::Mailbox(mailbox) => {
            let address = mailbox_address(&mailbox, &parent.to, cx.hostname);
            if let Some(o) = loops.check(&address) {
                return f.set(slot, o);
            }
            let base = format!("{}.Q{}X{n}", cx.arrival, cx.id);
            mailbox_copy(f, cx, plan, slot, mailbox, address, base);
        }
        Target::Forward(address) => {
            let to = match Mailbox::parse(&address) {
                Ok(m) => m,
                Err(e) => {
                    let reason = format!("bad forward address {address:?}: {e:?}");
                    return f.set(slot, Outcome::failed("5.1.3", reason));
                }
            };
            // The alias reports success itself (`expanded`); failures still go to the
            // sender. ORCPT names the alias.
            let orcpt = parent
                .params
                .orcpt
                .clone()
                .unwrap_or_else(|| ("rfc822".into(), xtext_encode(&parent_address)));
            let params = RcptParams {
                notify: parent.params.notify.map(|n| Notify {
                    success: false,
                    ..n
                }),
                orcpt: Some(orcpt),
            };
            f.via.insert(slot, "none".into());
            plan.remote
                .entry((to.domain_lower(), Some(x.parent)))
                .or_default()
                .push((slot, Recipient { to, params }));
        }
        Target::Pipe(command) => pipe_job(f, plan, slot, &parent, None, command),
        Target::UserPipe(user, command) => pipe_job(f, plan, slot, &parent, Some(user), command),
        Target::File(path) => {
            f.via.insert(slot, "local".into());
            plan.files.push(FileJob {
                slot,
                path,
                recipient: parent_address,
                user: None,
            });
        }
        Target::UserFile(user, path) => {
            f.via.insert(slot, "local".into());
            plan.files.push(FileJob {
                slot,
                path,
                recipient: parent_address,
                user: Some(user),
            });
        }
        Target::Fail(text) => f.set(slot, Outcome::failed("5.1.1", text)),
    }
}

/// An alias command for `slot`, run as `user` (a `.forward`'s) or `run_as`.
fn pipe_job(
    f: &mut Flight,
    plan: &mut Plan,
    slot: Slot,
    parent: &Recipient,
    user: Option<String>,
    command: String,
) {
    let parent_address = parent.to.to_string();
    let original = parent
        .params
        .orcpt
        .as_ref()
        .map(|(_, v)| xtext_decode(v))
        .unwrap_or_else(|| parent_address.clone());
    f.via.insert(slot, "local".into());
    plan.pipes.push(PipeJob {
        slot,
        command,
        recipient: parent_address,
        original,
        user,
    });
}

/// Gives `mailbox` its copy for `slot`: a Maildir file, or a place in the LMTP transaction;
/// nothing when the mailbox has a copy in this attempt already.
fn mailbox_copy(
    f: &mut Flight,
    cx: &PlanContext<'_>,
    plan: &mut Plan,
    slot: Slot,
    mailbox: String,
    address: String,
    base: String,
) {
    if let Some(&first) = plan.seen.get(&mailbox) {
        // The same mailbox twice in one message: one copy.
        f.dups.push((slot, first, mailbox));
        return;
    }
    plan.seen.insert(mailbox.clone(), slot);
    if let Some(server) = &cx.lmtp {
        f.via.insert(slot, format!("lmtp[{server}]"));
        plan.lmtp.push(LmtpCopy { slot, address });
        return;
    }
    f.via.insert(slot, "local".into());
    plan.maildir.push(MaildirCopy {
        slot,
        mailbox,
        address,
        base,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{flight, rcpt};

    /// Routing for the tests: by local part, remote for any domain but `example.com`.
    fn route(to: &Mailbox) -> Destination {
        if to.domain_lower() != "example.com" && !to.domain.is_empty() {
            return Destination::Relay(to.domain_lower());
        }
        match to.local.as_str() {
            "alice" | "al" | "postmaster" => Destination::Mailbox("alice".into()),
            "bob" => Destination::Mailbox("bob".into()),
            // A virtual domain's mailbox, reached through an alias of ours.
            "sales" => Destination::Alias(vec![Target::Mailbox("a.example/alice".into())]),
            "staff" => Destination::Alias(vec![
                Target::Mailbox("alice".into()),
                Target::Forward("x@remote.test".into()),
                Target::Pipe("cat".into()),
                Target::File("/var/mail/staff".into()),
                Target::Fail("gone".into()),
            ]),
            _ => Destination::Nowhere(Outcome::failed("5.1.1", "unknown user")),
        }
    }

    /// The plan and the outcomes known at once, one line each.
    fn summary(f: &Flight, plan: &mut Plan) -> Vec<String> {
        let mut out = Vec::new();
        for c in &plan.maildir {
            out.push(format!(
                "maildir {:?} {} {} {}",
                c.slot, c.mailbox, c.address, c.base
            ));
        }
        for c in &plan.lmtp {
            out.push(format!("lmtp {:?} {}", c.slot, c.address));
        }
        for b in plan.remote() {
            let to: Vec<String> = b
                .recipients
                .iter()
                .map(|(s, r)| format!("{s:?}={}", r.to))
                .collect();
            out.push(format!(
                "remote {} {:?} {}",
                b.domain,
                b.alias,
                to.join(",")
            ));
        }
        for p in &plan.pipes {
            out.push(format!(
                "pipe {:?} {} for {}",
                p.slot, p.command, p.recipient
            ));
        }
        for j in &plan.files {
            out.push(format!("file {:?} {}", j.slot, j.path.display()));
        }
        for (dup, first, mailbox) in &f.dups {
            out.push(format!("dup {dup:?} of {first:?} {mailbox}"));
        }
        for i in 0..f.env.envelope.recipients.len() {
            if let Some(o) = f.env.state.outcome(i) {
                out.push(format!("now R{i} {o}"));
            }
        }
        for (n, x) in f.env.state.expansions.iter().enumerate() {
            if let Some(o) = &x.outcome {
                out.push(format!("now X{n} {o}"));
            }
        }
        out
    }

    #[test]
    fn attempts_are_planned() {
        let id: QueueId = "1K0VQDTT29700B7200".parse().unwrap();
        // (recipients, over LMTP, a header line, what the plan says)
        let table: &[(&[&str], bool, &str, &[&str])] = &[
            (
                &["alice@example.com"],
                false,
                "",
                &["maildir Rcpt(0) alice alice@example.com 1800000000.Q1K0VQDTT29700B7200R0"],
            ),
            (
                // The bare postmaster is ours; the same mailbox twice gets one copy.
                &["postmaster", "al@example.com", "bob@example.com"],
                false,
                "",
                &[
                    "maildir Rcpt(0) alice alice@mx.example.com 1800000000.Q1K0VQDTT29700B7200R0",
                    "maildir Rcpt(2) bob bob@example.com 1800000000.Q1K0VQDTT29700B7200R2",
                    "dup Rcpt(1) of Rcpt(0) alice",
                ],
            ),
            (
                &["alice@example.com", "bob@example.com"],
                true,
                "",
                &[
                    "lmtp Rcpt(0) alice@example.com",
                    "lmtp Rcpt(1) bob@example.com",
                ],
            ),
            (
                // A virtual domain's mailbox is addressed at its own domain.
                &["sales@example.com"],
                false,
                "",
                &[
                    "maildir Exp(0) a.example/alice alice@a.example 1800000000.Q1K0VQDTT29700B7200X0",
                ],
            ),
            (
                // One transaction per domain.
                &[
                    "a@remote.test",
                    "nobody@example.com",
                    "b@remote.test",
                    "c@other.test",
                ],
                false,
                "",
                &[
                    "remote other.test None Rcpt(3)=c@other.test",
                    "remote remote.test None Rcpt(0)=a@remote.test,Rcpt(2)=b@remote.test",
                    "now R1 status=bounced (5.1.1 unknown user)",
                ],
            ),
            (
                &["staff@example.com"],
                false,
                "",
                &[
                    "maildir Exp(0) alice alice@example.com 1800000000.Q1K0VQDTT29700B7200X0",
                    "remote remote.test Some(0) Exp(1)=x@remote.test",
                    "pipe Exp(2) cat for staff@example.com",
                    "file Exp(3) /var/mail/staff",
                    "now X4 status=bounced (5.1.1 gone)",
                ],
            ),
            (
                // A copy that was here before is a loop, for mailboxes and aliases alike.
                &["alice@example.com", "staff@example.com", "a@remote.test"],
                false,
                "Delivered-To: alice@example.com\r\nDelivered-To: staff@example.com\r\n",
                &[
                    "remote remote.test None Rcpt(2)=a@remote.test",
                    "now R0 status=bounced (5.4.6 mail forwarding loop for alice@example.com: it has a Delivered-To header for it)",
                    "now R1 status=bounced (5.4.6 mail forwarding loop for staff@example.com: it has a Delivered-To header for it)",
                ],
            ),
        ];
        for (recipients, lmtp, head, want) in table {
            let mut f = flight(
                recipients.iter().map(|r| rcpt(r, None)).collect(),
                &format!("{head}Subject: x\r\n\r\nbody\r\n"),
            );
            let cx = PlanContext {
                id,
                hostname: "mx.example.com",
                lmtp: lmtp.then(|| "unix:/run/lmtp".to_string()),
                arrival: 1_800_000_000,
            };
            let loops = LoopCheck::of(f.content.header());
            let mut p = plan(&mut f, &cx, &loops, route);
            assert_eq!(summary(&f, &mut p), *want, "{recipients:?}");
            assert_eq!(f.env.state.attempts, 1);
        }
    }

    #[test]
    fn a_retry_plans_only_what_is_pending() {
        let id: QueueId = "1K0VQDTT29700B7200".parse().unwrap();
        let cx = PlanContext {
            id,
            hostname: "mx.example.com",
            lmtp: None,
            arrival: 1_800_000_000,
        };
        let mut f = flight(
            vec![
                rcpt("alice@example.com", None),
                rcpt("staff@example.com", None),
            ],
            "\r\n",
        );
        let loops = LoopCheck::of(f.content.header());
        let _ = plan(&mut f, &cx, &loops, route);
        // Alice got her copy; of the alias, the forward and the command are still pending.
        f.env.state.set(0, Outcome::Delivered("ok".into()));
        f.env
            .state
            .set_expansion(0, Outcome::Delivered("ok".into()));
        f.env
            .state
            .set_expansion(1, Outcome::deferred("4.4.1", "no route"));
        f.env
            .state
            .set_expansion(2, Outcome::deferred("4.3.0", "timed out"));
        f.env
            .state
            .set_expansion(3, Outcome::Delivered("ok".into()));
        f.touched.clear();
        // Routing is not asked again: the recorded targets are used.
        let mut p = plan(&mut f, &cx, &loops, |_| unreachable!("routed again"));
        assert_eq!(
            summary(&f, &mut p)[..2],
            [
                "remote remote.test Some(1) Exp(1)=x@remote.test".to_string(),
                "pipe Exp(2) cat for staff@example.com".to_string(),
            ]
        );
        assert_eq!(f.env.state.attempts, 2);
    }
}
