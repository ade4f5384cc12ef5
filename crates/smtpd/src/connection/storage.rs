//! Room on the spool's file system, asked at MAIL FROM (issue 15): below `[limits]
//! min_free_space`, with the announced SIZE counted, the sender gets `452 4.3.1 Insufficient
//! system storage` and the session goes on, as with Postfix's `queue_minfree`.

use relais_proto::{Reply, replies};
use tracing::warn;

use crate::context::Context;

/// The refusal when the spool has too little room for a message of `size` octets (the
/// announced SIZE, or nothing).
pub(super) fn no_room(ctx: &Context, size: Option<u64>, client: &str) -> Option<Reply> {
    let rule = ctx.config.limits.min_free_space;
    let (free, total) = match ctx.spool.disk_space() {
        Ok(space) => space,
        Err(e) => {
            warn!("cannot ask the spool's file system for its free space: {e}");
            return None;
        }
    };
    let need = size.unwrap_or(0);
    if rule.allows(free, total, need) {
        return None;
    }
    warn!(
        "NOQUEUE: reject: MAIL from {client}: 452 4.3.1 Insufficient system storage \
         ({free} octets free of {total}, {need} asked, {} kept free)",
        rule.threshold(total)
    );
    Some(replies::storage_below_minimum())
}
