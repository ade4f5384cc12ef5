//! An alias expanded at delivery: its file's targets, with forwards to our own domains followed
//! (through whatever those addresses are: aliases of any file, mailboxes, catch-alls), so that
//! `a: b@here` and `b: a@here` are found to loop and bounce instead of circling.

use std::collections::HashSet;

use relais_proto::Mailbox;
use relais_queue::{Outcome, Target};

use crate::aliases::MAX_DEPTH;
use crate::home::forward_label;
use crate::lookup::{AliasRef, Found, Policy, Scope};

/// One expansion at delivery time.
pub(crate) struct Expansion<'a> {
    policy: &'a Policy,
    /// The labels of the aliases being expanded, reached through forwards to our domains.
    chain: Vec<String>,
    /// Targets already emitted.
    seen: HashSet<Target>,
    /// The result, in order.
    out: Vec<Target>,
}

impl<'a> Expansion<'a> {
    /// Expands `alias` into final targets: no [`Target::Forward`] to one of our domains, every
    /// [`Target::Mailbox`] an existing mailbox (an unknown one becomes a [`Target::Fail`]).
    pub fn run(policy: &'a Policy, alias: AliasRef) -> Result<Vec<Target>, Outcome> {
        let mut walk = Expansion {
            policy,
            chain: Vec::new(),
            seen: HashSet::new(),
            out: Vec::new(),
        };
        walk.alias(alias)?;
        Ok(walk.out)
    }

    fn alias(&mut self, alias: AliasRef) -> Result<(), Outcome> {
        self.chain.push(alias.label.clone());
        if self.chain.len() > MAX_DEPTH {
            return Err(Outcome::failed(
                "5.4.6",
                format!(
                    "alias expansion deeper than {MAX_DEPTH}: {}",
                    self.chain.join(" -> ")
                ),
            ));
        }
        for t in alias.targets().map_err(|e| e.outcome())? {
            match t {
                Target::Forward(address) => self.forward(&alias, address)?,
                Target::Mailbox(m) => self.mailbox(&m, alias.scope, &alias.label)?,
                other => self.emit(other),
            }
        }
        self.chain.pop();
        Ok(())
    }

    /// A forward of `alias`: followed when the address is at one of our domains.
    fn forward(&mut self, alias: &AliasRef, address: String) -> Result<(), Outcome> {
        let here = Mailbox::parse(&address).ok().and_then(|m| {
            let domain = m.domain_lower();
            let scope = self.policy.scope_of(&domain)?;
            Some((m.local.to_ascii_lowercase(), domain, scope))
        });
        let Some((local, domain, scope)) = here.filter(|(_, d, _)| !d.is_empty()) else {
            self.emit(Target::Forward(address));
            return Ok(());
        };
        match self
            .policy
            .find(&local, &domain, scope)
            .map_err(|e| e.outcome())?
        {
            // `bob: bob@here`: bob keeps his own copy.
            Found::Alias(a) if a.label == alias.label => self.mailbox(&local, scope, &a.label)?,
            Found::Alias(a) if self.chain.contains(&a.label) => {
                let mut chain = self.chain.clone();
                chain.push(a.label);
                return Err(Outcome::failed(
                    "5.4.6",
                    format!("mail forwarding loop: {}", chain.join(" -> ")),
                ));
            }
            Found::Alias(a) => self.alias(a)?,
            Found::Mailbox(m) => self.emit(Target::Mailbox(m)),
            Found::Unknown => self.emit(Target::Fail(format!(
                "alias target {address}: no such local mailbox"
            ))),
        }
        Ok(())
    }

    /// A mailbox target written in a file of namespace `scope` (by the alias `owner`): kept
    /// if the mailbox exists, else a failure with the reason. A home mailbox with a
    /// `.forward` goes where that says, unless the `.forward` itself names its mailbox.
    fn mailbox(&mut self, local: &str, scope: Scope, owner: &str) -> Result<(), Outcome> {
        let Some(m) = self.policy.mailbox_of(local, scope) else {
            self.emit(Target::Fail(format!(
                "alias target {local}: no such local mailbox"
            )));
            return Ok(());
        };
        if m.starts_with('~')
            && forward_label(local) != owner
            && let Some(forward) = self.policy.dot_forward(local).map_err(|e| e.outcome())?
        {
            if self.chain.contains(&forward.label) {
                let mut chain = self.chain.clone();
                chain.push(forward.label);
                return Err(Outcome::failed(
                    "5.4.6",
                    format!("mail forwarding loop: {}", chain.join(" -> ")),
                ));
            }
            return self.alias(forward);
        }
        self.emit(Target::Mailbox(m));
        Ok(())
    }

    fn emit(&mut self, t: Target) {
        if self.seen.insert(t.clone()) {
            self.out.push(t);
        }
    }
}
