//! The status board: who waits for which run to reach which status.

use std::sync::atomic::Ordering;

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::model::run::{RunRecord, RunStatus};
use crate::util::lock;

use super::{Engine, Shared};

/// How often a wait on a shared store reads the run again.
const SHARED_STORE_POLL: std::time::Duration = std::time::Duration::from_millis(50);

impl Engine {
    pub(crate) async fn load_run(&self, run_id: &str) -> Result<RunRecord> {
        self.shared
            .services
            .store
            .load_run(run_id)
            .await?
            .ok_or_else(|| Error::RunNotFound {
                run_id: run_id.to_owned(),
            })
    }

    /// Waits until the run's status satisfies `done`.
    pub(crate) async fn wait_status(&self, run_id: &str, done: fn(RunStatus) -> bool) -> Result<()> {
        // Subscribe, mark what was published so far as seen, then read the record: `publish`
        // runs after the write it announces, so a status published before the mark is in
        // the record, and one published after it wakes the loop below.
        let mut receiver = lock(&self.shared.statuses)
            .entry(run_id.to_owned())
            .or_insert_with(|| watch::channel(RunStatus::Running).0)
            .subscribe();
        receiver.borrow_and_update();
        let record = self.load_run(run_id).await?;
        // On a shared store the run may move on another worker, which publishes nothing
        // here: the record is read again every poll.
        let shared_store = self.shared.services.store.shared();
        let waited = if done(record.status) {
            Ok(())
        } else if self.shared.closed.load(Ordering::SeqCst) {
            // `close` sets the flag before it drops the senders: a waiter that subscribed
            // after that finds it here, one that subscribed before is woken below.
            Err(Error::Closed)
        } else if record.status == RunStatus::Running
            && !shared_store
            && !self.shared.live.lock().await.contains_key(run_id)
            && !self.shared.registry.knows(&record.workflow)
        {
            Err(Error::UnknownWorkflow {
                name: record.workflow,
                registered: self.workflows().iter().map(|name| (*name).to_owned()).collect(),
            })
        } else {
            loop {
                let polled = tokio::select! {
                    changed = receiver.changed() => match changed {
                        Ok(()) => *receiver.borrow_and_update(),
                        Err(_) => break Err(Error::Closed),
                    },
                    () = tokio::time::sleep(SHARED_STORE_POLL), if shared_store => {
                        match self.load_run(run_id).await {
                            Ok(record) => record.status,
                            Err(error) => break Err(error),
                        }
                    }
                };
                if done(polled) {
                    break Ok(());
                }
            }
        };
        drop(receiver);
        // The last waiter removes the entry (a publish with nobody waiting tells nobody):
        // paused runs cost no memory here.
        let mut statuses = lock(&self.shared.statuses);
        if statuses
            .get(run_id)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            statuses.remove(run_id);
        }
        waited
    }
}

impl Shared {
    pub(super) fn publish(&self, run_id: &str, status: RunStatus) {
        let mut statuses = lock(&self.statuses);
        if let Some(sender) = statuses.get(run_id) {
            sender.send_replace(status);
            // Receivers keep the last value, so a terminal status can drop the sender.
            if status.is_terminal() || (status.is_settled() && sender.receiver_count() == 0) {
                statuses.remove(run_id);
            }
        }
    }
}
