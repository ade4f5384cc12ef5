//! Recent events for the status page: a [`tracing_subscriber::Layer`] that turns the server's
//! mail-flow events (the ones with an `event` field: `connect`, `queued`, `sent`, `deferred`,
//! `bounced`, `reject`, `policy`, …) and its warnings into JSON objects, keeps the last few in
//! a ring for a page that just opened, and broadcasts them to the pages that watch
//! (`/api/events`, server-sent events).
//!
//! The hub keeps nothing until it is opened ([`EventHub::open`]), when the HTTP listener
//! starts: rendering every event of a busy server as JSON costs about 5% of its CPU, spent for
//! nobody when there is no page to show them.
//!
//! The mail path never waits for a watcher: publishing is a JSON rendering, a short mutex and a
//! `tokio::sync::broadcast` send, which overwrites what a slow watcher has not read yet (it is
//! told how many it missed). The JSON object of an event is the one the log writes in
//! `log_format = "json"` ([`event_object`]): the binary's log formatter uses it too.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use relais_proto::date::DateTime;
use serde_json::{Map, Value};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

/// How many past events a page that just opened is shown.
pub const BACKLOG: usize = 100;
/// How many events a watcher may fall behind before it misses some.
const LAG: usize = 256;

/// The message and the fields of one event.
#[derive(Default)]
pub struct EventFields {
    /// The `message` field.
    pub message: String,
    /// Every other field, with its value (an empty text is a fact the event does not have).
    pub fields: Map<String, Value>,
    /// Keep only the message (a text line of a mail-flow event): the fields are not formatted.
    pub message_only: bool,
}

impl EventFields {
    fn keep(&mut self, field: &Field, value: Value) {
        if !self.message_only {
            self.fields.insert(field.name().to_string(), value);
        }
    }
}

