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

mod delivery;
mod leases;
pub(crate) mod records;

pub use delivery::{check_due_notifications, check_due_timers, check_notification_claims};
pub use leases::{check_leases_are_exclusive_and_fence, check_release_lets_another_worker_claim};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use super::{RequestQuery, RequestRecord, RunQuery, Store, Timer, TimerAction};
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

pub(super) fn is_conflict(result: &crate::Result<()>) -> bool {
    matches!(result, Err(Error::Storage(error)) if error.kind() == super::StoreErrorKind::Conflict)
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
    // A step written again later (a feedback step's waiting entry, then its resolution),
    // even far apart in the run: the later write is what the journal holds.
    store
        .append_steps("r1", 0, &[("ask#0".to_owned(), step(4, json!("waiting")))])
        .await
        .unwrap();
    store
        .append_steps("r1", 0, &[("ask#0".to_owned(), step(400, json!("answered")))])
        .await
        .unwrap();
    let journal = store.load_journal("r1").await.unwrap();
    let asked: Vec<_> = journal.iter().filter(|(id, _)| id == "ask#0").collect();
    assert_eq!(asked.len(), 1, "a step id appears once in the journal");
    assert_eq!(asked[0].1.output, json!("answered"), "the later write wins");
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
    assert_nothing_pending(&*store, "an answered request is no longer pending").await;
    let wakes: Vec<Timer> = store.due_timers(u64::MAX, 100).await.unwrap();
    assert_eq!(
        wakes,
        [Timer::wake_for(&stored)],
        "one wake-up, for the winner's resolution"
    );

    // Once the engine has spent the wake-up (the run resumed), the answer stands as it was.
    store.remove_timer(&wakes[0]).await.unwrap();
    assert!(
        store.due_timers(u64::MAX, 100).await.unwrap().is_empty(),
        "a spent wake-up is no longer due"
    );
    assert_eq!(
        store.load_request("q1").await.unwrap(),
        Some(stored.clone()),
        "the answer reads the same after its wake-up is spent"
    );
    let all = store.requests(&RequestQuery::default()).await.unwrap();
    assert_eq!(
        all,
        std::slice::from_ref(&stored),
        "the answered request is listed once"
    );
    assert_nothing_pending(&*store, "and is still not pending").await;
    let late = |current: &RequestRecord| match current.status {
        RequestStatus::Pending => Ok(Some(answered(current, "late", 200))),
        _ => Err(Error::AlreadyAnswered {
            request_id: current.id.clone(),
        }),
    };
    assert!(
        matches!(
            store.resolve_request("q1", &late).await,
            Err(Error::AlreadyAnswered { .. })
        ),
        "an answer after the wake-up is spent still loses to the first"
    );
}

async fn assert_nothing_pending<S: Store>(store: &S, why: &str) {
    let pending = store.requests(&RequestQuery::pending(None)).await.unwrap();
    assert!(pending.is_empty(), "{why}: {pending:?}");
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
