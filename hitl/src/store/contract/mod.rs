//! The contract every [`Store`] backend must keep, as runnable checks.
//!
//! Each `check_*` function takes a factory of fresh, empty stores and panics with a message
//! naming the broken promise. hitl runs them against its sled backend and [`MemStore`];
//! a third-party backend runs them from its own tests (feature `contract`):
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread")]
//! async fn my_store_keeps_the_contract() {
//!     hitl::store::contract::check_all(|| async { MyStore::connect_to_a_fresh_database().await }).await;
//! }
//! ```
//!
//! [`MemStore`]: super::MemStore

mod records;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use super::{OutboxRecord, RequestQuery, RequestRecord, RunQuery, Store, Timer, TimerAction};
use crate::error::Error;
use crate::model::request::RequestStatus;
use crate::model::run::RunStatus;
use records::{answered, notification, request, run, step};

/// Runs every check, each on a fresh, empty store from `fresh`.
pub async fn check_all<S, F, Fresh>(fresh: F)
where
    S: Store,
    F: Fn() -> Fresh,
    Fresh: std::future::Future<Output = S>,
{
    check_run_creation_is_idempotent(fresh().await).await;
    check_leases_are_exclusive_and_fence(Arc::new(fresh().await)).await;
    check_release_lets_another_worker_claim(fresh().await).await;
    check_runs_page_in_id_order(fresh().await).await;
    check_journal_writes(fresh().await).await;
    check_request_creation_writes_every_part(fresh().await).await;
    check_first_valid_answer_wins(Arc::new(fresh().await)).await;
    check_a_refused_change_writes_nothing(fresh().await).await;
    check_requests_query(fresh().await).await;
    check_due_timers(fresh().await).await;
    check_due_notifications(fresh().await).await;
    check_notification_claims(Arc::new(fresh().await)).await;
    check_secret_and_definitions(fresh().await).await;
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

/// `create_run` inserts once; a second create with the same id returns the stored record
/// and changes nothing.
pub async fn check_run_creation_is_idempotent<S: Store>(store: S) {
    let first = run("r1", "release", RunStatus::Running, 10);
    assert_eq!(
        store.create_run(&first).await.unwrap(),
        None,
        "a new run id is created"
    );
    let mut second = first.clone();
    second.input = json!({ "n": 2 });
    assert_eq!(
        store.create_run(&second).await.unwrap(),
        Some(first.clone()),
        "creating a run whose id is taken returns the stored run"
    );
    assert_eq!(
        store.load_run("r1").await.unwrap(),
        Some(first),
        "the stored run is unchanged"
    );
    assert_eq!(
        store.load_run("nope").await.unwrap(),
        None,
        "an unknown run is None"
    );
}

fn is_conflict(result: &crate::Result<()>) -> bool {
    matches!(result, Err(Error::Storage(error)) if error.kind() == super::StoreErrorKind::Conflict)
}

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

/// `runs` returns matching runs in id order, and pages through a large set with `after`
/// and `limit` without losing or repeating one.
pub async fn check_runs_page_in_id_order<S: Store>(store: S) {
    let mut expected = Vec::new();
    for n in 0..250u64 {
        let status = if n % 3 == 0 {
            RunStatus::Paused
        } else {
            RunStatus::Completed
        };
        let workflow = if n % 2 == 0 { "even" } else { "odd" };
        let record = run(&format!("run-{n:04}"), workflow, status, n);
        store.create_run(&record).await.unwrap();
        expected.push(record.id);
    }
    let mut seen = Vec::new();
    let mut query = RunQuery {
        limit: Some(64),
        ..RunQuery::all()
    };
    loop {
        let page = store.runs(&query).await.unwrap();
        assert!(page.len() <= 64, "a page holds at most `limit` runs");
        let Some(last) = page.last() else { break };
        query.after = Some(last.id.clone());
        seen.extend(page.into_iter().map(|run| run.id));
    }
    assert_eq!(seen, expected, "pages of runs, in id order, cover every run once");
    let paused_even = RunQuery {
        status: Some(RunStatus::Paused),
        workflow: Some("even".to_owned()),
        created_before: Some(100),
        ..RunQuery::all()
    };
    let ids: Vec<String> = store
        .runs(&paused_even)
        .await
        .unwrap()
        .into_iter()
        .map(|run| run.id)
        .collect();
    let wanted: Vec<String> = (0..100u64)
        .filter(|n| n % 3 == 0 && n % 2 == 0)
        .map(|n| format!("run-{n:04}"))
        .collect();
    assert_eq!(ids, wanted, "the status, workflow and age filters all apply");
}

/// Steps appended together are all stored; the journal reads back in step-id order, per
/// run; a channel `set` stores the step and the value together.
pub async fn check_journal_writes<S: Store>(store: S) {
    let steps = vec![
        ("b#0".to_owned(), step(1, json!(2))),
        ("a#0".to_owned(), step(0, json!(1))),
    ];
    store.append_steps("r1", 0, &steps).await.unwrap();
    store
        .append_steps("r2", 0, &[("a#0".to_owned(), step(0, json!("other")))])
        .await
        .unwrap();
    let journal = store.load_journal("r1").await.unwrap();
    let ids: Vec<&str> = journal.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["a#0", "b#0"],
        "a run's journal, in step-id order, without other runs' steps"
    );
    assert_eq!(journal[1].1.output, json!(2));
    store
        .append_channel_set("r1", 0, "set#0", &step(2, json!(null)), "color", &json!("blue"))
        .await
        .unwrap();
    assert_eq!(
        store.channel_value("r1", "color").await.unwrap(),
        Some(json!("blue"))
    );
    assert_eq!(
        store.channel_value("r2", "color").await.unwrap(),
        None,
        "channels are per run"
    );
    assert_eq!(
        store.load_journal("r1").await.unwrap().len(),
        3,
        "the channel set's step is journaled"
    );
    store
        .append_channel_set("r1", 0, "set#1", &step(3, json!(null)), "size", &json!(2))
        .await
        .unwrap();
    assert_eq!(
        store.channels_of("r1").await.unwrap(),
        vec![("color".to_owned(), json!("blue")), ("size".to_owned(), json!(2))],
        "a run's channels, in key order"
    );
    assert!(store.channels_of("r2").await.unwrap().is_empty());
}

