//! The status board: who waits for which run to reach which status.

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::model::run::{RunRecord, RunStatus};
use crate::util::lock;

use super::{Engine, Shared};

impl Engine {
    pub(crate) fn load_run(&self, run_id: &str) -> Result<RunRecord> {
        self.shared
            .services
            .store
            .load_run(run_id)?
            .ok_or_else(|| Error::RunNotFound {
                run_id: run_id.to_owned(),
            })
    }

    /// Waits until the run's status satisfies `done`.
    pub(crate) async fn wait_status(&self, run_id: &str, done: fn(RunStatus) -> bool) -> Result<()> {
        let mut receiver = {
            // Reading the record under the lock pairs with `publish`, which takes the same
            // lock after writing: either we see the new status or we get its notification.
            let mut statuses = lock(&self.shared.statuses);
            let record = self.load_run(run_id)?;
            if done(record.status) {
                return Ok(());
            }
            if record.status == RunStatus::Running
                && !lock(&self.shared.live).contains_key(run_id)
                && !self.shared.registry.contains_key(record.workflow.as_str())
            {
                return Err(Error::UnknownWorkflow {
                    name: record.workflow,
                    registered: self.workflows().iter().map(|name| (*name).to_owned()).collect(),
                });
            }
            statuses
                .entry(run_id.to_owned())
                .or_insert_with(|| watch::channel(record.status).0)
                .subscribe()
        };
        let waited = receiver
            .wait_for(|status| done(*status))
            .await
            .map(|_| ())
            .map_err(|_| Error::Closed);
        drop(receiver);
        // The last waiter of a settled run removes its entry: paused runs cost no memory.
        let mut statuses = lock(&self.shared.statuses);
        if statuses
            .get(run_id)
            .is_some_and(|sender| sender.receiver_count() == 0 && sender.borrow().is_settled())
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
