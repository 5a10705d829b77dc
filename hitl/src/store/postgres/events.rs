//! `LISTEN hitl_events`: resolutions, timers and runs to claim, from other workers.
//!
//! Writers announce with `pg_notify('hitl_events', payload)` inside the transaction that
//! stores the change, so a notification arrives only once the change is visible. The
//! listener holds a connection of its own; when it drops (a restart, `pg_terminate_backend`)
//! the listener reconnects and sends [`StoreEvent::Lagged`], and the engine looks at
//! everything again — events are hints, the engine's polling is the guarantee.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio_postgres::{AsyncMessage, Config, NoTls};

use crate::store::StoreEvent;

/// The channel every hitl writer notifies.
pub(super) const CHANNEL: &str = "hitl_events";

/// A resolved request: `r <request id> <run id>`.
pub(super) fn resolved(request_id: &str, run_id: &str) -> String {
    format!("r\t{request_id}\t{run_id}")
}

/// Decodes a payload; `None` for one this build does not know (a newer writer's).
fn parse(payload: &str) -> Option<StoreEvent> {
    let (tag, rest) = payload.split_once('\t')?;
    match tag {
        "r" => {
            let (request_id, run_id) = rest.split_once('\t')?;
            Some(StoreEvent::RequestResolved {
                run_id: run_id.to_owned(),
                request_id: request_id.to_owned(),
            })
        }
        "t" => rest
            .parse()
            .ok()
            .map(|deadline| StoreEvent::TimerArmed { deadline }),
        "q" => Some(StoreEvent::RunReady {
            run_id: rest.to_owned(),
        }),
        _ => None,
    }
}

/// Listens until `events` is dropped, reconnecting as needed.
pub(super) async fn listen(config: Config, redacted_url: String, events: UnboundedSender<StoreEvent>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let listening = {
                    let listen = client.batch_execute("LISTEN hitl_events");
                    tokio::pin!(listen);
                    loop {
                        tokio::select! {
                            result = &mut listen => break result.is_ok(),
                            message = std::future::poll_fn(|cx| connection.poll_message(cx)) => {
                                if !matches!(message, Some(Ok(_))) { break false; }
                            }
                        }
                    }
                };
                if listening {
                    backoff = Duration::from_millis(50);
                    // Whatever was notified while no connection listened is only polled for.
                    if events.send(StoreEvent::Lagged).is_err() {
                        return;
                    }
                    loop {
                        let message = tokio::select! {
                            message = std::future::poll_fn(|cx| connection.poll_message(cx)) => message,
                            () = events.closed() => return,
                        };
                        match message {
                            Some(Ok(AsyncMessage::Notification(notification))) => {
                                if let Some(event) = parse(notification.payload())
                                    && events.send(event).is_err()
                                {
                                    return;
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(error)) => {
                                tracing::warn!(url = %redacted_url, %error, "the hitl event listener lost its connection; reconnecting");
                                break;
                            }
                            None => break,
                        }
                    }
                }
                drop(client);
            }
            Err(error) => {
                tracing::warn!(url = %redacted_url, %error, "the hitl event listener cannot connect; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = events.closed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        assert_eq!(
            parse(&resolved("req-1", "run 1")),
            Some(StoreEvent::RequestResolved {
                run_id: "run 1".into(),
                request_id: "req-1".into()
            })
        );
        assert_eq!(parse("t\t42"), Some(StoreEvent::TimerArmed { deadline: 42 }));
        assert_eq!(
            parse("q\trun"),
            Some(StoreEvent::RunReady { run_id: "run".into() })
        );
        assert_eq!(parse("z\twhat"), None, "a newer writer's event is ignored");
        assert_eq!(parse("garbage"), None);
    }
}
