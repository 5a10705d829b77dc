//! The rules of answering, expiring and cancelling a feedback request: pure functions from a
//! stored request (and the engine's time) to the request as it must be stored next. The
//! engine runs them inside one store transaction; every surface (API, pages, CLI) goes
//! through them, so there is one deadline rule, one quorum rule, one expiry policy.

use super::error::{Error, Result};
use super::request::{
    EXPIRY_RESPONDER, OnExpiry, RequestRecord, RequestStatus, Resolution, Responder, Response, Vote,
};
use super::step::{Timer, TimerAction};
use super::validate::validate;

/// What an answer does to a request.
pub(crate) enum Answered {
    /// The answer was valid and in time: the updated request (resolved, or one more vote).
    Accepted(RequestRecord),
    /// The deadline had passed: the request expired by its policy instead.
    Late(RequestRecord),
}

/// Applies an answer to a request: the deadline, validation, responders, quorum.
///
/// The deadline is checked first, on the engine's clock: an answer at `now >= expires_at`
/// expires a pending request, whoever answers and however valid the answer.
pub(crate) fn answer(
    request: &RequestRecord,
    response: &Response,
    responder: &Responder,
    now: u64,
) -> Result<Answered> {
    let request_id = || request.id.clone();
    if let Some(expired) = expire(request, now) {
        return Ok(Answered::Late(expired));
    }
    match request.status {
        RequestStatus::Pending => {}
        RequestStatus::Answered if request.resolution.as_ref().is_some_and(Resolution::by_expiry) => {
            return Err(Error::RequestExpired {
                request_id: request_id(),
            });
        }
        RequestStatus::Answered => {
            return Err(Error::AlreadyAnswered {
                request_id: request_id(),
            });
        }
        RequestStatus::Expired => {
            return Err(Error::RequestExpired {
                request_id: request_id(),
            });
        }
        RequestStatus::Cancelled => {
            return Err(Error::RequestCancelled {
                request_id: request_id(),
            });
        }
    }
    let spec = &request.spec;
    if !spec.responders.is_empty() && !spec.responders.iter().any(|allowed| allowed == responder.name()) {
        return Err(Error::ResponderNotAllowed {
            request_id: request_id(),
            responder: responder.name().to_owned(),
            allowed: spec.responders.clone(),
        });
    }
    let response = validate(spec, response).map_err(|problem| Error::InvalidAnswer {
        request_id: request_id(),
        problem,
    })?;
    let mut updated = request.clone();
    if spec.quorum > 1 {
        if request
            .votes
            .iter()
            .any(|vote| vote.responder == responder.name())
        {
            return Err(Error::AlreadyVoted {
                request_id: request_id(),
                responder: responder.name().to_owned(),
                approvals: request.votes.iter().filter(|vote| vote.approved).count() as u32,
                quorum: spec.quorum,
            });
        }
        let Response::Approval { approved, comment } = &response else {
            unreachable!("a quorum is checked to be an approval when the request is made")
        };
        updated.votes.push(Vote {
            responder: responder.name().to_owned(),
            approved: *approved,
            comment: comment.clone(),
            at: now,
        });
        let approvals = updated.votes.iter().filter(|vote| vote.approved).count() as u32;
        if *approved && approvals < spec.quorum {
            return Ok(Answered::Accepted(updated)); // still pending, one more vote recorded
        }
    }
    updated.status = RequestStatus::Answered;
    updated.resolved_at = Some(now);
    updated.resolution = Some(Resolution::Answered {
        response,
        responder: responder.name().to_owned(),
        answered_at: now,
        votes: updated.votes.clone(),
    });
    Ok(Answered::Accepted(updated))
}

/// The request resolved by its expiry policy, if it is pending and its deadline is due at
/// `now`; its votes are kept.
pub(crate) fn expire(request: &RequestRecord, now: u64) -> Option<RequestRecord> {
    if request.status != RequestStatus::Pending || request.expires_at.is_none_or(|at| at > now) {
        return None;
    }
    let mut expired = request.clone();
    expired.resolved_at = Some(now);
    match &request.spec.on_expiry {
        OnExpiry::Default(response) => {
            expired.status = RequestStatus::Answered;
            expired.resolution = Some(Resolution::Answered {
                response: validate(&request.spec, response).unwrap_or_else(|_| response.clone()),
                responder: EXPIRY_RESPONDER.to_owned(),
                answered_at: now,
                votes: request.votes.clone(),
            });
        }
        policy => {
            expired.status = RequestStatus::Expired;
            expired.resolution = Some(Resolution::Expired {
                policy: policy.clone(),
            });
        }
    }
    Some(expired)
}