impl Visit for EventFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.message_only && field.name() != "message" {
            return;
        }
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else if !text.is_empty() {
            // An empty value is a fact the event does not have (no AUTH user, no alias).
            self.keep(field, Value::String(text));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else if !value.is_empty() {
            self.keep(field, Value::String(value.to_string()));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.keep(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.keep(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.keep(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.keep(field, value.into());
    }
}

/// `2026-12-05T03:56:33.123456Z`.
pub fn timestamp(now: SystemTime) -> String {
    let d = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let t = DateTime::from_unix(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    format!("{}T{}.{:06}Z", t.iso_date(), t.clock(), d.subsec_micros())
}

/// An event as one JSON object with fixed names: `ts`, `level`, `event` (`log` when the event
/// has none), its fields, `msg`.
pub fn event_object(event: &Event<'_>, now: SystemTime) -> Map<String, Value> {
    let mut f = EventFields::default();
    event.record(&mut f);
    let mut object = Map::with_capacity(f.fields.len() + 4);
    object.insert("ts".into(), timestamp(now).into());
    object.insert(
        "level".into(),
        event
            .metadata()
            .level()
            .as_str()
            .to_ascii_lowercase()
            .into(),
    );
    if !f.fields.contains_key("event") {
        object.insert("event".into(), "log".into());
    }
    object.extend(f.fields);
    object.insert("msg".into(), f.message.into());
    object
}

/// What the hub keeps: the last events, under the lock that also orders the broadcast.
struct Ring {
    /// The last [`BACKLOG`] events, oldest first.
    recent: VecDeque<Arc<str>>,
}

/// The recent events and their watchers; cheap to clone (one hub per process).
#[derive(Clone)]
pub struct EventHub {
    ring: Arc<Mutex<Ring>>,
    /// Each watcher's receiving end comes from here.
    live: broadcast::Sender<Arc<str>>,
    /// Whether events are kept: set once a status page can show them.
    open: Arc<AtomicBool>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub::new()
    }
}

impl EventHub {
    /// A hub with nothing in it yet.
    pub fn new() -> EventHub {
        EventHub {
            ring: Arc::new(Mutex::new(Ring {
                recent: VecDeque::with_capacity(BACKLOG),
            })),
            live: broadcast::channel(LAG).0,
            open: Arc::new(AtomicBool::new(false)),
        }
    }

    /// From now on the layer keeps events (the HTTP listener is up).
    pub fn open(&self) {
        self.open.store(true, Ordering::Relaxed);
    }

    /// Whether the layer keeps events.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// The layer that feeds this hub, to install beside the log writer.
    pub fn layer(&self) -> EventLayer {
        EventLayer { hub: self.clone() }
    }

    /// Keeps one event (a JSON object) and sends it to every watcher, never waiting.
    pub fn publish(&self, json: String) {
        let json: Arc<str> = json.into();
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.recent.len() == BACKLOG {
            ring.recent.pop_front();
        }
        ring.recent.push_back(json.clone());
        // No watcher is not an error; a full channel drops the oldest for the slowest.
        let _ = self.live.send(json);
    }

    /// The recent events (oldest first) and a receiver of the ones after them: taken together
    /// under the lock, so that no event is missed or seen twice.
    pub fn watch(&self) -> (Vec<Arc<str>>, broadcast::Receiver<Arc<str>>) {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        (ring.recent.iter().cloned().collect(), self.live.subscribe())
    }
}

/// The `tracing` layer of an [`EventHub`]: mail-flow events and warnings go to the hub.
pub struct EventLayer {
    hub: EventHub,
}

/// Whether the status page shows an event: the mail flow (an `event` field) and warnings.
fn shown(meta: &tracing::Metadata<'_>) -> bool {
    meta.fields().field("event").is_some() || *meta.level() <= Level::WARN
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for EventLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if self.hub.is_open() && shown(event.metadata()) {
            let object = event_object(event, SystemTime::now());
            self.hub.publish(Value::Object(object).to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn timestamps() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_873_552_000_042);
        assert_eq!(timestamp(t), "2026-11-28T13:45:52.000042Z");
    }

    #[test]
    fn the_ring_keeps_the_last_events_in_order() {
        let hub = EventHub::new();
        for n in 0..BACKLOG + 5 {
            hub.publish(n.to_string());
        }
        let (recent, _) = hub.watch();
        assert_eq!(recent.len(), BACKLOG);
        assert_eq!(&*recent[0], "5");
        assert_eq!(&*recent[BACKLOG - 1], (BACKLOG + 4).to_string());
    }

    #[test]
    fn a_slow_watcher_misses_events_and_nobody_waits() {
        let hub = EventHub::new();
        let (_, mut slow) = hub.watch();
        for n in 0..LAG + 10 {
            hub.publish(n.to_string());
        }
        assert!(matches!(
            slow.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(10))
        ));
        assert_eq!(&*slow.try_recv().unwrap(), "10");
    }

    #[test]
    fn a_watcher_sees_what_comes_after_its_backlog() {
        let hub = EventHub::new();
        hub.publish("a".into());
        let (recent, mut live) = hub.watch();
        hub.publish("b".into());
        assert_eq!(recent.iter().map(|e| &**e).collect::<Vec<_>>(), ["a"]);
        assert_eq!(&*live.try_recv().unwrap(), "b");
        assert!(live.try_recv().is_err());
    }

    #[test]
    fn the_layer_keeps_mail_flow_events_and_warnings_once_opened() {
        let hub = EventHub::new();
        let subscriber = tracing_subscriber::registry().with(hub.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(event = "queued", "before there is a page to show it");
            hub.open();
            tracing::info!(
                event = "reject",
                client = "unknown[192.0.2.1]:4711",
                status = 550u64,
                "reject: RCPT from unknown[192.0.2.1]:4711: 550 5.1.1"
            );
            tracing::info!(pending = 2u64, "an ordinary line");
            tracing::warn!("something is off");
        });
        let (recent, _) = hub.watch();
        let objects: Vec<Value> = recent
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        assert_eq!(objects.len(), 2, "{objects:?}");
        assert_eq!(objects[0]["event"], "reject");
        assert_eq!(objects[0]["client"], "unknown[192.0.2.1]:4711");
        assert_eq!(objects[0]["status"], 550);
        assert_eq!(objects[0]["level"], "info");
        assert!(
            objects[0]["msg"]
                .as_str()
                .unwrap()
                .starts_with("reject: RCPT")
        );
        assert_eq!(objects[1]["event"], "log");
        assert_eq!(objects[1]["level"], "warn");
    }
}
