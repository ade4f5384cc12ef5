//! How a log line looks: `text` (the default: the time, the level and the message, one line per
//! event, Postfix's wording so that `grep QUEUE_ID` tells a message's story) or `json` (one
//! object per line with fixed field names, so that `jq 'select(.queue_id=="…")'` tells it too).
//!
//! The server's events carry their facts as tracing fields (`event`, `queue_id`, `client`,
//! `from`, `to`, `relay`, `delay`, `status`, `dsn`, `reason`, `message_id`, …) beside the
//! message: the text format shows the message, the JSON format both. The JSON object of an
//! event and the visitor that reads its fields are `relais_server::events`' (the status page
//! shows the same objects).

use std::fmt;
use std::time::SystemTime;

use relais_server::events::{EventFields, event_object, timestamp};
use serde_json::Value;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `text` or `json`, from `log_format`.
pub struct LogFormat {
    /// One JSON object per line.
    pub json: bool,
}

impl<S, N> FormatEvent<S, N> for LogFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = SystemTime::now();
        if self.json {
            return writeln!(writer, "{}", Value::Object(event_object(event, now)));
        }
        // A mail-flow event says everything in its message: its fields are not even formatted
        // (the event's metadata names them before any value is looked at). Any other shows its
        // fields after the message, as `key=value`.
        let structured = event.metadata().fields().field("event").is_some();
        let mut f = EventFields {
            message_only: structured,
            ..EventFields::default()
        };
        event.record(&mut f);
        let level = event.metadata().level().as_str();
        write!(writer, "{} {level:>5} {}", timestamp(now), f.message)?;
        for (k, v) in &f.fields {
            match v {
                Value::String(text) => write!(writer, " {k}={text}")?,
                other => write!(writer, " {k}={other}")?,
            }
        }
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// The lines an event becomes, in each format.
    fn lines(json: bool) -> String {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(LogFormat { json })
            .with_writer(move || Capture(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                event = "queued",
                queue_id = "1K0VQDTT29700B7200",
                from = "a@b.example",
                size = 39u64,
                "1K0VQDTT29700B7200: queued: from=<a@b.example>, size=39, nrcpt=1"
            );
            tracing::warn!("no fields \"here\"");
            tracing::info!(pending = 2u64, "spool recovered");
        });
        String::from_utf8(out.lock().unwrap().clone()).unwrap()
    }

    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn text_shows_the_message() {
        let text = lines(false);
        let l: Vec<&str> = text.lines().collect();
        assert_eq!(l.len(), 3, "{text}");
        assert!(
            l[0].ends_with(
                " INFO 1K0VQDTT29700B7200: queued: from=<a@b.example>, size=39, nrcpt=1"
            ),
            "{text}"
        );
        assert!(l[1].ends_with(" WARN no fields \"here\""), "{text}");
        assert!(l[2].ends_with(" INFO spool recovered pending=2"), "{text}");
    }

    #[test]
    fn json_has_fixed_fields() {
        let text = lines(true);
        let objects: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        assert_eq!(objects[0]["event"], "queued");
        assert_eq!(objects[0]["queue_id"], "1K0VQDTT29700B7200");
        assert_eq!(objects[0]["from"], "a@b.example");
        assert_eq!(objects[0]["size"], 39);
        assert_eq!(objects[0]["level"], "info");
        assert!(objects[0]["ts"].as_str().unwrap().ends_with('Z'));
        assert_eq!(objects[1]["event"], "log");
        assert_eq!(objects[1]["msg"], "no fields \"here\"");
    }
}