/// The request cancelled with its run (`reason`), if it is still pending.
pub(crate) fn cancel(request: &RequestRecord, reason: &str, now: u64) -> Option<RequestRecord> {
    if request.status != RequestStatus::Pending {
        return None;
    }
    let mut cancelled = request.clone();
    cancelled.status = RequestStatus::Cancelled;
    cancelled.resolved_at = Some(now);
    cancelled.resolution = Some(Resolution::Cancelled {
        reason: reason.to_owned(),
    });
    Some(cancelled)
}

/// The wake-up a resolution arms for its run, stored in the resolution's transaction: due at
/// once, so a paused run resumes even if the process dies right after.
pub(crate) fn wake_for(request: &RequestRecord) -> Timer {
    Timer {
        deadline: request.resolved_at.unwrap_or_default(),
        action: TimerAction::Wake(request.run_id.clone()),
    }
}

impl Timer {
    /// The wake-up a resolved request arms for its run, in the resolving transaction: due
    /// when the request resolved. What [`Store::resolve_request`](crate::store::Store::resolve_request)
    /// arms; a backend calls this rather than building the timer itself.
    pub fn wake_for(request: &RequestRecord) -> Timer {
        wake_for(request)
    }

    /// The wake-up that changing a request from `before` to `after` arms: its run's
    /// [`wake_for`](Timer::wake_for) when the change resolved it (it left `Pending`), else
    /// none. Every backend's `resolve_request` decides by this.
    pub fn wake_after(before: &RequestRecord, after: &RequestRecord) -> Option<Timer> {
        (before.status == RequestStatus::Pending && after.status != RequestStatus::Pending)
            .then(|| wake_for(after))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A pending approval created at t = 1000 ms, expiring at t = 5000 ms.
    fn approval(quorum: u32, responders: &[&str], on_expiry: serde_json::Value) -> RequestRecord {
        serde_json::from_value(json!({
            "v": 1, "id": "req", "run_id": "run", "workflow": "release", "step_id": "ask#0",
            "location": "src/main.rs:1", "kind": "approval", "prompt": "Ship it?",
            "responders": responders, "quorum": quorum, "on_expiry": on_expiry,
            "status": "pending", "created_at": 1_000, "expires_at": 5_000,
        }))
        .unwrap()
    }

    fn accepted(outcome: Result<Answered>) -> RequestRecord {
        match outcome {
            Ok(Answered::Accepted(record)) => record,
            Ok(Answered::Late(_)) => panic!("expected the answer to be accepted, it was late"),
            Err(error) => panic!("expected the answer to be accepted: {error}"),
        }
    }

    fn by(name: &str) -> Responder {
        Responder::new(name)
    }

    #[test]
    fn a_valid_answer_in_time_resolves_the_request() {
        let request = approval(1, &[], json!("reject"));
        let answered = accepted(answer(&request, &Response::approve(), &by("alice"), 4_999));
        assert_eq!(answered.status, RequestStatus::Answered);
        assert_eq!(answered.resolved_at, Some(4_999));
        assert!(matches!(
            answered.resolution,
            Some(Resolution::Answered { ref responder, .. }) if responder == "alice"
        ));
    }

    #[test]
    fn a_quorum_of_one_resolves_at_the_first_approval() {
        let request = approval(1, &["alice", "bob"], json!("reject"));
        let answered = accepted(answer(&request, &Response::approve(), &by("bob"), 2_000));
        assert_eq!(answered.status, RequestStatus::Answered);
        assert!(answered.votes.is_empty(), "a quorum of one records no votes");
    }

    #[test]
    fn a_quorum_counts_distinct_approvals_and_refuses_a_second_vote() {
        let request = approval(2, &["alice", "bob", "carol"], json!("reject"));
        let one = accepted(answer(&request, &Response::approve(), &by("alice"), 2_000));
        assert_eq!((one.status, one.votes.len()), (RequestStatus::Pending, 1));
        let again = answer(&one, &Response::approve(), &by("alice"), 2_001);
        assert!(matches!(
            again,
            Err(Error::AlreadyVoted {
                approvals: 1,
                quorum: 2,
                ..
            })
        ));
        let two = accepted(answer(&one, &Response::approve(), &by("bob"), 2_002));
        assert_eq!((two.status, two.votes.len()), (RequestStatus::Answered, 2));
    }

    #[test]
    fn a_rejection_in_a_quorum_decides_at_once() {
        let request = approval(3, &["alice", "bob", "carol"], json!("reject"));
        let one = accepted(answer(&request, &Response::approve(), &by("alice"), 2_000));
        let rejected = accepted(answer(&one, &Response::reject(), &by("bob"), 2_001));
        assert_eq!(rejected.status, RequestStatus::Answered);
        assert!(matches!(
            rejected.resolution,
            Some(Resolution::Answered {
                response: Response::Approval { approved: false, .. },
                ..
            })
        ));
    }

    #[test]
    fn a_responder_not_listed_is_refused_and_changes_nothing() {
        let request = approval(1, &["alice"], json!("reject"));
        let refused = answer(&request, &Response::approve(), &by("mallory"), 2_000);
        assert!(matches!(refused, Err(Error::ResponderNotAllowed { .. })));
    }

    #[test]
    fn an_answer_at_the_deadline_expires_the_request_instead() {
        let request = approval(1, &[], json!("reject"));
        let Ok(Answered::Late(expired)) = answer(&request, &Response::approve(), &by("alice"), 5_000) else {
            panic!("an answer at expires_at is late")
        };
        assert_eq!(expired.status, RequestStatus::Expired);
        assert_eq!(expired.resolved_at, Some(5_000));
    }

    #[test]
    fn a_vote_after_the_deadline_expires_the_quorum_with_earlier_votes_kept() {
        let request = approval(2, &["alice", "bob"], json!("reject"));
        let one = accepted(answer(&request, &Response::approve(), &by("alice"), 2_000));
        let Ok(Answered::Late(expired)) = answer(&one, &Response::approve(), &by("bob"), 6_000) else {
            panic!("a vote after the deadline is late")
        };
        assert_eq!(expired.status, RequestStatus::Expired);
        assert_eq!(expired.votes.len(), 1);
        assert_eq!(expired.votes[0].responder, "alice");
    }

    #[test]
    fn a_default_answer_on_expiry_is_recorded_as_the_expiry_responder() {
        let request = approval(
            1,
            &[],
            json!({"default": {"approved": false, "comment": "nobody came"}}),
        );
        assert!(expire(&request, 4_999).is_none(), "not due yet");
        let expired = expire(&request, 5_000).expect("due at expires_at");
        assert_eq!(expired.status, RequestStatus::Answered);
        assert!(expired.resolution.as_ref().is_some_and(Resolution::by_expiry));
        // Answering it later is refused as expired, not as already answered.
        let late = answer(&expired, &Response::approve(), &by("alice"), 6_000);
        assert!(matches!(late, Err(Error::RequestExpired { .. })));
        assert!(
            expire(&expired, 6_000).is_none(),
            "an expired request expires once"
        );
    }

    #[test]
    fn cancel_resolves_only_a_pending_request() {
        let request = approval(1, &[], json!("reject"));
        let cancelled = cancel(&request, "run failed", 3_000).expect("pending requests cancel");
        assert_eq!(cancelled.status, RequestStatus::Cancelled);
        assert!(cancel(&cancelled, "again", 3_001).is_none());
        let refused = answer(&cancelled, &Response::approve(), &by("alice"), 3_002);
        assert!(matches!(refused, Err(Error::RequestCancelled { .. })));
    }

    #[test]
    fn the_wake_up_of_a_resolution_is_due_when_it_resolved() {
        let request = approval(1, &[], json!("reject"));
        let cancelled = cancel(&request, "run failed", 3_000).unwrap();
        let wake = wake_for(&cancelled);
        assert_eq!(wake.deadline, 3_000);
        assert!(matches!(wake.action, TimerAction::Wake(ref run) if run == "run"));
    }
}