/// `create_request` writes the waiting step, the request, its pending place, its
/// notifications and its expiry timer together.
pub async fn check_request_creation_writes_every_part<S: Store>(store: S) {
    let record = request("q1", "r1", 5);
    let outbox = [notification("q1/0", "q1", 5), notification("q1/1", "q1", 5)];
    let expiry = Timer {
        deadline: 1_000,
        action: TimerAction::Expire("q1".to_owned()),
    };
    store
        .create_request(
            0,
            &step(0, json!({ "request": "q1" })),
            &record,
            &outbox,
            Some(expiry.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        store.load_request("q1").await.unwrap(),
        Some(record.clone()),
        "the request"
    );
    let journal = store.load_journal("r1").await.unwrap();
    assert_eq!(journal.len(), 1, "the waiting journal entry");
    assert_eq!(journal[0].0, record.step_id, "stored at the request's step id");
    let pending = store.requests(&RequestQuery::pending(Some("r1"))).await.unwrap();
    assert_eq!(pending, [record], "its place among the run's pending requests");
    assert_eq!(store.outbox_of("q1").await.unwrap().len(), 2, "its notifications");
    assert_eq!(
        store.due_timers(u64::MAX, 10).await.unwrap(),
        [expiry],
        "its expiry timer"
    );
}

/// Concurrent answers: exactly one wins, the others see the winner's record, and the
/// wake-up of the run is armed once, in the winning transaction.
pub async fn check_first_valid_answer_wins<S: Store>(store: Arc<S>) {
    store
        .create_request(
            0,
            &step(0, json!({ "request": "q1" })),
            &request("q1", "r1", 5),
            &[],
            None,
        )
        .await
        .unwrap();
    let wins = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for n in 0..16 {
        let (store, wins) = (Arc::clone(&store), Arc::clone(&wins));
        tasks.push(tokio::spawn(async move {
            let by = format!("responder-{n}");
            let change = |current: &RequestRecord| match current.status {
                RequestStatus::Pending => Ok(Some(answered(current, &by, 100 + n))),
                _ => Err(Error::AlreadyAnswered {
                    request_id: current.id.clone(),
                }),
            };
            match store.resolve_request("q1", &change).await {
                Ok(resolved) => {
                    assert!(resolved.changed, "an accepted answer is written");
                    assert!(resolved.wake.is_some(), "the winner arms the run's wake-up");
                    wins.fetch_add(1, Ordering::SeqCst);
                }
                Err(Error::AlreadyAnswered { .. }) => {}
                Err(other) => panic!("an answer failed with {other}"),
            }
        }));
    }
    for task in tasks {
        task.await.expect("an answering task panicked");
    }
    assert_eq!(
        wins.load(Ordering::SeqCst),
        1,
        "exactly one of 16 concurrent answers wins"
    );
    let stored = store.load_request("q1").await.unwrap().unwrap();
    assert_eq!(stored.status, RequestStatus::Answered);
    assert!(
        store
            .requests(&RequestQuery::pending(None))
            .await
            .unwrap()
            .is_empty(),
        "an answered request is no longer pending"
    );
    let wakes: Vec<Timer> = store.due_timers(u64::MAX, 100).await.unwrap();
    assert_eq!(
        wakes,
        [Timer::wake_for(&stored)],
        "one wake-up, for the winner's resolution"
    );
}

/// A change that returns an error or `None` writes nothing; an unknown request is
/// `RequestNotFound`.
pub async fn check_a_refused_change_writes_nothing<S: Store>(store: S) {
    let record = request("q1", "r1", 5);
    store
        .create_request(0, &step(0, json!({ "request": "q1" })), &record, &[], None)
        .await
        .unwrap();
    let refuse = |current: &RequestRecord| {
        Err(Error::AlreadyAnswered {
            request_id: current.id.clone(),
        })
    };
    assert!(matches!(
        store.resolve_request("q1", &refuse).await,
        Err(Error::AlreadyAnswered { .. })
    ));
    let leave = |_: &RequestRecord| Ok(None);
    let resolved = store.resolve_request("q1", &leave).await.unwrap();
    assert!(
        !resolved.changed && resolved.wake.is_none(),
        "leaving a request is no write"
    );
    assert_eq!(resolved.record, record);
    assert_eq!(
        store.load_request("q1").await.unwrap(),
        Some(record),
        "the request is unchanged"
    );
    assert!(
        store.due_timers(u64::MAX, 10).await.unwrap().is_empty(),
        "no timer was armed"
    );
    let nothing = |_: &RequestRecord| Ok(None);
    assert!(matches!(
        store.resolve_request("missing", &nothing).await,
        Err(Error::RequestNotFound { .. })
    ));
}

/// `requests` filters by status, run and workflow, oldest first, with a limit.
pub async fn check_requests_query<S: Store>(store: S) {
    for (n, run_id) in ["r1", "r2", "r1", "r3"].iter().enumerate() {
        let record = request(&format!("q{n}"), run_id, 100 - n as u64);
        store
            .create_request(
                0,
                &step(n as u64, json!({ "request": record.id })),
                &record,
                &[],
                None,
            )
            .await
            .unwrap();
    }
    let answer = |current: &RequestRecord| Ok(Some(answered(current, "alice", 500)));
    store.resolve_request("q2", &answer).await.unwrap();
    let ids = |requests: Vec<RequestRecord>| requests.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.requests(&RequestQuery::pending(None)).await.unwrap()),
        ["q3", "q1", "q0"],
        "pending requests, oldest first"
    );
    assert_eq!(
        ids(store.requests(&RequestQuery::pending(Some("r1"))).await.unwrap()),
        ["q0"]
    );
    let answered_query = RequestQuery {
        status: Some(RequestStatus::Answered),
        ..RequestQuery::default()
    };
    assert_eq!(ids(store.requests(&answered_query).await.unwrap()), ["q2"]);
    let limited = RequestQuery {
        limit: Some(2),
        ..RequestQuery::default()
    };
    assert_eq!(
        ids(store.requests(&limited).await.unwrap()),
        ["q3", "q2"],
        "any status, limited"
    );
}

