//! The contract's delivery checks: due timers, due and claimed notifications.

use std::sync::Arc;

use serde_json::json;

use super::records::{notification, request, step};
use crate::store::{OutboxRecord, Store, Timer, TimerAction};

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
/// soonest first; `save_outbox` records attempts and outcomes, and `outbox_of` reads them
/// back as saved.
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
    let mut withdrawn = outbox[0].clone();
    withdrawn.withdraw();
    store.save_outbox(&withdrawn).await.unwrap();
    assert_eq!(
        ids(store.due_notifications(u64::MAX, 10).await.unwrap()),
        ["q1/2"]
    );
    let mut kept = store.outbox_of("q1").await.unwrap();
    kept.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        kept,
        [withdrawn, delivered, outbox[2].clone()],
        "every notification of the request, as saved"
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
