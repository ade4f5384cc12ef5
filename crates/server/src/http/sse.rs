//! `GET /api/events`: the recent events, then each new one as it happens, as server-sent events
//! (`text/event-stream`, one `data:` line of JSON per event). A task per watcher copies events
//! from the hub into the response; a watcher that reads too slowly misses events (it is told
//! how many, as an `event: missed`) rather than slow anything down. A comment every few seconds
//! keeps proxies from closing an idle stream and tells the task when the page has gone.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::{Reply, text};
use crate::events::EventHub;

/// How often an idle stream gets a comment.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// How many frames may wait for the connection before the watcher starts missing events.
const QUEUE: usize = 64;

/// The body of an event stream: frames from the watcher's task.
struct EventStream {
    frames: mpsc::Receiver<Bytes>,
}

impl Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.frames
            .poll_recv(cx)
            .map(|f| f.map(|b| Ok(Frame::data(b))))
    }
}

/// One event as a server-sent event.
fn frame(json: &str) -> String {
    format!("data: {json}\n\n")
}

/// Starts a watcher, unless too many are watching already (503).
pub(super) fn watch(hub: &EventHub, watchers: &Arc<Semaphore>) -> Reply {
    let Ok(permit) = watchers.clone().try_acquire_owned() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many pages are watching the events\n",
        );
    };
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(copy(hub.clone(), tx, permit));
    let mut r = Response::new(EventStream { frames: rx }.boxed());
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        "text/event-stream".parse().expect("a header value"),
    );
    h.insert(CACHE_CONTROL, "no-store".parse().expect("a header value"));
    r
}

/// Copies the backlog, then the live events, until the page goes away.
async fn copy(hub: EventHub, tx: mpsc::Sender<Bytes>, _permit: OwnedSemaphorePermit) {
    let (backlog, mut live) = hub.watch();
    // A browser that reconnects is told to wait 3 s; the backlog goes out in one frame.
    let mut first = String::from("retry: 3000\n\n");
    for e in &backlog {
        first.push_str(&frame(e));
    }
    if tx.send(first.into()).await.is_err() {
        return;
    }
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await;
    loop {
        let out = tokio::select! {
            e = live.recv() => match e {
                Ok(json) => frame(&json),
                Err(RecvError::Lagged(n)) => format!("event: missed\ndata: {n}\n\n"),
                Err(RecvError::Closed) => return,
            },
            _ = keepalive.tick() => ": keepalive\n\n".to_string(),
        };
        // A full queue: the connection is slow; this event is dropped for it.
        match tx.try_send(out.into()) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn backlog_then_live_events() {
        let hub = EventHub::new();
        hub.publish(r#"{"event":"queued"}"#.into());
        let watchers = Arc::new(Semaphore::new(1));
        let mut body = watch(&hub, &watchers).into_body();
        assert_eq!(
            watch(&hub, &watchers).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(
            &first[..],
            b"retry: 3000\n\ndata: {\"event\":\"queued\"}\n\n"
        );
        hub.publish(r#"{"event":"sent"}"#.into());
        let next = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&next[..], b"data: {\"event\":\"sent\"}\n\n");
        drop(body);
        // The page went away: the next event ends the copy and frees the place.
        for _ in 0..10 {
            hub.publish("{}".into());
            tokio::task::yield_now().await;
        }
        assert_eq!(watchers.available_permits(), 1);
    }
}