/// `due_timers` returns armed timers before a time, soonest first, at most `limit`;
/// `remove_timer` disarms one (and disarming a missing one is no error).
pub async fn check_due_timers<S: Store>(store: S) {
    let timers: Vec<Timer> = [(30, "c"), (10, "a"), (20, "b"), (40, "d")]
        .into_iter()
        .map(|(deadline, id)| Timer {
            deadline,
            action: TimerAction::Wake(id.to_owned()),
        })
        .collect();
    for timer in &timers {
        store.add_timer(timer).await.unwrap();
    }
    let deadlines = |timers: Vec<Timer>| timers.into_iter().map(|t| t.deadline).collect::<Vec<_>>();
    assert_eq!(
        deadlines(store.due_timers(35, 10).await.unwrap()),
        [10, 20, 30],
        "due before 35"
    );
    assert_eq!(
        deadlines(store.due_timers(u64::MAX, 2).await.unwrap()),
        [10, 20],
        "limited"
    );
    store.remove_timer(&timers[1]).await.unwrap();
    store.remove_timer(&timers[1]).await.unwrap();
    assert_eq!(
        deadlines(store.due_timers(u64::MAX, 10).await.unwrap()),
        [20, 30, 40]
    );
}

/// `due_notifications` returns undelivered, not given-up notifications due by `now`,
/// soonest first; `save_outbox` records attempts.
pub async fn check_due_notifications<S: Store>(store: S) {
    let outbox = [
        notification("q1/0", "q1", 50),
        notification("q1/1", "q1", 10),
        notification("q1/2", "q1", 90),
    ];
    store
        .create_request(
            0,
            &step(0, json!({ "request": "q1" })),
            &request("q1", "r1", 5),
            &outbox,
            None,
        )
        .await
        .unwrap();
    let ids = |records: Vec<OutboxRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.due_notifications(60, 10).await.unwrap()),
        ["q1/1", "q1/0"]
    );
    let mut delivered = outbox[1].clone();
    delivered.delivered_at = Some(20);
    store.save_outbox(&delivered).await.unwrap();
    let mut given_up = outbox[0].clone();
    given_up.gave_up = true;
    store.save_outbox(&given_up).await.unwrap();
    assert_eq!(
        ids(store.due_notifications(u64::MAX, 10).await.unwrap()),
        ["q1/2"]
    );
    assert_eq!(
        store.outbox_of("q1").await.unwrap().len(),
        3,
        "every notification of the request"
    );
}

