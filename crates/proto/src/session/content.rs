//! Message content: DATA (dot-unstuffed, ended only by `<CRLF>.<CRLF>`) and BDAT chunks,
//! size accounting, and the envelope handed over at the end.

use super::*;

impl Session {
    /// Feeds DATA content; false when more input is needed.
    pub(super) fn process_data(&mut self) -> bool {
        let Mode::Data(rx) = &mut self.mode else {
            return false;
        };
        let before = self.body.len();
        let (used, ended) = rx.feed(&self.input[self.pos..], &mut self.body);
        let bare_lf = rx.saw_bare_lf;
        self.pos += used;
        let added = (self.body.len() - before) as u64;
        self.account_content(added, bare_lf);
        if ended {
            self.mode = Mode::Command;
            self.current = (6, "DATA".into());
            self.finish_message();
            return true;
        }
        false
    }

    /// Feeds a BDAT chunk; false when more input is needed.
    pub(super) fn process_bdat(&mut self) -> bool {
        let Mode::Bdat {
            remaining,
            size,
            last,
            ref error,
        } = self.mode
        else {
            return false;
        };
        let avail = (self.input.len() - self.pos) as u64;
        let take = remaining.min(avail) as usize;
        if error.is_none() {
            self.body
                .extend_from_slice(&self.input[self.pos..self.pos + take]);
            self.account_content(take as u64, false);
        }
        self.pos += take;
        let remaining = remaining - take as u64;
        if remaining > 0 {
            if let Mode::Bdat { remaining: r, .. } = &mut self.mode {
                *r = remaining;
            }
            return false;
        }
        let Mode::Bdat { error, .. } = std::mem::replace(&mut self.mode, Mode::Command) else {
            return false;
        };
        self.current = (7, format!("BDAT {size}{}", if last { " LAST" } else { "" }));
        if let Some(reply) = error {
            self.reply(reply);
        } else if self.tx.as_ref().is_some_and(|t| t.too_big) {
            self.abort_transaction();
            self.reply(replies::message_too_big());
        } else if last {
            self.finish_message();
        } else {
            self.reply(replies::chunk_ok(size));
        }
        true
    }

    /// Counts content octets, enforces the size limit and hands out full chunks.
    pub(super) fn account_content(&mut self, added: u64, bare_lf: bool) {
        let max = self.config.max_message_size;
        let Some(tx) = &mut self.tx else {
            self.body.clear();
            return;
        };
        tx.size += added;
        tx.bare_lf |= bare_lf;
        if max > 0 && tx.size > max {
            tx.too_big = true;
        }
        if tx.too_big {
            self.body.clear();
        } else if self.body.len() >= BODY_CHUNK {
            let chunk = std::mem::replace(&mut self.body, Vec::with_capacity(BODY_CHUNK + 4096));
            self.events.push_back(Event::Body(chunk));
        }
    }

    /// End of content: refuse it if too big, otherwise ask for it to be stored.
    pub(super) fn finish_message(&mut self) {
        let Some(tx) = &self.tx else {
            return;
        };
        if tx.too_big {
            self.abort_transaction();
            self.reply(replies::message_too_big());
            return;
        }
        if !self.body.is_empty() {
            let chunk = std::mem::take(&mut self.body);
            self.events.push_back(Event::Body(chunk));
        }
        let envelope = self.envelope(tx);
        self.events.push_back(Event::MessageComplete(envelope));
        self.waiting = Some(Waiting::Stored);
    }

    /// The envelope of a transaction as it stands.
    pub(super) fn envelope(&self, tx: &Transaction) -> Envelope {
        let (helo, esmtp) = self.helo.clone().unwrap_or_default();
        Envelope {
            helo,
            esmtp,
            from: tx.from.clone(),
            mail_params: tx.params.clone(),
            recipients: tx.recipients.clone(),
            size: tx.size,
            chunked: tx.chunked,
            bare_lf: tx.bare_lf,
        }
    }

    /// The reply that refuses DATA/BDAT in the current state, if any.
    pub(super) fn content_refusal(&self) -> Option<Reply> {
        match &self.tx {
            None => Some(replies::need_rcpt()),
            Some(tx) if tx.recipients.is_empty() && tx.rcpt_tried => {
                Some(replies::no_valid_recipients())
            }
            Some(tx) if tx.recipients.is_empty() => Some(replies::need_rcpt()),
            Some(_) => None,
        }
    }

    pub(super) fn handle_data(&mut self) {
        if let Some(r) = self.content_refusal() {
            return self.reply(r);
        }
        if self.tx.as_ref().is_some_and(|t| t.chunked) {
            return self.reply(replies::data_after_bdat());
        }
        self.reply(replies::start_data());
        if let Some(tx) = &self.tx {
            let envelope = self.envelope(tx);
            self.events.push_back(Event::ContentStart(envelope));
        }
        self.mode = Mode::Data(DataReceiver::new());
    }

    pub(super) fn handle_bdat(&mut self, size: u64, last: bool) {
        let error = self.content_refusal();
        if error.is_none()
            && let Some(tx) = &mut self.tx
            && !tx.chunked
        {
            tx.chunked = true;
            let envelope = self.envelope(self.tx.as_ref().expect("checked above"));
            self.events.push_back(Event::ContentStart(envelope));
        }
        self.mode = Mode::Bdat {
            remaining: size,
            size,
            last,
            error,
        };
    }
}
