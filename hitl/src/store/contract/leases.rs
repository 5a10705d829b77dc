//! The contract's lease checks: exclusive claims, fencing, release.

use std::sync::Arc;

use serde_json::json;

use super::is_conflict;
use super::records::{request, run, step};
use crate::model::run::RunStatus;
use crate::store::Store;

/// Of concurrent claims of a paused run one wins, one epoch later; a write carrying an
/// older epoch, or a renewal by a writer that lost the run, is a `Conflict`.
pub async fn check_leases_are_exclusive_and_fence<S: Store>(store: Arc<S>) {
    let paused = run("r1", "release", RunStatus::Paused, 10);
    store.create_run(&paused).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..16 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .claim_paused("r1", &format!("worker-{n}"), 20, 1_000)
                .await
                .unwrap()
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        winners.extend(task.await.expect("a claiming task panicked"));
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 16 concurrent claims of a paused run wins"
    );
    let claimed = winners.remove(0);
    assert_eq!(claimed.status, RunStatus::Running);
    assert_eq!(
        claimed.lease_epoch,
        paused.lease_epoch + 1,
        "a claim is one epoch later"
    );
    assert_eq!(
        store.load_run("r1").await.unwrap(),
        Some(claimed.clone()),
        "the claim is stored"
    );
    assert_eq!(
        store.claim_paused("r1", "late", 30, 1_000).await.unwrap(),
        None,
        "a running run cannot be claimed as paused"
    );
    let owner = claimed.owner.clone().unwrap();
    assert!(
        is_conflict(&store.save_run(&paused).await),
        "a write with the epoch from before the claim is fenced"
    );
    assert!(is_conflict(
        &store
            .renew_lease("r1", "someone-else", claimed.lease_epoch, 2_000)
            .await
    ));
    store
        .renew_lease("r1", &owner, claimed.lease_epoch, 2_000)
        .await
        .unwrap();
    assert_eq!(
        store.load_run("r1").await.unwrap().unwrap().lease_until,
        Some(2_000),
        "renewed"
    );
    let mut progressed = claimed.clone();
    progressed.updated_at = 40;
    progressed.lease_until = Some(2_000);
    store.save_run(&progressed).await.unwrap();

    let taken = store.claim_lapsed("successor", 3_000, 4_000, 10).await.unwrap();
    assert_eq!(taken.len(), 1, "the lapsed run is taken over");
    assert_eq!(taken[0].lease_epoch, claimed.lease_epoch + 1);
    assert_eq!(taken[0].owner.as_deref(), Some("successor"));
    assert!(
        is_conflict(&store.renew_lease("r1", &owner, claimed.lease_epoch, 5_000).await),
        "the previous owner learns it lost the run"
    );
    assert!(
        is_conflict(&store.save_run(&progressed).await),
        "and its writes are fenced"
    );
    let steps = [("after#0".to_owned(), step(9, json!(1)))];
    assert!(
        is_conflict(&store.append_steps("r1", claimed.lease_epoch, &steps).await),
        "journal writes of the previous owner are fenced"
    );
    let ask = request("q9", "r1", 50);
    assert!(
        is_conflict(
            &store
                .create_request(claimed.lease_epoch, &steps[0].1, &ask, &[], None)
                .await
        ),
        "so is making a request"
    );
    assert_eq!(
        store.load_request("q9").await.unwrap(),
        None,
        "a fenced request is not written"
    );
    store
        .append_steps("r1", taken[0].lease_epoch, &steps)
        .await
        .unwrap();
    assert_eq!(
        store.load_journal("r1").await.unwrap().len(),
        1,
        "the new owner's write lands"
    );
    assert!(
        store
            .claim_lapsed("successor", 3_000, 4_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "an owner does not claim its own runs"
    );
}

/// A released lease leaves the run `Running` with no lease, so that the next claim of
/// lapsed runs takes it; the releasing owner's later writes are fenced, and releasing a
/// lease one does not hold is a `Conflict`.
pub async fn check_release_lets_another_worker_claim<S: Store>(store: S) {
    let paused = run("r1", "release", RunStatus::Paused, 10);
    store.create_run(&paused).await.unwrap();
    let held = store
        .claim_paused("r1", "leaving", 20, 1_000_000)
        .await
        .unwrap()
        .expect("a paused run is claimed");
    assert!(
        is_conflict(&store.release_lease("r1", "someone-else", held.lease_epoch).await),
        "only the holder releases a lease"
    );
    store
        .release_lease("r1", "leaving", held.lease_epoch)
        .await
        .unwrap();
    let released = store.load_run("r1").await.unwrap().unwrap();
    assert_eq!(
        released.status,
        RunStatus::Running,
        "a released run stays running"
    );
    assert_eq!(released.lease_until, None, "and holds no lease");
    let taken = store.claim_lapsed("successor", 30, 1_000_000, 10).await.unwrap();
    assert_eq!(
        taken.len(),
        1,
        "a released run is claimed at once, long before its lease would lapse"
    );
    assert_eq!(taken[0].owner.as_deref(), Some("successor"));
    assert!(
        is_conflict(&store.save_run(&held).await),
        "the releasing owner's writes are fenced"
    );
}
