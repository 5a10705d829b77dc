//! In-memory wake-ups for feedback steps waiting on a request.
//!
//! Whoever resolves a request (an answer, an expiry, a cancel) stores the resolution first and
//! then calls [`RequestEvents::notify`]; a waiting step re-reads the request from storage.
//! Entries exist only while somebody waits, so paused runs cost nothing here.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::util::lock;

#[derive(Default)]
pub(crate) struct RequestEvents {
    waiting: Mutex<HashMap<String, watch::Sender<u64>>>,
}

/// A waiting step's subscription; unsubscribes on drop.
pub(crate) struct Subscription<'a> {
    events: &'a RequestEvents,
    request_id: String,
    receiver: watch::Receiver<u64>,
}

impl RequestEvents {
    pub(crate) fn subscribe(&self, request_id: &str) -> Subscription<'_> {
        let receiver = lock(&self.waiting)
            .entry(request_id.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Subscription {
            events: self,
            request_id: request_id.to_owned(),
            receiver,
        }
    }

    /// Wakes the steps waiting on `request_id`.
    pub(crate) fn notify(&self, request_id: &str) {
        if let Some(sender) = lock(&self.waiting).get(request_id) {
            sender.send_modify(|generation| *generation += 1);
        }
    }
}

impl Subscription<'_> {
    /// Resolves at the next notification.
    pub(crate) async fn changed(&mut self) {
        // The sender lives in the map while this subscription does.
        if self.receiver.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        let mut waiting = lock(&self.events.waiting);
        if waiting
            .get(&self.request_id)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            waiting.remove(&self.request_id);
        }
    }
}
