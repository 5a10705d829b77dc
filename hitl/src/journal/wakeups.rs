//! In-memory wake-ups for feedback steps waiting on a request.
//!
//! Whoever resolves a request (an answer, an expiry, a cancel) stores the resolution first and
//! then hands the stored record to [`Wakeups::deliver`]; a waiting step receives that record
//! and does not read it back. Entries exist only while somebody waits, so paused runs cost
//! nothing here.
//!
//! While a resolution is being written or is not yet flushed, it may be visible to a read
//! and not durable: its resolver marks the request for that window ([`Wakeups::resolving`]),
//! and a step that reads a resolution while it is marked flushes before acting on it
//! (`context::feedback`). Marks too exist only for that window.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::model::request::RequestRecord;
use crate::util::lock;

#[derive(Default)]
pub(crate) struct Wakeups {
    waiting: Mutex<HashMap<String, watch::Sender<Option<Arc<RequestRecord>>>>>,
    /// Requests whose resolution this process is writing or has not flushed yet.
    resolving: Mutex<HashMap<String, Marks>>,
}

/// The marks on one request.
#[derive(Default)]
struct Marks {
    /// Resolvers at work on it (two answers may race; each holds its own mark).
    resolvers: usize,
    /// A resolver went before its flush returned (it was cancelled, or the flush failed): its
    /// write may be visible and not durable until somebody flushes after reading it.
    abandoned: bool,
}

/// A resolver's mark on its request: see [`Wakeups::resolving`].
pub(crate) struct Resolving<'a> {
    wakeups: &'a Wakeups,
    request_id: String,
    settled: bool,
}

/// A waiting step's subscription; unsubscribes on drop.
pub(crate) struct Subscription<'a> {
    wakeups: &'a Wakeups,
    request_id: String,
    receiver: watch::Receiver<Option<Arc<RequestRecord>>>,
}

impl Wakeups {
    pub(crate) fn subscribe(&self, request_id: &str) -> Subscription<'_> {
        let receiver = lock(&self.waiting)
            .entry(request_id.to_owned())
            .or_insert_with(|| watch::channel(None).0)
            .subscribe();
        Subscription {
            wakeups: self,
            request_id: request_id.to_owned(),
            receiver,
        }
    }

    /// The requests somebody waits on here (a shared store's engine polls them, in case a
    /// resolution by another process was not announced).
    pub(crate) fn waiting(&self) -> Vec<String> {
        lock(&self.waiting).keys().cloned().collect()
    }

    /// Whether a step here waits on `request_id`.
    pub(crate) fn is_waiting(&self, request_id: &str) -> bool {
        lock(&self.waiting).contains_key(request_id)
    }

    /// Marks `request_id` as being resolved by this process, for a resolver about to write a
    /// resolution: a step that reads the resolution while the mark stands flushes before
    /// acting on it. The mark goes with [`Resolving::settled`], once the resolution is
    /// durable (or there was none); dropped before that, it stays until a reader has flushed.
    pub(crate) fn resolving(&self, request_id: &str) -> Resolving<'_> {
        lock(&self.resolving)
            .entry(request_id.to_owned())
            .or_default()
            .resolvers += 1;
        Resolving {
            wakeups: self,
            request_id: request_id.to_owned(),
            settled: false,
        }
    }

    /// Whether a resolution of `request_id` by this process may not be durable yet.
    pub(crate) fn is_resolving(&self, request_id: &str) -> bool {
        lock(&self.resolving).contains_key(request_id)
    }

    /// A step that found `request_id` marked has flushed since it read the resolution, which
    /// is durable now: a mark its resolver abandoned goes (those of resolvers still at work
    /// stay theirs).
    pub(crate) fn flushed_since_read(&self, request_id: &str) {
        let mut resolving = lock(&self.resolving);
        if let Some(marks) = resolving.get_mut(request_id) {
            marks.abandoned = false;
            if marks.resolvers == 0 {
                resolving.remove(request_id);
            }
        }
    }

    /// Hands `request`, as just stored, to the steps waiting on it.
    pub(crate) fn deliver(&self, request: &RequestRecord) {
        if let Some(sender) = lock(&self.waiting).get(&request.id) {
            sender.send_replace(Some(Arc::new(request.clone())));
        }
    }
}

