//! The status page's probe form. The probe engine (`relais-diag`) sits on the same floor as
//! this crate, which must not import it: the binary hands the server a [`Prober`], a function
//! that runs one probe and answers with its JSON report (`relais probe --json`). Here it is
//! bounded: one probe at a time, a deadline, and a target that looks like a host or domain.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::{Reply, json_reply};

/// The longest a probe may take, whatever it probes.
const DEADLINE: Duration = Duration::from_secs(90);

/// What the form asks for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProbeRequest {
    /// A mail domain, or HOST:PORT / IP / IP:PORT, as `relais probe` takes it.
    pub target: String,
    /// The SMTP port (of the MX hosts, or of the host when the target has none).
    #[serde(default = "smtp_port")]
    pub port: u16,
    /// Treat the target as a host even without a port (no MX lookup).
    #[serde(default)]
    pub host: bool,
}

fn smtp_port() -> u16 {
    25
}

/// Runs one probe and answers with its report as `relais probe --json` prints it, or with
/// `{"error": …}` when nothing could be probed.
pub type Prober =
    Arc<dyn Fn(ProbeRequest) -> Pin<Box<dyn Future<Output = Value> + Send>> + Send + Sync>;

impl ProbeRequest {
    /// Why the request cannot be a probe, if it cannot: the target is a host name, an IP
    /// address or either with a port, nothing else (it is never handed to a shell, but a
    /// person's typo deserves a clear answer).
    pub(super) fn check(&self) -> Result<(), String> {
        let t = self.target.trim();
        if t.is_empty() || t.len() > 255 {
            return Err("a domain, a host or an address to probe".into());
        }
        if let Some(bad) = t
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ".-_:[]".contains(*c)))
        {
            return Err(format!("{bad:?} has no place in a host name or address"));
        }
        if self.port == 0 {
            return Err("port: 1 to 65535".into());
        }
        Ok(())
    }
}

/// The probe the binary gave, if any, and the one slot it runs in.
pub(super) struct ProbeSlot {
    /// The probe engine, from the binary.
    prober: Option<Prober>,
    /// One probe at a time: a probe opens connections and may wait for slow servers.
    busy: Semaphore,
}

impl ProbeSlot {
    pub(super) fn new(prober: Option<Prober>) -> ProbeSlot {
        ProbeSlot {
            prober,
            busy: Semaphore::new(1),
        }
    }

    /// `POST /api/probe` with a JSON body (`{"target": …, "port": …, "host": …}`).
    pub(super) async fn run(&self, body: &[u8]) -> Reply {
        let error = |status, e: String| json_reply(status, json!({ "error": e }));
        let Some(prober) = &self.prober else {
            return error(
                StatusCode::NOT_IMPLEMENTED,
                "this server has no probe".into(),
            );
        };
        let request: ProbeRequest = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("a probe request: {e}")),
        };
        if let Err(e) = request.check() {
            return error(StatusCode::BAD_REQUEST, e);
        }
        let Ok(_permit) = self.busy.try_acquire() else {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "a probe is running: try again when it is done".into(),
            );
        };
        match tokio::time::timeout(DEADLINE, prober(request)).await {
            // Nothing was probed (the engine's `{"error": …}`): the options' fault.
            Ok(report) if report.get("error").is_some() => {
                json_reply(StatusCode::UNPROCESSABLE_ENTITY, report)
            }
            Ok(report) => json_reply(StatusCode::OK, report),
            Err(_) => error(
                StatusCode::GATEWAY_TIMEOUT,
                format!("the probe took more than {} s", DEADLINE.as_secs()),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let table: &[(&str, u16, bool)] = &[
            ("example.org", 25, true),
            ("127.0.0.1:2525", 25, true),
            ("[::1]:25", 25, true),
            ("mx_1.example.org", 587, true),
            ("", 25, false),
            ("   ", 25, false),
            ("example.org; rm -rf /", 25, false),
            ("a b", 25, false),
            ("example.org", 0, false),
        ];
        for (target, port, ok) in table {
            let r = ProbeRequest {
                target: target.to_string(),
                port: *port,
                host: false,
            };
            assert_eq!(r.check().is_ok(), *ok, "{target:?} {port}");
        }
        let r: ProbeRequest = serde_json::from_str(r#"{"target":"example.org"}"#).unwrap();
        assert_eq!((r.port, r.host), (25, false));
    }

    #[tokio::test]
    async fn one_probe_at_a_time_and_none_without_an_engine() {
        let none = ProbeSlot::new(None);
        let body = br#"{"target":"example.org"}"#;
        assert_eq!(none.run(body).await.status(), StatusCode::NOT_IMPLEMENTED);
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let wait = Arc::new(tokio::sync::Mutex::new(Some(wait)));
        let prober: Prober = Arc::new(move |r: ProbeRequest| {
            let wait = wait.clone();
            Box::pin(async move {
                if let Some(w) = wait.lock().await.take() {
                    let _ = w.await;
                }
                json!({ "target": r.target })
            })
        });
        let slot = Arc::new(ProbeSlot::new(Some(prober)));
        let first = tokio::spawn({
            let slot = slot.clone();
            async move { slot.run(body).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(slot.run(body).await.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(slot.run(b"{").await.status(), StatusCode::BAD_REQUEST);
        go.send(()).unwrap();
        assert_eq!(first.await.unwrap().status(), StatusCode::OK);
        assert_eq!(slot.run(body).await.status(), StatusCode::OK);
    }
}
