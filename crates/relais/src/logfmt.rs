//! How a log line looks: `text` (the default: the time, the level and the message, one line per
//! event, Postfix's wording so that `grep QUEUE_ID` tells a message's story) or `json` (one
//! object per line with fixed field names, so that `jq 'select(.queue_id=="…")'` tells it too).
//!
//! The server's events carry their facts as tracing fields (`event`, `queue_id`, `client`,
//! `from`, `to`, `relay`, `delay`, `status`, `dsn`, `reason`, `message_id`, …) beside the
//! message: the text format shows the message, the JSON format both.

use std::fmt;
use std::time::SystemTime;

use relais_proto::date::DateTime;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `text` or `json`, from `log_format`.
pub struct LogFormat {
    /// One JSON object per line.
    pub json: bool,
}

/// The message and the fields of one event.
#[derive(Default)]
struct Fields {
    message: String,
    fields: Map<String, Value>,
    /// Keep only the message (a text line of a mail-flow event): the fields are not formatted.
    message_only: bool,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.message_only && field.name() != "message" {
            return;
        }
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else if !text.is_empty() {
            // An empty value is a fact the event does not have (no AUTH user, no alias).
            self.fields
                .insert(field.name().to_string(), Value::String(text));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.message_only && field.name() != "message" {
            return;
        }
        if field.name() == "message" {
            self.message = value.to_string();
        } else if !value.is_empty() {
            self.fields
                .insert(field.name().to_string(), Value::String(value.to_string()));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.message_only {
            return;
        }
        self.fields.insert(field.name().to_string(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.message_only {
            return;
        }
        self.fields.insert(field.name().to_string(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.message_only {
            return;
        }
        self.fields.insert(field.name().to_string(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.message_only {
            return;
        }
        self.fields.insert(field.name().to_string(), value.into());
    }
}

/// `2026-12-05T03:56:33.123456Z`.
fn timestamp(now: SystemTime) -> String {
    let d = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let t = DateTime::from_unix(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    format!("{}T{}.{:06}Z", t.iso_date(), t.clock(), d.subsec_micros())
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
        // A mail-flow event says everything in its message: in text, its fields are not even
        // formatted (the event's metadata names them before any value is looked at).
        let structured = event.metadata().fields().field("event").is_some();
        let mut f = Fields {
            message_only: !self.json && structured,
            ..Fields::default()
        };
        event.record(&mut f);
        let ts = timestamp(SystemTime::now());
        let level = event.metadata().level().as_str();
        if !self.json {
            write!(writer, "{ts} {level:>5} {}", f.message)?;
            // An event of the mail flow says everything in its message; any other shows its
            // fields after it, as `key=value`.
            if !structured {
                for (k, v) in &f.fields {
                    match v {
                        Value::String(text) => write!(writer, " {k}={text}")?,
                        other => write!(writer, " {k}={other}")?,
                    }
                }
            }
            return writeln!(writer);
        }
        let mut object = Map::with_capacity(f.fields.len() + 4);
        object.insert("ts".into(), ts.into());
        object.insert("level".into(), level.to_ascii_lowercase().into());
        if !f.fields.contains_key("event") {
            object.insert("event".into(), "log".into());
        }
        object.extend(f.fields);
        object.insert("msg".into(), f.message.into());
        writeln!(writer, "{}", Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[test]
    fn timestamps() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_873_552_000_042);
        assert_eq!(timestamp(t), "2026-11-28T13:45:52.000042Z");
    }

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