impl Resolving<'_> {
    /// The resolution is durable (its flush has returned), or there was none: the mark goes.
    pub(crate) fn settled(mut self) {
        self.settled = true;
    }
}

impl Drop for Resolving<'_> {
    fn drop(&mut self) {
        let mut resolving = lock(&self.wakeups.resolving);
        let Some(marks) = resolving.get_mut(&self.request_id) else {
            return;
        };
        marks.resolvers -= 1;
        // Not settled: the resolver is gone with its write perhaps visible and not durable.
        marks.abandoned |= !self.settled;
        if marks.resolvers == 0 && !marks.abandoned {
            resolving.remove(&self.request_id);
        }
    }
}

impl Subscription<'_> {
    /// The record delivered next.
    pub(crate) async fn changed(&mut self) -> Arc<RequestRecord> {
        loop {
            // The sender lives in the map while this subscription does.
            if self.receiver.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            if let Some(record) = self.receiver.borrow_and_update().clone() {
                return record;
            }
        }
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        let mut waiting = lock(&self.wakeups.waiting);
        if waiting
            .get(&self.request_id)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            waiting.remove(&self.request_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, status: &str) -> RequestRecord {
        serde_json::from_value(serde_json::json!({
            "v": 1, "id": id, "run_id": "run", "workflow": "w", "step_id": "ask#0",
            "location": "src/main.rs:1", "kind": "approval", "prompt": "Ship?",
            "status": status, "created_at": 0,
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_waiting_step_receives_the_record_it_was_handed() {
        let wakeups = Wakeups::default();
        let mut subscription = wakeups.subscribe("req");
        wakeups.deliver(&record("other", "answered"));
        wakeups.deliver(&record("req", "answered"));
        let delivered = subscription.changed().await;
        assert_eq!(delivered.id, "req");
        assert_eq!(delivered.status, crate::model::request::RequestStatus::Answered);
    }

    #[test]
    fn nothing_is_kept_for_requests_nobody_waits_on() {
        let wakeups = Wakeups::default();
        wakeups.deliver(&record("req", "answered"));
        assert!(lock(&wakeups.waiting).is_empty());
        drop(wakeups.subscribe("req"));
        assert!(lock(&wakeups.waiting).is_empty());
    }

    #[test]
    fn a_request_is_resolving_while_any_of_its_resolvers_holds_a_mark() {
        let wakeups = Wakeups::default();
        assert!(!wakeups.is_resolving("req"));
        let first = wakeups.resolving("req");
        let second = wakeups.resolving("req");
        assert!(wakeups.is_resolving("req"));
        assert!(!wakeups.is_resolving("other"));
        first.settled();
        assert!(
            wakeups.is_resolving("req"),
            "the second resolver has not flushed yet"
        );
        second.settled();
        assert!(!wakeups.is_resolving("req"));
        assert!(lock(&wakeups.resolving).is_empty());
    }

    #[test]
    fn an_abandoned_mark_stands_until_a_reader_has_flushed() {
        let wakeups = Wakeups::default();
        drop(wakeups.resolving("req"));
        assert!(
            wakeups.is_resolving("req"),
            "its resolver went before its flush returned"
        );
        let racing = wakeups.resolving("req");
        wakeups.flushed_since_read("req");
        assert!(
            wakeups.is_resolving("req"),
            "the racing resolver's mark is its own"
        );
        racing.settled();
        assert!(!wakeups.is_resolving("req"));
        assert!(lock(&wakeups.resolving).is_empty());
    }
}