/// `claim_notifications` returns the due notifications; on a shared store a claim also
/// pushes their next attempt to `until`, so concurrent claimers get each one once, and an
/// unfinished claim is due again when it lapses.
pub async fn check_notification_claims<S: Store>(store: Arc<S>) {
    let outbox: Vec<OutboxRecord> = (0..20)
        .map(|n| notification(&format!("q1/{n:02}"), "q1", 10))
        .collect();
    store
        .create_request(
            0,
            &step(0, json!({ "request": "q1" })),
            &request("q1", "r1", 5),
            &outbox,
            None,
        )
        .await
        .unwrap();
    let ids = |records: Vec<OutboxRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
    if !store.shared() {
        assert_eq!(
            store.claim_notifications(20, 1_000, 100).await.unwrap().len(),
            20,
            "a claim returns the due notifications"
        );
        return;
    }
    let mut claimers = Vec::new();
    for _ in 0..4 {
        let store = Arc::clone(&store);
        claimers.push(tokio::spawn(async move {
            store.claim_notifications(20, 1_000, 8).await.unwrap()
        }));
    }
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(ids(claimer.await.expect("a claimer panicked")));
    }
    claimed.sort();
    assert_eq!(
        claimed,
        ids(outbox.clone()),
        "concurrent claimers get every due notification, each once"
    );
    assert!(
        store
            .claim_notifications(999, 2_000, 100)
            .await
            .unwrap()
            .is_empty(),
        "a claimed notification is not due before its claim lapses"
    );
    assert_eq!(
        store.claim_notifications(1_000, 2_000, 100).await.unwrap().len(),
        20,
        "a lapsed claim (its sender died) is due again"
    );
}

/// The secret is created once and the same ever after; definitions are kept per
/// workflow and fingerprint, the first one stored winning.
pub async fn check_secret_and_definitions<S: Store>(store: S) {
    let secret = store.secret().await.unwrap();
    assert!(secret.len() >= 16, "a secret of at least 16 bytes");
    assert_eq!(
        store.secret().await.unwrap(),
        secret,
        "the same secret every time"
    );
    let sites = vec!["build".to_owned(), "ask".to_owned()];
    store.save_definition("release", "f1", &sites).await.unwrap();
    store
        .save_definition("release", "f1", &["other".to_owned()])
        .await
        .unwrap();
    assert_eq!(store.load_definition("release", "f1").await.unwrap(), Some(sites));
    assert_eq!(store.load_definition("release", "f2").await.unwrap(), None);
    assert_eq!(
        store.secret().await.unwrap(),
        secret,
        "the secret survives other writes"
    );
    store.flush().await.unwrap();
}

#[cfg(test)]
mod tests {
    use super::check_all;
    use crate::store::MemStore;
    use crate::store::sled::{SledOptions, SledStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_keeps_the_contract() {
        check_all(|| async { MemStore::new() }).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sled_keeps_the_contract() {
        check_all(|| async {
            SledStore::open(&SledOptions {
                path: None,
                cache_capacity: 8 << 20,
                flush_every_ms: None,
            })
            .expect("a temporary sled store")
        })
        .await;
    }
}
